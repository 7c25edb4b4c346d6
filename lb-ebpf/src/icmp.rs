//! ICMP "fragmentation needed" and ICMPv6 "packet too big" about a VIP flow: relayed
//! to the flow's backend so path MTU discovery works through the LB. In NAT mode the
//! error is translated as the backend must see it: outer addresses become SNAT ->
//! backend, and the quoted packet becomes the backend's own (backend -> SNAT port).
//!
//! The quoted packet is the reply as the client saw it: VIP:vport -> client:cport.

use lb_common::{FAMILY_V4, FlowKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP, VIP_F_DSR, VipKey};

use crate::{
    csum::Delta,
    flow,
    headers::{Icmp, Ipv4, Ipv6, Ports, Tcp, Udp},
    maps::{self, Scratch},
    packet::{ICMP_HLEN, IPV6_HLEN, Packet},
    parse::Ip,
};

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMPV6_PKT_TOOBIG: u8 = 2;

/// The quoted packet's fields.
struct Quoted {
    l3: usize,
    l4: usize,
    proto: u8,
    src: [u32; 4],
    dst: [u32; 4],
    sport: u16,
    dport: u16,
}

/// Is this an error we relay, and about which of our flows? Fills the scratch's
/// `vip`, `reply` (the client flow) and `choice`; rewrites nothing. `s.key` holds the
/// outer addresses.
#[inline(never)]
pub fn target(pkt: &Packet, ip: &Ip, s: &mut Scratch) -> bool {
    let Some(h) = Icmp::<1>::at(pkt, ip.l4) else {
        return false;
    };
    let wanted = if ip.proto == PROTO_ICMP {
        h.kind() == ICMP_DEST_UNREACH && h.code() == ICMP_FRAG_NEEDED
    } else {
        h.kind() == ICMPV6_PKT_TOOBIG
    };
    if !wanted {
        return false;
    }
    let Some(q) = quoted(pkt, ip) else {
        return false;
    };
    // The quoted packet left the VIP: its source is the outer destination.
    if q.src != s.key.dst {
        return false;
    }
    let mut vk = VipKey {
        addr: q.src,
        port: q.sport,
        proto: q.proto,
        family: ip.family,
    };
    if !maps::vip(&vk, &mut s.vip) {
        vk.port = 0;
        if !maps::vip(&vk, &mut s.vip) {
            return false;
        }
    }
    s.reply = FlowKey {
        src: q.dst,
        dst: q.src,
        sport: q.dport,
        dport: q.sport,
        proto: q.proto,
        family: ip.family,
        _pad: [0; 2],
    };
    if s.vip.flags & VIP_F_DSR != 0 {
        flow::remembered(&s.reply, &mut s.choice)
            || flow::hashed(&s.vip, &s.reply, &mut s.choice, s.now, 0)
    } else {
        // NAT needs the flow's source port: only a bound flow can be translated.
        flow::remembered(&s.reply, &mut s.choice)
    }
}

#[inline(always)]
fn quoted(pkt: &Packet, ip: &Ip) -> Option<Quoted> {
    let l3 = ip.l4 + ICMP_HLEN;
    let (l4, proto, src, dst) = if ip.family == FAMILY_V4 {
        let h = Ipv4::at(pkt, l3)?;
        let ihl = h.header_len();
        if ihl < 20 {
            return None;
        }
        (
            l3 + ihl,
            h.protocol(),
            [h.saddr(), 0, 0, 0],
            [h.daddr(), 0, 0, 0],
        )
    } else {
        let h = Ipv6::at(pkt, l3)?;
        (l3 + IPV6_HLEN, h.next_header(), h.saddr(), h.daddr())
    };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let p = Ports::at(pkt, l4)?;
    Some(Quoted {
        l3,
        l4,
        proto,
        src,
        dst,
        sport: p.source(),
        dport: p.dest(),
    })
}

/// NAT mode: rewrites the quoted packet (VIP:vport -> client:cport becomes
/// backend:bport -> SNAT:port) and the outer addresses (-> SNAT -> backend), fixing the
/// quoted IPv4 header checksum, the quoted L4 checksum when it was quoted, the outer
/// IPv4 header checksum and the ICMP checksum.
#[inline(never)]
pub fn translate(pkt: &Packet, ip: &Ip, s: &Scratch) -> bool {
    rewrite_error(pkt, ip, s).is_some()
}

#[inline(always)]
fn rewrite_error(pkt: &Packet, ip: &Ip, s: &Scratch) -> Option<()> {
    let q = quoted(pkt, ip)?;
    let outer = &s.key;
    let b = &s.choice.backend;
    let bport = if b.port == 0 { q.sport } else { b.port };
    // The flow's own SNAT address (a service may have several).
    let snat = s.choice.entry.snat_addr;
    let sport = s.choice.entry.snat_port;
    // Every 16-bit word changed inside the ICMP message also changes its checksum.
    let v4 = ip.family == FAMILY_V4;
    let addrs = Delta::new()
        .addr(v4, &q.src, &b.addr)
        .addr(v4, &q.dst, &snat);
    let mut icmp = addrs.word(q.sport, bport).word(q.dport, sport);
    if ip.family == FAMILY_V4 {
        let h = Ipv4::at(pkt, q.l3)?;
        let old = h.check();
        let new = addrs.apply(old);
        h.set_check(new);
        h.set_saddr(b.addr[0]);
        h.set_daddr(snat[0]);
        icmp = icmp.word(old, new);
    } else {
        let h = Ipv6::at(pkt, q.l3)?;
        h.set_saddr(&b.addr);
        h.set_daddr(&snat);
    }
    Ports::at(pkt, q.l4)?.set(bport, sport);
    let l4 = addrs.word(q.sport, bport).word(q.dport, sport);
    if q.proto == PROTO_TCP {
        // The quoted TCP header may be cut after its checksum.
        if let Some(t) = Tcp::<9>::at(pkt, q.l4) {
            let old = t.check();
            let new = l4.apply(old);
            t.set_check(new);
            icmp = icmp.word(old, new);
        }
    } else if let Some(u) = Udp::at(pkt, q.l4) {
        let old = u.check();
        let new = l4.apply_udp(old);
        u.set_check(new);
        icmp = icmp.word(old, new);
    }
    let outer = Delta::new()
        .addr(v4, &outer.src, &snat)
        .addr(v4, &outer.dst, &b.addr);
    // ICMPv6 sums the outer pseudo-header too.
    let icmp = if ip.family == FAMILY_V4 {
        icmp
    } else {
        icmp.plus(outer)
    };
    let c: Icmp = Icmp::at(pkt, ip.l4)?;
    c.set_check(icmp.apply(c.check()));
    if ip.family == FAMILY_V4 {
        let h = Ipv4::at(pkt, ip.l3)?;
        h.set_check(outer.apply(h.check()));
        h.set_saddr(snat[0]);
        h.set_daddr(b.addr[0]);
    } else {
        let h = Ipv6::at(pkt, ip.l3)?;
        h.set_saddr(&snat);
        h.set_daddr(&b.addr);
    }
    Some(())
}
