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
    h = mix_word(h, (key.sport as u32) << 16 | key.dport as u32);
    h = mix_word(h, (key.proto as u32) << 8 | key.family as u32);
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
