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
    let Some(h) = pkt.words::<1>(ip.l4) else {
        return false;
    };
    let wanted = if ip.proto == PROTO_ICMP {
        h.hi_byte(0) == ICMP_DEST_UNREACH && h.lo_byte(0) == ICMP_FRAG_NEEDED
    } else {
        h.hi_byte(0) == ICMPV6_PKT_TOOBIG
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
        let h = pkt.words::<10>(l3)?;
        let ihl = ((h.hi_byte(0) & 0x0f) as usize) * 4;
        if ihl < 20 {
            return None;
        }
        (
            l3 + ihl,
            h.lo_byte(4),
            [h.get32(6), 0, 0, 0],
            [h.get32(8), 0, 0, 0],
        )
    } else {
        let h = pkt.words::<20>(l3)?;
        let src = [h.get32(4), h.get32(6), h.get32(8), h.get32(10)];
        let dst = [h.get32(12), h.get32(14), h.get32(16), h.get32(18)];
        (l3 + IPV6_HLEN, h.hi_byte(3), src, dst)
    };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let p = pkt.words::<2>(l4)?;
    Some(Quoted {
        l3,
        l4,
        proto,
        src,
        dst,
        sport: p.get(0),
        dport: p.get(1),
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
#[expect(
    clippy::needless_range_loop,
    reason = "addresses and header word offsets are indexed together; plain indices unroll cleanly in BPF"
)]
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
        let h = pkt.words::<10>(q.l3)?;
        let old = h.get(5);
        let new = addrs.apply(old);
        h.set(5, new);
        h.set32(6, b.addr[0]);
        h.set32(8, snat[0]);
        icmp = icmp.word(old, new);
    } else {
        let h = pkt.words::<20>(q.l3)?;
        for i in 0..4 {
            h.set32(4 + 2 * i, b.addr[i]);
            h.set32(12 + 2 * i, snat[i]);
        }
    }
    let p = pkt.words::<2>(q.l4)?;
    p.set(0, bport);
    p.set(1, sport);
    let l4 = addrs.word(q.sport, bport).word(q.dport, sport);
    if q.proto == PROTO_TCP {
        if let Some(t) = pkt.words::<9>(q.l4) {
            let old = t.get(8);
            let new = l4.apply(old);
            t.set(8, new);
            icmp = icmp.word(old, new);
        }
    } else if let Some(u) = pkt.words::<4>(q.l4) {
        let old = u.get(3);
        let new = l4.apply_udp(old);
        u.set(3, new);
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
    let c = pkt.words::<2>(ip.l4)?;
    c.set(1, icmp.apply(c.get(1)));
    if ip.family == FAMILY_V4 {
        let h = pkt.words::<10>(ip.l3)?;
        h.set(5, outer.apply(h.get(5)));
        h.set32(6, snat[0]);
        h.set32(8, b.addr[0]);
    } else {
        let h = pkt.words::<20>(ip.l3)?;
        for i in 0..4 {
            h.set32(4 + 2 * i, snat[i]);
            h.set32(12 + 2 * i, b.addr[i]);
        }
    }
    Some(())
}
