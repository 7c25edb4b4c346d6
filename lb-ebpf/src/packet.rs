//! The one bounds-checked accessor for packet bytes: every other module reads and
//! writes headers through [`Words`] (by field name: the views of `headers.rs`), so
//! `unsafe` packet access lives here only.
//!
//! Headers are read as 16-bit words in memory order. Every header we touch starts at
//! an even offset (Ethernet 14, VLAN 4, IPv4 options and IPv6 extensions are multiples
//! of 4 and 8) and drivers hand XDP an even `data`, so 16-bit loads are aligned. On
//! bpfel a word read natively holds the first wire byte in its low half; checksums are
//! computed on these native words (one's complement sums do not care about byte order).

use aya_ebpf::programs::{TcContext, XdpContext};

/// Header lengths, defined once for every module.
pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const TCP_HLEN: usize = 20;
pub const ICMP_HLEN: usize = 8;

/// The kernel's address family numbers (`bpf_fib_lookup`, `bpf_redirect_neigh`).
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// A header of `N` 16-bit words known to lie inside the packet.
#[derive(Clone, Copy)]
pub struct Words<const N: usize>(*mut [u16; N]);

impl<const N: usize> Words<N> {
    /// Word `i` (memory order).
    #[inline(always)]
    pub fn get(self, i: usize) -> u16 {
        // SAFETY: `Words` is only built by `Packet::words` after checking that N words
        // from its start are inside [data, data_end); indices are constants < N.
        unsafe { (*self.0)[i] }
    }

    /// Writes word `i`.
    #[inline(always)]
    pub fn set(self, i: usize, v: u16) {
        // SAFETY: as in `get`; the XDP buffer is writable.
        unsafe { (*self.0)[i] = v }
    }

    /// Two words as one 32-bit value in memory order (an IPv4 address, a TCP sequence
    /// number as stored).
    #[inline(always)]
    pub fn get32(self, i: usize) -> u32 {
        u32::from(self.get(i)) | u32::from(self.get(i + 1)) << 16
    }

    /// Writes a 32-bit memory-order value into words `i` and `i + 1`.
    #[inline(always)]
    pub fn set32(self, i: usize, v: u32) {
        self.set(i, v as u16);
        self.set(i + 1, (v >> 16) as u16);
    }

    /// The first byte of word `i` on the wire (byte `2i` of the header), on either
    /// byte order.
    #[inline(always)]
    pub fn first_byte(self, i: usize) -> u8 {
        self.get(i).to_ne_bytes()[0]
    }

    /// The second byte of word `i` on the wire (byte `2i + 1`).
    #[inline(always)]
    pub fn second_byte(self, i: usize) -> u8 {
        self.get(i).to_ne_bytes()[1]
    }
}

/// The packet of an XDP context.
pub struct Packet {
    data: usize,
    end: usize,
}

impl Packet {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            data: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// The linear part of a TC program's packet (headers a local socket wrote are
    /// always there). Valid until the program calls a helper that changes the packet.
    #[inline(always)]
    pub fn tc(ctx: &TcContext) -> Self {
        Self {
            data: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// Bytes in the packet.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.data
    }

    /// `N` words at byte offset `off`, or `None` when they would cross the end.
    #[inline(always)]
    pub fn words<const N: usize>(&self, off: usize) -> Option<Words<N>> {
        let start = self.data + off;
        if start + N * 2 > self.end {
            return None;
        }
        Some(Words(start as *mut [u16; N]))
    }
}

/// Converts a network-order 16-bit field (as read) to host order.
#[inline(always)]
pub const fn ntohs(v: u16) -> u16 {
    u16::from_be(v)
}

/// Converts a host-order 16-bit value to the network-order field to store.
#[inline(always)]
pub const fn htons(v: u16) -> u16 {
    v.to_be()
}

/// Network-order 32-bit field (as read with `get32`) to host order.
#[inline(always)]
pub const fn ntohl(v: u32) -> u32 {
    u32::from_be(v)
}

/// Host-order value to the network-order field to store with `set32`.
#[inline(always)]
pub const fn htonl(v: u32) -> u32 {
    v.to_be()
}
