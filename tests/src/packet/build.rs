//! Building input frames with correct checksums.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

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
    /// The same frame to another destination address and port.
    pub fn dst(mut self, dst: IpAddr, dport: u16) -> Self {
        assert_eq!(self.src.is_ipv4(), dst.is_ipv4(), "mixed families");
        self.dst = dst;
        self.ports[1] = dport;
        self
    }

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
