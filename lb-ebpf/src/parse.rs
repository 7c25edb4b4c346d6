//! Header parsing: Ethernet (one 802.1Q tag), IPv4 (with options), IPv6 (hop-by-hop
//! and destination options walked; fragments and other extensions left to the stack).
//! The destination is checked against our addresses before anything else, so a packet
//! that is not for us costs one hash lookup.

use lb_common::{ADDR_F_XDP, AddrKey, Counter, FAMILY_V4, FAMILY_V6, FlowKey};

use crate::{
    headers::{Eth, Ipv4, Ipv6, Ipv6Ext, Vlan},
    maps,
    packet::{ETH_HLEN, IPV6_HLEN, Packet, VLAN_HLEN, htons, ntohs},
};

const ETH_P_IP: u16 = htons(0x0800);
const ETH_P_IPV6: u16 = htons(0x86dd);
const ETH_P_8021Q: u16 = htons(0x8100);
/// IPv6 extension headers walked before giving up (pass).
const MAX_IPV6_EXT: usize = 4;
/// IPv6 extension bytes walked before giving up; also bounds offsets for the verifier.
const MAX_IPV6_EXT_BYTES: usize = 256;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

/// Where the IP header is and what it says. The addresses go into the caller's
/// `FlowKey` (in the scratch area) instead, so they are not kept twice.
#[derive(Clone, Copy)]
pub struct Ip {
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the transport header (after IPv4 options / IPv6 extensions).
    pub l4: usize,
    /// Length of the IP packet (header included) as its header says.
    pub ip_len: usize,
    /// `ADDR_F_*` flags of the destination.
    pub addr_flags: u32,
    pub family: u8,
    pub proto: u8,
}

/// Ethernet and one optional 802.1Q tag: offset of the IP header and its ethertype.
#[inline(always)]
pub fn link(pkt: &Packet) -> Result<(usize, u16), Counter> {
    let proto = Eth::at(pkt).ok_or(Counter::PassParseError)?.ethertype();
    if proto == ETH_P_8021Q {
        let tag = Vlan::at(pkt, ETH_HLEN).ok_or(Counter::PassParseError)?;
        return Ok((ETH_HLEN + VLAN_HLEN, tag.ethertype()));
    }
    Ok((ETH_HLEN, proto))
}

/// Offset of a complete fixed IP header, parsing nothing else (the bench floor).
#[cfg(feature = "bench")]
#[inline(always)]
pub fn l3_offset(pkt: &Packet) -> Option<usize> {
    let (l3, proto) = link(pkt).ok()?;
    if proto == ETH_P_IP {
        Ipv4::at(pkt, l3).map(|_| l3)
    } else if proto == ETH_P_IPV6 {
        Ipv6::at(pkt, l3).map(|_| l3)
    } else {
        None
    }
}

/// Parses up to the transport header; addresses, protocol and family go into `key`
/// (ports are left to the caller). `Err` is the counter of the pass verdict.
#[inline(always)]
pub fn ip(pkt: &Packet, key: &mut FlowKey, addr: &mut AddrKey) -> Result<Ip, Counter> {
    let (l3, proto) = link(pkt)?;
    if proto == ETH_P_IP {
        ipv4(pkt, l3, key, addr)
    } else if proto == ETH_P_IPV6 {
        ipv6(pkt, l3, key, addr)
    } else {
        Err(Counter::PassNotIp)
    }
}

/// The destination's `ADDR_F_*` flags if the XDP program serves it: a VIP or a
/// SNAT address. Node-local VIPs and local backends' addresses are the socket
/// programs' and the TC companion's business.
#[inline(always)]
fn ours(addr: &AddrKey) -> Result<u32, Counter> {
    let flags = maps::addr_flags(addr);
    if flags & ADDR_F_XDP == 0 {
        return Err(Counter::PassNotVip);
    }
    Ok(flags)
}

#[inline(always)]
fn ipv4(pkt: &Packet, l3: usize, key: &mut FlowKey, addr: &mut AddrKey) -> Result<Ip, Counter> {
    let h = Ipv4::at(pkt, l3).ok_or(Counter::PassParseError)?;
    addr.addr = [h.daddr(), 0, 0, 0];
    addr.family = u32::from(FAMILY_V4);
    let addr_flags = ours(addr)?;
    let ihl = h.header_len();
    if h.version_ihl() >> 4 != 4 || ihl < 20 {
        return Err(Counter::PassParseError);
    }
    let ip_len = ntohs(h.total_len()) as usize;
    if ip_len < ihl || l3 + ip_len > pkt.len() {
        return Err(Counter::PassParseError);
    }
    // More-fragments flag or a fragment offset: no ports to hash.
    if ntohs(h.frag()) & 0x3fff != 0 {
        return Err(Counter::PassFragment);
    }
    key.src = [h.saddr(), 0, 0, 0];
    key.dst = addr.addr;
    key.family = FAMILY_V4;
    key.proto = h.protocol();
    Ok(Ip {
        l3,
        l4: l3 + ihl,
        ip_len,
        addr_flags,
        family: FAMILY_V4,
        proto: key.proto,
    })
}

#[inline(always)]
fn ipv6(pkt: &Packet, l3: usize, key: &mut FlowKey, addr: &mut AddrKey) -> Result<Ip, Counter> {
    let h = Ipv6::at(pkt, l3).ok_or(Counter::PassParseError)?;
    addr.addr = h.daddr();
    addr.family = u32::from(FAMILY_V6);
    let addr_flags = ours(addr)?;
    if h.version() != 6 {
        return Err(Counter::PassParseError);
    }
    let ip_len = IPV6_HLEN + ntohs(h.payload_len()) as usize;
    if l3 + ip_len > pkt.len() {
        return Err(Counter::PassParseError);
    }
    let mut next = h.next_header();
    let mut ext = 0usize;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS => {
                if ext > MAX_IPV6_EXT_BYTES {
                    return Err(Counter::PassIpv6Ext);
                }
                let e = Ipv6Ext::at(pkt, l3 + IPV6_HLEN + ext).ok_or(Counter::PassParseError)?;
                next = e.next_header();
                ext += e.len();
            }
            IPPROTO_FRAGMENT => return Err(Counter::PassFragment),
            _ => break,
        }
    }
    if ext > MAX_IPV6_EXT_BYTES || IPV6_HLEN + ext > ip_len {
        return Err(Counter::PassIpv6Ext);
    }
    if matches!(next, IPPROTO_HOPOPTS | IPPROTO_DSTOPTS) {
        return Err(Counter::PassIpv6Ext);
    }
    key.src = h.saddr();
    key.dst = addr.addr;
    key.family = FAMILY_V6;
    key.proto = next;
    Ok(Ip {
        l3,
        l4: l3 + IPV6_HLEN + ext,
        ip_len,
        addr_flags,
        family: FAMILY_V6,
        proto: next,
    })
}
