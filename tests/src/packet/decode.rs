//! Decoding output frames, verifying every checksum with its own RFC 1071 code.

use std::net::IpAddr;

use super::*;

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
pub(super) fn verify(what: &str, parts: &[&[u8]], field: u16) -> Result<(), String> {
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
