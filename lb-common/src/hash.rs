//! The flow hash: the same function on the packet path and in userspace, with fixed
//! seeds, so every LB node (and the agent's "which backend would this flow get")
//! computes the same ring position for the same 5-tuple.
//!
//! MurmurHash3's 32-bit mixing over 32-bit words: cheap in BPF (no loops over bytes,
//! no tables) and well spread for Maglev's `hash % ring_size`.

use crate::maps::FlowKey;

/// Seed for flow hashing.
pub const FLOW_SEED: u32 = 0x5ee4_1a2b;
/// Seed for a backend's Maglev offset.
pub const MAGLEV_OFFSET_SEED: u32 = 0x0ff5_e7a1;
/// Seed for a backend's Maglev skip.
pub const MAGLEV_SKIP_SEED: u32 = 0x5c1b_93d7;

#[inline(always)]
const fn mix_word(h: u32, k: u32) -> u32 {
    let mut k = k.wrapping_mul(0xcc9e_2d51);
    k = k.rotate_left(15);
    k = k.wrapping_mul(0x1b87_3593);
    let h = h ^ k;
    h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

#[inline(always)]
const fn finish(h: u32, len_bytes: u32) -> u32 {
    let mut h = h ^ len_bytes;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Hash of a flow's 5-tuple (addresses, ports, protocol, family).
#[inline(always)]
pub fn flow_hash(key: &FlowKey) -> u32 {
    let mut h = FLOW_SEED;
    h = mix_word(h, key.src[0]);
    h = mix_word(h, key.src[1]);
    h = mix_word(h, key.src[2]);
    h = mix_word(h, key.src[3]);
    h = mix_word(h, key.dst[0]);
    h = mix_word(h, key.dst[1]);
    h = mix_word(h, key.dst[2]);
    h = mix_word(h, key.dst[3]);
    h = mix_word(h, u32::from(key.sport) << 16 | u32::from(key.dport));
    h = mix_word(h, u32::from(key.proto) << 8 | u32::from(key.family));
    finish(h, 40)
}

/// Seed for address table slots.
pub const ADDR_SEED: u32 = 0x0add_7e55;

/// Slot of an address in one half of the address table (`ADDR_TABLE_SLOTS` slots).
#[inline(always)]
pub fn addr_slot(addr: &[u32; 4], family: u32) -> u32 {
    let mut h = ADDR_SEED;
    h = mix_word(h, addr[0]);
    h = mix_word(h, addr[1]);
    h = mix_word(h, addr[2]);
    h = mix_word(h, addr[3]);
    h = mix_word(h, family);
    finish(h, 20) & (crate::ADDR_TABLE_SLOTS - 1)
}

/// Hash of arbitrary bytes (userspace: backend identities for Maglev permutations).
pub fn bytes_hash(bytes: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        h = mix_word(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        h = mix_word(h, u32::from_le_bytes(last));
    }
    finish(h, bytes.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers from an independent MurmurHash3 (x86, 32-bit): Python's `mmh3`
    // over the same words serialized little-endian, e.g.
    // `mmh3.hash(struct.pack('<10I', *words), 0x5ee41a2b, signed=False)`. Every node
    // of a cluster, and every version of the program, must agree on these: a change
    // here moves every flow to another ring slot.

    /// 198.18.0.100:40000 -> 198.18.0.10:80, TCP, IPv4, as the program reads the
    /// packet (addresses and ports in network order).
    fn v4_tcp() -> FlowKey {
        FlowKey {
            src: [u32::from_le_bytes([198, 18, 0, 100]), 0, 0, 0],
            dst: [u32::from_le_bytes([198, 18, 0, 10]), 0, 0, 0],
            sport: 40000u16.to_be(),
            dport: 80u16.to_be(),
            proto: 6,
            family: crate::FAMILY_V4,
            _pad: [0; 2],
        }
    }

    #[test]
    fn flow_hash_is_murmur3_of_the_key() {
        assert_eq!(flow_hash(&v4_tcp()), 0x27e8_16cb);
        // [2001:db8::64]:40000 -> [2001:db8::a]:53, UDP.
        let v6_udp = FlowKey {
            src: [
                u32::from_le_bytes([0x20, 0x01, 0x0d, 0xb8]),
                0,
                0,
                0x6400_0000,
            ],
            dst: [
                u32::from_le_bytes([0x20, 0x01, 0x0d, 0xb8]),
                0,
                0,
                0x0a00_0000,
            ],
            dport: 53u16.to_be(),
            proto: 17,
            family: crate::FAMILY_V6,
            ..v4_tcp()
        };
        assert_eq!(flow_hash(&v6_udp), 0x9351_b5e9);
    }

    #[test]
    fn addr_slot_is_murmur3_of_the_address() {
        // mmh3 of (address words, family) = 0xf7ce4291; 4096 slots keep the low 12 bits.
        assert_eq!(addr_slot(&v4_tcp().src, u32::from(crate::FAMILY_V4)), 0x291);
    }

    #[test]
    fn bytes_hash_is_murmur3_for_whole_words() {
        assert_eq!(bytes_hash(b"test", 0), 0xba6b_d213);
        assert_eq!(bytes_hash(b"\0\0\0\0", 0), 0x2362_f9de);
        assert_eq!(bytes_hash(b"10.0.0.1:800", MAGLEV_OFFSET_SEED), 0x2238_ca81);
        // A partial last word is mixed as a whole word padded with zeros (MurmurHash3
        // proper mixes a tail without the rotation of the state): our own known answer,
        // pinned so the Maglev permutations of "addr:port" keys cannot drift.
        assert_eq!(bytes_hash(b"10.0.0.1:80", MAGLEV_OFFSET_SEED), 0x537c_75c3);
    }
}
