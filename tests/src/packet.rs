//! Packet frames for `BPF_PROG_TEST_RUN` tests: a builder for input frames and an
//! independent decoder that verifies output frames.
//!
//! The builder computes checksums with [`checksum`]. The decoder never calls it: it
//! checks every checksum with its own RFC 1071 verifier (the one's-complement sum over
//! the data *including* the checksum field must fold to `0xffff`), so a bug in one
//! cannot hide a bug in the other.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TCP FIN flag bit.
pub const FIN: u8 = 0x01;
/// TCP SYN flag bit.
pub const SYN: u8 = 0x02;
/// TCP RST flag bit.
pub const RST: u8 = 0x04;
/// TCP PSH flag bit.
pub const PSH: u8 = 0x08;
/// TCP ACK flag bit.
pub const ACK: u8 = 0x10;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;

/// Source MAC of built frames unless [`Frame::macs`] says otherwise.
pub const DEFAULT_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built frames unless [`Frame::macs`] says otherwise.
pub const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    Icmp([u8; 8]),
    Raw(u8),
}

/// Builder of one Ethernet frame carrying IPv4 or IPv6 (chosen by the address type).
///
/// Defaults: MACs [`DEFAULT_SRC_MAC`] -> [`DEFAULT_DST_MAC`], no VLAN, TTL/hop limit
/// 64, IPv4 ID 0x4c42 with DF set (cleared by [`Frame::ipv4_fragment`]), TCP flags
/// [`SYN`], seq 1, ack 0, window 64240, empty payload.
#[derive(Debug, Clone)]
pub struct Frame {
    macs: [[u8; 6]; 2],
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    l4: L4,
    ports: [u16; 2],
    flags: u8,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
    ipv4_options: Vec<u8>,
    fragment: Option<u16>,
    ipv6_ext: Vec<(u8, Vec<u8>)>,
}

impl Frame {
    fn new(src: IpAddr, dst: IpAddr, l4: L4, ports: [u16; 2]) -> Self {
        assert_eq!(src.is_ipv4(), dst.is_ipv4(), "mixed families: {src}, {dst}");
        let (macs, ttl, flags, seq, ack) = ([DEFAULT_SRC_MAC, DEFAULT_DST_MAC], 64, SYN, 1, 0);
        let (payload, ipv4_options, ipv6_ext) = (Vec::new(), Vec::new(), Vec::new());
        let (vlan, fragment) = (None, None);
        Frame {
            macs,
            vlan,
            src,
            dst,
            ttl,
            l4,
            ports,
            flags,
            seq,
            ack,
            payload,
            ipv4_options,
            fragment,
            ipv6_ext,
        }
    }

    /// A TCP segment `src:sport -> dst:dport`. Panics if the families differ.
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::new(src, dst, L4::Tcp, [sport, dport])
    }

    /// A UDP datagram `src:sport -> dst:dport`. Panics if the families differ.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::new(src, dst, L4::Udp, [sport, dport])
    }

    /// An ICMPv4 (IPv4 addresses) or ICMPv6 (IPv6 addresses) message: `rest` is the
    /// second header word (echo id/seq, MTU, ...); the body is [`Frame::payload`].
    pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4]) -> Self {
        let [a, b, c, d] = rest;
        Self::new(src, dst, L4::Icmp([ty, code, 0, 0, a, b, c, d]), [0; 2])
    }

    /// Any other IP protocol: the L4 bytes are exactly [`Frame::payload`], no checksum.
    pub fn raw(src: IpAddr, dst: IpAddr, proto: u8) -> Self {
        Self::new(src, dst, L4::Raw(proto), [0; 2])
    }

    /// TCP flags, an OR of [`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`].
    #[must_use]
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// TCP sequence number.
    #[must_use]
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    /// TCP acknowledgment number (does not set the [`ACK`] flag).
    #[must_use]
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    /// L4 payload: after the TCP/UDP/ICMP header, the whole L4 for [`Frame::raw`].
    #[must_use]
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// One 802.1Q tag (TPID 0x8100, PCP 0) with VLAN id `vid` (low 12 bits).
    #[must_use]
    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlan = Some(vid & 0x0fff);
        self
    }

    /// Raw IPv4 options, zero (EOL) padded to 4 bytes; IHL follows. At most 40 bytes.
    #[must_use]
    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        assert!(options.len() <= 40, "IPv4 options are at most 40 bytes");
        self.ipv4_options = options.to_vec();
        self
    }

    /// Makes the IPv4 packet a fragment: MF bit and offset (in 8-byte units), DF clear.
    /// The L4 header is still built (in a non-first fragment it is plain data).
    #[must_use]
    pub fn ipv4_fragment(mut self, more_fragments: bool, offset_8byte_units: u16) -> Self {
        let field = u16::from(more_fragments) << 13 | (offset_8byte_units & 0x1fff);
        self.fragment = Some(field);
        self
    }

    /// Appends an IPv6 extension header of type `next_header_type` to the chain between
    /// the IPv6 header and L4. `bytes` is the header as on the wire; its byte 0 (Next
    /// Header) is overwritten to link the chain, its length byte is left as given.
    /// See [`ipv6_opts_ext`] and [`ipv6_frag_ext`].
    #[must_use]
    pub fn ipv6_ext(mut self, next_header_type: u8, bytes: &[u8]) -> Self {
        self.ipv6_ext.push((next_header_type, bytes.to_vec()));
        self
    }

    /// Source and destination MAC addresses.
    #[must_use]
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.macs = [src, dst];
        self
    }

    /// IPv4 TTL or IPv6 hop limit.
    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// The frame, with correct IPv4 header and TCP/UDP/ICMP checksums.
    pub fn build(&self) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        let ports = self.ports.map(u16::to_be_bytes).concat();
        let (proto, mut l4, csum_at) = match self.l4 {
            L4::Tcp => {
                let seq_ack = [self.seq, self.ack].map(u32::to_be_bytes).concat();
                let rest = [5 << 4, self.flags, 0xfa, 0xf0, 0, 0, 0, 0];
                (6, [&ports[..], &seq_ack, &rest].concat(), Some(16))
            }
            L4::Udp => {
                let len = u16::try_from(8 + self.payload.len()).unwrap_or(0);
                let udp = [&ports[..], &len.to_be_bytes(), &[0, 0]].concat();
                (17, udp, Some(6))
            }
            L4::Icmp(header) => (if v6 { 58 } else { 1 }, header.to_vec(), Some(2)),
            L4::Raw(proto) => (proto, Vec::new(), None),
        };
        l4.extend_from_slice(&self.payload);
        if let Some(at) = csum_at {
            let mut data = match self.l4 {
                L4::Icmp(_) if !v6 => Vec::new(),
                _ => pseudo_header(self.src, self.dst, proto, l4.len()),
            };
            data.extend_from_slice(&l4);
            let c = match checksum(&data) {
                0 if self.l4 == L4::Udp => 0xffff,
                c => c,
            };
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        let ip = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.ipv4_header(s, d, proto, l4.len()),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.ipv6_header(s, d, proto, l4.len()),
            _ => unreachable!("Frame::new rejects mixed families"),
        };
        let ethertype = if v6 { ETH_P_IPV6 } else { ETH_P_IP };
        [eth_header(self.macs, self.vlan, ethertype), ip, l4].concat()
    }

    fn ipv4_header(&self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: usize) -> Vec<u8> {
        assert!(self.ipv6_ext.is_empty(), "ipv6_ext on an IPv4 frame");
        let mut opts = self.ipv4_options.clone();
        opts.resize(opts.len().div_ceil(4) * 4, 0);
        let (hlen, total) = (20 + opts.len(), 20 + opts.len() + l4_len);
        assert!(total <= 0xffff, "IPv4 packet of {total} bytes");
        let mut h = vec![0x40 | (hlen / 4) as u8, 0];
        for word in [total as u16, 0x4c42, self.fragment.unwrap_or(0x4000)] {
            h.extend_from_slice(&word.to_be_bytes());
        }
        h.extend_from_slice(&[self.ttl, proto, 0, 0]);
        h.extend_from_slice(&[src.octets(), dst.octets()].concat());
        h.extend_from_slice(&opts);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn ipv6_header(&self, src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4_len: usize) -> Vec<u8> {
        let v4_only = !self.ipv4_options.is_empty() || self.fragment.is_some();
        assert!(!v4_only, "IPv4 options or fragment on an IPv6 frame");
        let mut ext = Vec::new();
        for (i, (_, bytes)) in self.ipv6_ext.iter().enumerate() {
            let next = self.ipv6_ext.get(i + 1).map_or(proto, |(t, _)| *t);
            let start = ext.len();
            ext.extend_from_slice(bytes);
            if let Some(b) = ext.get_mut(start) {
                *b = next;
            }
        }
        let plen = ext.len() + l4_len;
        assert!(plen <= 0xffff, "IPv6 payload of {plen} bytes");
        let first = self.ipv6_ext.first().map_or(proto, |(t, _)| *t);
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(plen as u16).to_be_bytes());
        h.extend_from_slice(&[first, self.ttl]);
        [h, src.octets().to_vec(), dst.octets().to_vec(), ext].concat()
    }
}

/// RFC 1071 Internet checksum of `data`: the value to store in a zeroed checksum field.
/// Used by the builder only; [`decode`] verifies with its own code.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> Vec<u8> {
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [s.octets(), d.octets()].concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => [s.octets(), d.octets()].concat(),
        _ => unreachable!("Frame::new rejects mixed families"),
    };
    if src.is_ipv4() {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(l4_len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    p
}

fn eth_header([src, dst]: [[u8; 6]; 2], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut h = [dst, src].concat();
    if let Some(vid) = vlan {
        h.extend_from_slice(&[ETH_P_8021Q, vid].map(u16::to_be_bytes).concat());
    }
    h.extend_from_slice(&ethertype.to_be_bytes());
    h
}

/// An 8-byte IPv6 hop-by-hop / destination options header holding one PadN option,
/// for [`Frame::ipv6_ext`] with type 0 or 60.
pub fn ipv6_opts_ext() -> [u8; 8] {
    [0, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment header (type 44) for [`Frame::ipv6_ext`].
pub fn ipv6_frag_ext(more_fragments: bool, offset_8byte_units: u16, id: u32) -> [u8; 8] {
    let [a, b] = (offset_8byte_units << 3 | u16::from(more_fragments)).to_be_bytes();
    let [c, d, e, f] = id.to_be_bytes();
    [0, 0, a, b, c, d, e, f]
}

/// What an ICMP error quotes of `inner`: its IP header (IHL for IPv4, the fixed 40
/// bytes for IPv6) plus `quote_len` more bytes, clamped to its length.
fn quote(inner: &[u8], quote_len: usize) -> &[u8] {
    let hdr = match inner.first() {
        Some(b) if b >> 4 == 4 => usize::from(b & 0x0f) * 4,
        _ => 40,
    };
    &inner[..inner.len().min(hdr + quote_len)]
}

/// ICMPv4 type 3 code 4 (fragmentation needed, next-hop MTU `mtu`) from `src` to
/// `dst`, quoting the IP header of `inner_ip_packet` (no Ethernet header) plus
/// `quote_len` bytes after it. A full Ethernet frame with correct checksums.
pub fn icmp4_frag_needed(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: u16,
    inner_ip_packet: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let [hi, lo] = mtu.to_be_bytes();
    let quoted = quote(inner_ip_packet, quote_len);
    Frame::icmp(src.into(), dst.into(), 3, 4, [0, 0, hi, lo])
        .payload(quoted)
        .build()
}

/// ICMPv6 type 2 (packet too big, MTU `mtu`), quoting the 40-byte IPv6 header of
/// `inner_ip_packet` plus `quote_len` bytes after it; checksum over the pseudo-header.
pub fn icmp6_packet_too_big(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mtu: u32,
    inner_ip_packet: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let quoted = quote(inner_ip_packet, quote_len);
    Frame::icmp(src.into(), dst.into(), 2, 0, mtu.to_be_bytes())
        .payload(quoted)
        .build()
}

/// An ICMP (type 8) or ICMPv6 (type 128) echo request, id 0x1234 seq 1, body "ping".
pub fn icmp_echo(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let ty = if src.is_ipv4() { 8 } else { 128 };
    let echo = Frame::icmp(src, dst, ty, 0, [0x12, 0x34, 0, 1]);
    echo.payload(b"ping").build()
}

/// An Ethernet frame [`DEFAULT_SRC_MAC`] -> [`DEFAULT_DST_MAC`] with any `ethertype`.
pub fn non_ip_frame(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let macs = [DEFAULT_SRC_MAC, DEFAULT_DST_MAC];
    [eth_header(macs, None, ethertype), body.to_vec()].concat()
}

/// An ARP request "who has `target`? tell `sender`" (ethertype 0x0806), sent like
/// [`non_ip_frame`] (unicast to [`DEFAULT_DST_MAC`]).
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let fixed = [0, 1, 0x08, 0x00, 6, 4, 0, 1];
    let body = [
        &fixed[..],
        &DEFAULT_SRC_MAC,
        &sender.octets(),
        &[0; 6],
        &target.octets(),
    ];
    non_ip_frame(ETH_P_ARP, &body.concat())
}

/// The IP packet inside `frame`: everything after the Ethernet header and, if present,
/// one 802.1Q tag. Empty if the frame is shorter than that.
pub fn ip_part(frame: &[u8]) -> &[u8] {
    let tagged = frame.get(12..14) == Some(&ETH_P_8021Q.to_be_bytes()[..]);
    frame.get(if tagged { 18 } else { 14 }..).unwrap_or(&[])
}

// ---------------------------------------------------------------- decoding ----

/// A verified output frame, as [`decode`] read it. `vlan` is the 802.1Q VLAN id;
/// `proto` the upper-layer protocol (after IPv6 extension headers); `ttl` the TTL or
/// hop limit. Ports are set for TCP/UDP, `tcp_flags`/`seq`/`ack` for TCP, `icmp` for
/// ICMP/ICMPv6, none of them in a non-first fragment. `payload` is what follows the
/// TCP/UDP/ICMP header (the whole L4 otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ttl: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub tcp_flags: Option<u8>,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub payload: Vec<u8>,
    pub icmp: Option<IcmpInfo>,
}

/// ICMP / ICMPv6 header of a decoded frame. `mtu` is the next-hop MTU of ICMPv4 3/4
/// and ICMPv6 2 (else 0); `inner` the quoted packet of an error message (ICMPv4 types
/// 3, 4, 5, 11, 12; ICMPv6 types below 128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInfo {
    pub ty: u8,
    pub code: u8,
    pub mtu: u32,
    pub inner: Option<Quoted>,
}

/// The packet quoted by an ICMP error. Its IPv4 header checksum is verified, its L4
/// checksum is not (the quote is truncated). Ports are set if TCP/UDP and quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frag {
    Whole,
    First,
    Later,
}

/// An IP header as [`parse_ip`] read it; `l4` is everything after it.
struct Net<'a> {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    proto: u8,
    l4: &'a [u8],
    frag: Frag,
}

fn bytes<'a>(b: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8], String> {
    let end = at + len;
    b.get(at..end)
        .ok_or_else(|| format!("{what} truncated: need {end} bytes, have {}", b.len()))
}

fn be16(b: &[u8], at: usize, what: &str) -> Result<u16, String> {
    let s = bytes(b, at, 2, what)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize, what: &str) -> Result<u32, String> {
    Ok(u32::from(be16(b, at, what)?) << 16 | u32::from(be16(b, at + 2, what)?))
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// The independent RFC 1071 verifier: adds every byte of `parts` (one byte stream) at
/// its weight, high byte first, folds the carries, and wants exactly `0xffff`.
fn verify(what: &str, parts: &[&[u8]], field: u16) -> Result<(), String> {
    let mut sum: u64 = 0;
    for (i, b) in parts.iter().flat_map(|p| p.iter()).enumerate() {
        sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
    }
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    match sum {
        0xffff => Ok(()),
        s => Err(format!(
            "{what} checksum wrong: field {field:#06x}, sum {s:#06x} != 0xffff"
        )),
    }
}

/// Verifies the L4 checksum at offset `at` of `net.l4`, over the pseudo-header.
fn verify_l4(what: &str, net: &Net, at: usize) -> Result<(), String> {
    let (field, l4, proto) = (be16(net.l4, at, what)?, net.l4, net.proto);
    match (net.src, net.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = (l4.len() as u16).to_be_bytes();
            verify(
                what,
                &[&s.octets(), &d.octets(), &[0, proto], &len, l4],
                field,
            )
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = (l4.len() as u32).to_be_bytes();
            verify(
                what,
                &[&s.octets(), &d.octets(), &len, &[0, 0, 0, proto], l4],
                field,
            )
        }
        _ => Err("mixed address families".into()),
    }
}

/// Walks the IPv6 extension headers in `rest`, the first of type `nh`: returns the
/// upper-layer protocol, its offset in `rest`, and the fragment state.
fn walk_v6(rest: &[u8], mut nh: u8) -> Result<(u8, usize, Frag), String> {
    let (mut off, mut frag, what) = (0, Frag::Whole, "IPv6 extension header");
    loop {
        let len = match nh {
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                (usize::from(bytes(rest, off + 1, 1, what)?[0]) + 1) * 8
            }
            51 => (usize::from(bytes(rest, off + 1, 1, what)?[0]) + 2) * 4,
            44 => {
                let fo = be16(rest, off + 2, what)?;
                if fo & 0xfff8 != 0 {
                    frag = Frag::Later;
                } else if fo & 1 != 0 {
                    frag = Frag::First;
                }
                8
            }
            _ => return Ok((nh, off, frag)),
        };
        nh = bytes(rest, off, len, what)?[0];
        off += len;
        if frag == Frag::Later {
            return Ok((nh, off, frag));
        }
    }
}

/// Parses and verifies the IPv4 or IPv6 header at the start of `ip`. A `quoted`
/// packet (inside an ICMP error) is truncated: its length field is not checked, and
/// an extension header chain running off its end is tolerated.
fn parse_ip(ip: &[u8], v6: bool, quoted: bool) -> Result<Net<'_>, String> {
    let what = match (quoted, v6) {
        (false, false) => "IPv4 header",
        (false, true) => "IPv6 header",
        (true, false) => "quoted IPv4 header",
        (true, true) => "quoted IPv6 header",
    };
    let version = bytes(ip, 0, 1, what)?[0] >> 4;
    if version != if v6 { 6 } else { 4 } {
        return Err(format!("{what}: IP version {version}"));
    }
    if v6 {
        let h = bytes(ip, 0, 40, what)?;
        let (plen, rest) = (usize::from(be16(h, 4, what)?), ip.len() - 40);
        if !quoted && plen != rest {
            return Err(format!(
                "IPv6 payload length {plen} != {rest} bytes after the header"
            ));
        }
        let (proto, off, frag) = match walk_v6(&ip[40..], h[6]) {
            Err(_) if quoted => (h[6], rest, Frag::Later),
            walked => walked?,
        };
        let (src, dst) = (array::<16>(&h[8..]).into(), array::<16>(&h[24..]).into());
        return Ok(Net {
            src,
            dst,
            ttl: h[7],
            proto,
            l4: &ip[40 + off..],
            frag,
        });
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let h = bytes(ip, 0, ihl.max(20), what)?;
    if ihl < 20 {
        return Err(format!("{what}: IHL {ihl} bytes < 20"));
    }
    verify(what, &[h], be16(h, 10, what)?)?;
    let total = usize::from(be16(h, 2, what)?);
    if !quoted && total != ip.len() {
        return Err(format!(
            "IPv4 total length {total} != {} bytes after Ethernet",
            ip.len()
        ));
    }
    let fo = be16(h, 6, what)?;
    let frag = match (fo & 0x1fff, fo & 0x2000) {
        (0, 0) => Frag::Whole,
        (0, _) => Frag::First,
        _ => Frag::Later,
    };
    let (src, dst) = (array::<4>(&h[12..]).into(), array::<4>(&h[16..]).into());
    Ok(Net {
        src,
        dst,
        ttl: h[8],
        proto: h[9],
        l4: &ip[ihl..],
        frag,
    })
}

/// Decodes `frame` and verifies it: IPv4 header checksum, IPv4 total length / IPv6
/// payload length against the frame, TCP/UDP/ICMPv4/ICMPv6 checksums (UDP checksum 0
/// allowed over IPv4 only), UDP length, and the quoted IPv4 header checksum of ICMP
/// errors. L4 checksums of fragments are not checked (they cover the whole datagram).
pub fn decode(frame: &[u8]) -> Result<Decoded, String> {
    let eth = bytes(frame, 0, 14, "Ethernet header")?;
    let (mut ethertype, mut vlan) = (be16(eth, 12, "Ethernet header")?, None);
    if ethertype == ETH_P_8021Q {
        vlan = Some(be16(frame, 14, "802.1Q tag")? & 0x0fff);
        ethertype = be16(frame, 16, "802.1Q tag")?;
    }
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return Err(format!("not IP: ethertype {ethertype:#06x}"));
    }
    let v6 = ethertype == ETH_P_IPV6;
    let net = parse_ip(ip_part(frame), v6, false)?;
    let (l4, check) = (net.l4, net.frag == Frag::Whole);
    let mut d = Decoded {
        src_mac: array(&eth[6..]),
        dst_mac: array(eth),
        vlan,
        src: net.src,
        dst: net.dst,
        proto: net.proto,
        ttl: net.ttl,
        sport: None,
        dport: None,
        tcp_flags: None,
        seq: None,
        ack: None,
        payload: Vec::new(),
        icmp: None,
    };
    let hlen = match net.proto {
        _ if net.frag == Frag::Later => 0,
        6 => {
            let doff = usize::from(bytes(l4, 12, 1, "TCP header")?[0] >> 4) * 4;
            bytes(l4, 0, doff.max(20), "TCP header")?;
            if doff < 20 {
                return Err(format!("TCP data offset {doff} bytes < 20"));
            }
            if check {
                verify_l4("TCP", &net, 16)?;
            }
            (d.tcp_flags, d.seq, d.ack) = (
                Some(l4[13]),
                Some(be32(l4, 4, "TCP")?),
                Some(be32(l4, 8, "TCP")?),
            );
            doff
        }
        17 => {
            let (ulen, csum) = (
                usize::from(be16(l4, 4, "UDP header")?),
                be16(l4, 6, "UDP header")?,
            );
            match (check, csum, v6) {
                (false, ..) => {}
                _ if ulen != l4.len() => {
                    return Err(format!("UDP length {ulen} != {} bytes of UDP", l4.len()));
                }
                (true, 0, true) => return Err("UDP checksum wrong: zero over IPv6".into()),
                (true, 0, false) => {}
                _ => verify_l4("UDP", &net, 6)?,
            }
            8
        }
        1 | 58 if (net.proto == 58) == v6 => {
            let h = bytes(l4, 0, 8, "ICMP header")?;
            match (check, v6) {
                (false, _) => {}
                (true, false) => verify("ICMPv4", &[l4], be16(h, 2, "ICMP")?)?,
                (true, true) => verify_l4("ICMPv6", &net, 2)?,
            }
            d.icmp = Some(icmp_info(h, &l4[8..], v6)?);
            8
        }
        _ => 0,
    };
    if matches!(net.proto, 6 | 17) && net.frag != Frag::Later {
        (d.sport, d.dport) = (Some(be16(l4, 0, "ports")?), Some(be16(l4, 2, "ports")?));
    }
    d.payload = l4[hlen..].to_vec();
    Ok(d)
}

/// Reads the 8-byte ICMP header `h` and, for an error, the packet quoted in `body`.
fn icmp_info(h: &[u8], body: &[u8], v6: bool) -> Result<IcmpInfo, String> {
    let (ty, code, word) = (h[0], h[1], u32::from_be_bytes(array(&h[4..])));
    let (mtu, error) = match (v6, ty, code) {
        (true, 2, _) => (word, true),
        (true, ..) => (0, ty < 128),
        (false, 3, 4) => (word & 0xffff, true),
        (false, ..) => (0, matches!(ty, 3 | 4 | 5 | 11 | 12)),
    };
    let inner = if error {
        let q = parse_ip(body, v6, true)?;
        let ports = matches!(q.proto, 6 | 17) && q.frag != Frag::Later;
        let port = |at| {
            if ports {
                be16(q.l4, at, "quoted ports").ok()
            } else {
                None
            }
        };
        let (sport, dport) = (port(0), port(2));
        Some(Quoted {
            src: q.src,
            dst: q.dst,
            proto: q.proto,
            sport,
            dport,
        })
    } else {
        None
    };
    Ok(IcmpInfo {
        ty,
        code,
        mtu,
        inner,
    })
}

// ------------------------------------------------------------------ reports ----

/// Hex dump, 16 bytes per line, each line prefixed with its offset in hex.
pub fn hexdump(bytes: &[u8]) -> String {
    hexdump_marked(bytes, None)
}

fn hexdump_marked(bytes: &[u8], mark: Option<usize>) -> String {
    let mut s = String::new();
    for (n, line) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:04x} ", n * 16);
        for (i, b) in line.iter().enumerate() {
            let _ = write!(s, "{}{b:02x}", if i == 8 { "  " } else { " " });
        }
        s.push('\n');
        let col = mark
            .and_then(|m| m.checked_sub(n * 16))
            .filter(|c| *c < line.len());
        if let Some(col) = col {
            let pad = " ".repeat(6 + 3 * col + usize::from(col >= 8));
            let _ = writeln!(s, "{pad}^^ first difference");
        }
    }
    s
}

/// One line describing `frame` as [`decode`] sees it, or why it does not decode.
pub fn summary(frame: &[u8]) -> String {
    let d = match decode(frame) {
        Ok(d) => d,
        Err(e) => return format!("does not decode: {e}"),
    };
    let ep = |a, p: Option<u16>| p.map_or(format!("{a}"), |p| SocketAddr::new(a, p).to_string());
    let (src, dst) = (ep(d.src, d.sport), ep(d.dst, d.dport));
    let mut s = format!(
        "{src} -> {dst} proto {} ttl {} vlan {:?}",
        d.proto, d.ttl, d.vlan
    );
    if let (Some(f), Some(seq), Some(ack)) = (d.tcp_flags, d.seq, d.ack) {
        let _ = write!(s, " flags {f:#04x} seq {seq} ack {ack}");
    }
    if let Some(i) = &d.icmp {
        let _ = write!(
            s,
            " icmp {}/{} mtu {} inner {:?}",
            i.ty, i.code, i.mtu, i.inner
        );
    }
    let _ = write!(s, " payload {} bytes", d.payload.len());
    s
}

/// Test-failure report: hex dumps and [`summary`] lines of `input`, `expected` and
/// `actual`, with the first offset where `expected` and `actual` differ marked.
pub fn diff_report(input: &[u8], expected: &[u8], actual: &[u8]) -> String {
    let common = expected.iter().zip(actual).position(|(e, a)| e != a);
    let unequal = expected.len() != actual.len();
    let first = common.or(unequal.then(|| expected.len().min(actual.len())));
    let mut s = String::new();
    for (name, b, mark) in [
        ("input", input, None),
        ("expected", expected, first),
        ("actual", actual, first),
    ] {
        let _ = writeln!(s, "{name} ({} bytes): {}", b.len(), summary(b));
        s.push_str(&hexdump_marked(b, mark));
    }
    let at = |b: &[u8], i: usize| {
        b.get(i)
            .map_or("end of frame".into(), |v| format!("{v:#04x}"))
    };
    let _ = match first {
        None => writeln!(s, "expected and actual are identical"),
        Some(i) => writeln!(
            s,
            "first difference at offset {i} ({i:#06x}): expected {}, actual {}",
            at(expected, i),
            at(actual, i)
        ),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const C4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
    const R4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
    const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const R6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);

    /// (client, VIP) of each family.
    fn pairs() -> [(IpAddr, IpAddr); 2] {
        [(C4.into(), V4.into()), (C6.into(), V6.into())]
    }

    fn dec(frame: &[u8]) -> Decoded {
        decode(frame).unwrap_or_else(|e| panic!("decode failed: {e}\n{}", hexdump(frame)))
    }

    fn flipped(frame: &[u8], at: usize) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at] ^= 0x01;
        f
    }

    #[test]
    fn checksum_known_answer() {
        // The classic example header 192.168.0.1 -> 192.168.0.199: checksum 0xb861.
        let mut h = [0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0].to_vec();
        h.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 199]);
        assert_eq!(checksum(&h), 0xb861);
        assert!(verify("IPv4 header", &[&h], 0).is_err());
        h[10..12].copy_from_slice(&[0xb8, 0x61]);
        assert_eq!(verify("IPv4 header", &[&h], 0xb861), Ok(()));
        assert_eq!(checksum(&h), 0, "a correct header sums to zero");
    }

    #[test]
    fn tcp_round_trip() {
        for (src, dst) in pairs() {
            let f = Frame::tcp(src, 40000, dst, 80)
                .flags(PSH | ACK)
                .seq(7)
                .ack(9);
            let f = f.payload(b"hello").ttl(33).macs([1; 6], [2; 6]).build();
            let d = dec(&f);
            assert_eq!((d.src_mac, d.dst_mac, d.vlan), ([1; 6], [2; 6], None));
            assert_eq!((d.src, d.dst, d.proto, d.ttl), (src, dst, 6, 33));
            assert_eq!((d.sport, d.dport), (Some(40000), Some(80)));
            let tcp = (d.tcp_flags, d.seq, d.ack);
            assert_eq!(tcp, (Some(PSH | ACK), Some(7), Some(9)));
            assert_eq!((d.payload.as_slice(), d.icmp), (&b"hello"[..], None));
        }
    }

    #[test]
    fn udp_round_trip_and_zero_checksum() {
        for (src, dst) in pairs() {
            let f = Frame::udp(src, 5353, dst, 53).payload(b"query").build();
            let d = dec(&f);
            let got = (d.proto, d.sport, d.dport, d.tcp_flags);
            assert_eq!(got, (17, Some(5353), Some(53), None));
            assert_eq!(d.payload, b"query");
            let mut zeroed = f.clone();
            let at = f.len() - 5 - 2; // the UDP checksum field
            zeroed[at..at + 2].copy_from_slice(&[0, 0]);
            match decode(&zeroed) {
                Ok(d) => assert!(src.is_ipv4() && d.sport == Some(5353)),
                Err(e) => assert!(src.is_ipv6() && e.starts_with("UDP checksum wrong"), "{e}"),
            }
        }
    }

    #[test]
    fn vlan_tag_and_ip_part() {
        let b = Frame::udp(C4.into(), 1, V4.into(), 2).payload(b"v");
        let (plain, tagged) = (b.build(), b.clone().vlan(42).build());
        assert_eq!(tagged.len(), plain.len() + 4);
        assert_eq!(tagged[12..16], [0x81, 0x00, 0x00, 42]);
        assert_eq!(ip_part(&plain), ip_part(&tagged));
        assert_eq!(ip_part(&plain)[0], 0x45);
        assert_eq!((dec(&tagged).vlan, dec(&plain).vlan), (Some(42), None));
    }

    #[test]
    fn ipv4_options_set_ihl() {
        let f = Frame::tcp(C4.into(), 1000, V4.into(), 80);
        let f = f.ipv4_options(&[1, 1, 1]).payload(b"x").build(); // 3 NOPs, padded to 4
        assert_eq!(f[14], 0x46);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 24 + 20 + 1);
        let d = dec(&f);
        assert_eq!(
            (d.sport, d.dport, &d.payload[..]),
            (Some(1000), Some(80), &b"x"[..])
        );
    }

    #[test]
    fn ipv4_fragments() {
        let b = Frame::udp(C4.into(), 1000, V4.into(), 53).payload(b"frag");
        assert_eq!(b.build()[20..22], [0x40, 0x00], "DF by default");
        let first = b.clone().ipv4_fragment(true, 0).build();
        assert_eq!(first[20..22], [0x20, 0x00]);
        assert_eq!(dec(&first).sport, Some(1000));
        let later = b.ipv4_fragment(false, 3).build();
        assert_eq!(later[20..22], [0x00, 0x03]);
        let d = dec(&later);
        assert_eq!((d.proto, d.sport, d.payload.len()), (17, None, 8 + 4));
    }

    #[test]
    fn ipv6_extension_headers() {
        let b = Frame::tcp(C6.into(), 1000, V6.into(), 443).payload(b"abc");
        let f = b.clone().ipv6_ext(0, &ipv6_opts_ext());
        let f = f.ipv6_ext(60, &ipv6_opts_ext()).build();
        assert_eq!((f[14 + 6], f[54], f[62]), (0, 60, 6), "next-header chain");
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 16 + 20 + 3);
        let d = dec(&f);
        assert_eq!((d.proto, d.sport, d.dport), (6, Some(1000), Some(443)));
        assert_eq!(d.payload, b"abc");
        for (ext_type, ext, proto, sport) in [
            (44, ipv6_frag_ext(true, 0, 7), 6, Some(1000)),
            (44, ipv6_frag_ext(false, 2, 7), 6, None),
            (200, [0, 0, 1, 2, 3, 4, 5, 6], 200, None), // unknown: the upper layer
        ] {
            let d = dec(&b.clone().ipv6_ext(ext_type, &ext).build());
            assert_eq!((d.proto, d.sport), (proto, sport), "after type {ext_type}");
        }
    }

    #[test]
    fn icmp_errors_quote_the_inner_packet() {
        let inner = Frame::tcp(V4.into(), 80, C4.into(), 40000).payload(&[9; 100]);
        let f = icmp4_frag_needed(R4, V4, 1400, ip_part(&inner.build()), 8);
        let d = dec(&f);
        let got = (d.src, d.dst, d.proto, d.payload.len());
        assert_eq!(got, (R4.into(), V4.into(), 1, 20 + 8));
        let i = d.icmp.expect("ICMP info");
        assert_eq!((i.ty, i.code, i.mtu), (3, 4, 1400));
        let (src, dst, proto) = (V4.into(), C4.into(), 6);
        let (sport, dport) = (Some(80), Some(40000));
        assert_eq!(
            i.inner,
            Some(Quoted {
                src,
                dst,
                proto,
                sport,
                dport
            })
        );

        let inner = Frame::udp(V6.into(), 53, C6.into(), 5000).payload(b"short");
        let f = icmp6_packet_too_big(R6, V6, 1280, ip_part(&inner.build()), 1000);
        let d = dec(&f);
        assert_eq!(
            (d.proto, d.payload.len()),
            (58, 40 + 8 + 5),
            "quote clamped"
        );
        let i = d.icmp.expect("ICMPv6 info");
        assert_eq!((i.ty, i.code, i.mtu), (2, 0, 1280));
        let (src, dst, proto) = (V6.into(), C6.into(), 17);
        let (sport, dport) = (Some(53), Some(5000));
        assert_eq!(
            i.inner,
            Some(Quoted {
                src,
                dst,
                proto,
                sport,
                dport
            })
        );
    }

    #[test]
    fn icmp_echo_is_not_an_error() {
        for ((src, dst), ty) in pairs().into_iter().zip([8, 128]) {
            let d = dec(&icmp_echo(src, dst));
            let i = d.icmp.expect("ICMP info");
            assert_eq!((i.ty, i.code, i.mtu, i.inner), (ty, 0, 0, None));
            assert_eq!((d.sport, d.payload.as_slice()), (None, &b"ping"[..]));
        }
    }

    #[test]
    fn corrupted_checksums_are_named() {
        let [(c4, v4), (c6, v6)] = pairs();
        let tcp4 = Frame::tcp(c4, 1, v4, 2).payload(b"p").build();
        let tcp6 = Frame::tcp(c6, 1, v6, 2).build();
        let udp4 = Frame::udp(c4, 1, v4, 2).build();
        let udp6 = Frame::udp(c6, 1, v6, 2).build();
        let (icmp4, icmp6) = (icmp_echo(c4, v4), icmp_echo(c6, v6));
        let bad_inner = flipped(ip_part(&tcp4), 10);
        let quoted = icmp4_frag_needed(V4, C4, 1400, &bad_inner, 8);
        let cases = [
            (flipped(&tcp4, 14 + 10), "IPv4 header checksum wrong"),
            (flipped(&tcp4, 14 + 20 + 17), "TCP checksum wrong"),
            (flipped(&tcp4, tcp4.len() - 1), "TCP checksum wrong"),
            (flipped(&tcp6, 14 + 40 + 16), "TCP checksum wrong"),
            (flipped(&udp4, 14 + 20 + 7), "UDP checksum wrong"),
            (flipped(&udp6, 14 + 40 + 6), "UDP checksum wrong"),
            (flipped(&icmp4, 14 + 20 + 2), "ICMPv4 checksum wrong"),
            (flipped(&icmp6, 14 + 40 + 3), "ICMPv6 checksum wrong"),
            (quoted, "quoted IPv4 header checksum wrong"),
        ];
        for (frame, want) in cases {
            let e = decode(&frame).expect_err(want);
            assert!(e.starts_with(want), "{e:?} should name {want:?}");
        }
    }

    #[test]
    fn lengths_are_checked_and_truncation_never_panics() {
        let [(c4, v4), (c6, v6)] = pairs();
        let v6_tagged = Frame::udp(c6, 1, v6, 2).vlan(7).build();
        let cases = [
            (Frame::tcp(c4, 1, v4, 2).build(), "IPv4 total length"),
            (v6_tagged, "IPv6 payload length"),
        ];
        for (f, want) in cases {
            let longer = [&f[..], &[0]].concat();
            assert!(decode(&longer).expect_err(want).starts_with(want));
            for n in 0..f.len() {
                assert!(decode(&f[..n]).is_err(), "prefix of {n} bytes decoded");
            }
        }
        let arp = arp_request(C4, V4);
        assert_eq!((arp.len(), &arp[12..14]), (42, &[0x08, 0x06][..]));
        assert_eq!(decode(&arp), Err("not IP: ethertype 0x0806".to_string()));
        assert_eq!(non_ip_frame(0x88cc, &[1, 2])[12..], [0x88, 0xcc, 1, 2]);
    }

    #[test]
    fn reports() {
        let dump = hexdump(&[0xab; 17]);
        let want = "0000  ab ab ab ab ab ab ab ab  ab ab ab ab ab ab ab ab\n0010  ab\n";
        assert_eq!(dump, want);
        let input = Frame::tcp(C4.into(), 1, V4.into(), 2).build();
        let actual = flipped(&input, 25);
        let r = diff_report(&input, &input, &actual);
        assert!(r.contains("first difference at offset 25 (0x0019)"), "{r}");
        let caret = format!("\n{}^^ first difference", " ".repeat(6 + 3 * 9 + 1));
        assert!(r.contains(&caret), "{r}");
        assert!(
            r.contains("does not decode: IPv4 header checksum wrong"),
            "{r}"
        );
        let r = diff_report(&input, &input, &input[..50]);
        let end = format!(
            "offset 50 (0x0032): expected {:#04x}, actual end",
            input[50]
        );
        assert!(r.contains(&end), "{r}");
        assert!(diff_report(&input, &input, &input).contains("identical"));
    }
}
