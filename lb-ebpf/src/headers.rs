//! Named views of the headers the programs read and write: every field by its name,
//! over the bounds-checked [`Words`] of `packet.rs` (no `unsafe` here), instead of word
//! indexes at each use. Values are as on the wire (network order) unless a method says
//! otherwise; 32-bit fields (addresses, sequence numbers) are as stored, the way the
//! maps keep them.
//!
//! A view is as long as what its user needs checked, no more: `Tcp` is the whole
//! 20-byte header, `Tcp<7>` only up to the flags (a state update), `Tcp<9>` up to the
//! checksum (the TCP header quoted in an ICMP error, whose tail may be cut). A field
//! beyond a view's length does not compile (`const` assertions).

use crate::packet::{Packet, Words};

/// The Ethernet addresses (12 bytes).
#[derive(Clone, Copy)]
pub struct EthAddrs(Words<6>);

impl EthAddrs {
    #[inline(always)]
    pub fn at(pkt: &Packet) -> Option<Self> {
        pkt.words(0).map(Self)
    }

    /// Writes the destination and the source address.
    #[inline(always)]
    pub fn set(self, dst: &[u8; 6], src: &[u8; 6]) {
        for i in 0..3 {
            self.0
                .set(i, u16::from_ne_bytes([dst[2 * i], dst[2 * i + 1]]));
            self.0
                .set(3 + i, u16::from_ne_bytes([src[2 * i], src[2 * i + 1]]));
        }
    }

    /// Swaps the destination and the source address.
    #[inline(always)]
    pub fn swap(self) {
        for i in 0..3 {
            let d = self.0.get(i);
            self.0.set(i, self.0.get(3 + i));
            self.0.set(3 + i, d);
        }
    }
}

/// The Ethernet header (14 bytes).
#[derive(Clone, Copy)]
pub struct Eth(Words<7>);

impl Eth {
    #[inline(always)]
    pub fn at(pkt: &Packet) -> Option<Self> {
        pkt.words(0).map(Self)
    }

    #[inline(always)]
    pub fn ethertype(self) -> u16 {
        self.0.get(6)
    }
}

/// An 802.1Q tag (4 bytes, after the addresses).
#[derive(Clone, Copy)]
pub struct Vlan(Words<2>);

impl Vlan {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    /// The type of what the tag carries.
    #[inline(always)]
    pub fn ethertype(self) -> u16 {
        self.0.get(1)
    }
}

/// The fixed IPv4 header (20 bytes; options follow).
#[derive(Clone, Copy)]
pub struct Ipv4(Words<10>);

impl Ipv4 {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    /// Version (high nibble) and header length in 32-bit words (low nibble).
    #[inline(always)]
    pub fn version_ihl(self) -> u8 {
        self.0.first_byte(0)
    }

    /// The header's length in bytes (options included).
    #[inline(always)]
    pub fn header_len(self) -> usize {
        usize::from(self.version_ihl() & 0x0f) * 4
    }

    #[inline(always)]
    pub fn total_len(self) -> u16 {
        self.0.get(1)
    }

    /// Flags and fragment offset.
    #[inline(always)]
    pub fn frag(self) -> u16 {
        self.0.get(3)
    }

    #[inline(always)]
    pub fn protocol(self) -> u8 {
        self.0.second_byte(4)
    }

    #[inline(always)]
    pub fn check(self) -> u16 {
        self.0.get(5)
    }

    #[inline(always)]
    pub fn set_check(self, v: u16) {
        self.0.set(5, v);
    }

    #[inline(always)]
    pub fn saddr(self) -> u32 {
        self.0.get32(6)
    }

    #[inline(always)]
    pub fn set_saddr(self, v: u32) {
        self.0.set32(6, v);
    }

    #[inline(always)]
    pub fn daddr(self) -> u32 {
        self.0.get32(8)
    }

    #[inline(always)]
    pub fn set_daddr(self, v: u32) {
        self.0.set32(8, v);
    }

    /// A new header without options: version and length, TOS 0, `total_len`, id 0,
    /// don't-fragment, `ttl`, `protocol`; the addresses and checksum are the caller's.
    #[inline(always)]
    pub fn write_fixed(self, total_len: u16, ttl: u8, protocol: u8) {
        self.0.set(0, u16::from_ne_bytes([0x45, 0]));
        self.0.set(1, total_len);
        self.0.set(2, 0);
        self.0.set(3, u16::from_ne_bytes([0x40, 0]));
        self.0.set(4, u16::from_ne_bytes([ttl, protocol]));
    }

    /// The header's words (for its checksum).
    #[inline(always)]
    pub fn words(self) -> Words<10> {
        self.0
    }
}

/// The IPv6 header (40 bytes).
#[derive(Clone, Copy)]
pub struct Ipv6(Words<20>);

impl Ipv6 {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn version(self) -> u8 {
        self.0.first_byte(0) >> 4
    }

    #[inline(always)]
    pub fn payload_len(self) -> u16 {
        self.0.get(2)
    }

    #[inline(always)]
    pub fn next_header(self) -> u8 {
        self.0.first_byte(3)
    }

    #[inline(always)]
    pub fn saddr(self) -> [u32; 4] {
        [
            self.0.get32(4),
            self.0.get32(6),
            self.0.get32(8),
            self.0.get32(10),
        ]
    }

    #[inline(always)]
    pub fn set_saddr(self, v: &[u32; 4]) {
        for (i, w) in v.iter().enumerate() {
            self.0.set32(4 + 2 * i, *w);
        }
    }

    #[inline(always)]
    pub fn daddr(self) -> [u32; 4] {
        [
            self.0.get32(12),
            self.0.get32(14),
            self.0.get32(16),
            self.0.get32(18),
        ]
    }

    #[inline(always)]
    pub fn set_daddr(self, v: &[u32; 4]) {
        for (i, w) in v.iter().enumerate() {
            self.0.set32(12 + 2 * i, *w);
        }
    }

    /// A new header: version 6, no traffic class or flow label, `payload_len`,
    /// `next_header`, `hop_limit`; the addresses are the caller's.
    #[inline(always)]
    pub fn write_fixed(self, payload_len: u16, next_header: u8, hop_limit: u8) {
        self.0.set(0, u16::from_ne_bytes([0x60, 0]));
        self.0.set(1, 0);
        self.0.set(2, payload_len);
        self.0.set(3, u16::from_ne_bytes([next_header, hop_limit]));
    }
}

/// One IPv6 extension header's first two bytes (hop-by-hop, destination options).
#[derive(Clone, Copy)]
pub struct Ipv6Ext(Words<1>);

impl Ipv6Ext {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn next_header(self) -> u8 {
        self.0.first_byte(0)
    }

    /// Its length in bytes.
    #[inline(always)]
    pub fn len(self) -> usize {
        (usize::from(self.0.second_byte(0)) + 1) * 8
    }
}

/// The ports of a TCP or UDP header (its first 4 bytes).
#[derive(Clone, Copy)]
pub struct Ports(Words<2>);

impl Ports {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn source(self) -> u16 {
        self.0.get(0)
    }

    #[inline(always)]
    pub fn dest(self) -> u16 {
        self.0.get(1)
    }

    #[inline(always)]
    pub fn set(self, source: u16, dest: u16) {
        self.0.set(0, source);
        self.0.set(1, dest);
    }
}

/// A TCP header of `N` words (10: the whole fixed header; fewer: see the module doc).
#[derive(Clone, Copy)]
pub struct Tcp<const N: usize = 10>(Words<N>);

impl<const N: usize> Tcp<N> {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn source(self) -> u16 {
        const { assert!(N > 0) };
        self.0.get(0)
    }

    #[inline(always)]
    pub fn dest(self) -> u16 {
        const { assert!(N > 1) };
        self.0.get(1)
    }

    #[inline(always)]
    pub fn set_ports(self, source: u16, dest: u16) {
        const { assert!(N > 1) };
        self.0.set(0, source);
        self.0.set(1, dest);
    }

    /// The sequence number as stored (network order).
    #[inline(always)]
    pub fn seq(self) -> u32 {
        const { assert!(N > 3) };
        self.0.get32(2)
    }

    #[inline(always)]
    pub fn set_seq(self, v: u32) {
        const { assert!(N > 3) };
        self.0.set32(2, v);
    }

    /// The acknowledgment number as stored (network order).
    #[inline(always)]
    pub fn ack(self) -> u32 {
        const { assert!(N > 5) };
        self.0.get32(4)
    }

    #[inline(always)]
    pub fn set_ack(self, v: u32) {
        const { assert!(N > 5) };
        self.0.set32(4, v);
    }

    /// Data offset, reserved bits and flags (network order).
    #[inline(always)]
    pub fn offset_flags(self) -> u16 {
        const { assert!(N > 6) };
        self.0.get(6)
    }

    #[inline(always)]
    pub fn set_offset_flags(self, v: u16) {
        const { assert!(N > 6) };
        self.0.set(6, v);
    }

    /// The flags byte (`TCP_SYN`, `TCP_ACK`, ...).
    #[inline(always)]
    pub fn flags(self) -> u8 {
        const { assert!(N > 6) };
        self.0.second_byte(6)
    }

    #[inline(always)]
    pub fn set_window(self, v: u16) {
        const { assert!(N > 7) };
        self.0.set(7, v);
    }

    #[inline(always)]
    pub fn check(self) -> u16 {
        const { assert!(N > 8) };
        self.0.get(8)
    }

    #[inline(always)]
    pub fn set_check(self, v: u16) {
        const { assert!(N > 8) };
        self.0.set(8, v);
    }

    #[inline(always)]
    pub fn set_urgent(self, v: u16) {
        const { assert!(N > 9) };
        self.0.set(9, v);
    }

    /// The header's words (for its checksum).
    #[inline(always)]
    pub fn words(self) -> Words<N> {
        self.0
    }
}

/// The UDP header (8 bytes).
#[derive(Clone, Copy)]
pub struct Udp(Words<4>);

impl Udp {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn set_ports(self, source: u16, dest: u16) {
        self.0.set(0, source);
        self.0.set(1, dest);
    }

    #[inline(always)]
    pub fn check(self) -> u16 {
        self.0.get(3)
    }

    #[inline(always)]
    pub fn set_check(self, v: u16) {
        self.0.set(3, v);
    }
}

/// An ICMP or ICMPv6 header's type, code and checksum (`Icmp`, 4 bytes), or its type
/// and code only (`Icmp<1>`).
#[derive(Clone, Copy)]
pub struct Icmp<const N: usize = 2>(Words<N>);

impl<const N: usize> Icmp<N> {
    #[inline(always)]
    pub fn at(pkt: &Packet, off: usize) -> Option<Self> {
        pkt.words(off).map(Self)
    }

    #[inline(always)]
    pub fn kind(self) -> u8 {
        const { assert!(N > 0) };
        self.0.first_byte(0)
    }

    #[inline(always)]
    pub fn code(self) -> u8 {
        const { assert!(N > 0) };
        self.0.second_byte(0)
    }

    #[inline(always)]
    pub fn check(self) -> u16 {
        const { assert!(N > 1) };
        self.0.get(1)
    }

    #[inline(always)]
    pub fn set_check(self, v: u16) {
        const { assert!(N > 1) };
        self.0.set(1, v);
    }
}
