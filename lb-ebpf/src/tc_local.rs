//! TC egress companion of `lb_xdp` (`lb_tc_local_reply`): the replies of a backend
//! on this node to a client the XDP program handed it (NAT services, see
//! `local.rs`) leave the stack as backend:bport -> client:cport; the binding the XDP
//! program made under exactly that 5-tuple turns them back into VIP:vport ->
//! client:cport. Every other packet leaves untouched after one array lookup of its
//! source address (`ADDR_F_LOCAL_BACKEND`).
//!
//! Checksums go through the kernel's helpers, which know whether the skb carries a
//! complete checksum or only the pseudo-header sum (CHECKSUM_PARTIAL, what a local
//! socket hands a device with offload): an address enters both, a port only the
//! complete one.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_OK},
    helpers::bpf_ktime_get_coarse_ns,
    macros::classifier,
    programs::TcContext,
};
use lb_common::{
    ADDR_F_LOCAL_BACKEND, AddrKey, Counter, FAMILY_V4, FAMILY_V6, FlowKey, NatEntry, PROTO_TCP,
    PROTO_UDP,
};

use crate::{
    headers::{Ipv4, Ipv6, Ports, Tcp},
    maps::{self, NAT, count},
    packet::{IPV6_HLEN, Packet, htons, ntohs},
    parse, state,
};

const ETH_P_IP: u16 = htons(0x0800);
const ETH_P_IPV6: u16 = htons(0x86dd);
/// Offsets inside the headers.
const IPV4_CSUM: usize = 10;
const IPV4_SRC: usize = 12;
const IPV6_SRC: usize = 8;
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

/// Where the fields to rewrite are, and the TCP flags.
struct Reply {
    l3: usize,
    l4: usize,
    family: u8,
    proto: u8,
    flags: u8,
}

#[classifier]
pub fn lb_tc_local_reply(ctx: TcContext) -> i32 {
    let mut key = FlowKey::default();
    if let Some(r) = local_reply(&ctx, &mut key) {
        translate(&ctx, &r, &key, r.flags);
    }
    TC_ACT_OK
}

/// A TCP/UDP packet from one of our local backends' addresses, its 5-tuple in `key`.
#[inline(always)]
fn local_reply(ctx: &TcContext, key: &mut FlowKey) -> Option<Reply> {
    let pkt = Packet::tc(ctx);
    let (l3, ethertype) = parse::link(&pkt).ok()?;
    let (l4, family, proto) = if ethertype == ETH_P_IP {
        let h = Ipv4::at(&pkt, l3)?;
        key.src = [h.saddr(), 0, 0, 0];
        key.dst = [h.daddr(), 0, 0, 0];
        // Not a fragment (a later fragment has no ports to look up).
        if ntohs(h.frag()) & 0x3fff != 0 {
            return None;
        }
        (l3 + h.header_len(), FAMILY_V4, h.protocol())
    } else if ethertype == ETH_P_IPV6 {
        let h = Ipv6::at(&pkt, l3)?;
        key.src = h.saddr();
        key.dst = h.daddr();
        (l3 + IPV6_HLEN, FAMILY_V6, h.next_header())
    } else {
        return None;
    };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let src = AddrKey {
        addr: key.src,
        family: u32::from(family),
    };
    if maps::addr_flags(&src) & ADDR_F_LOCAL_BACKEND == 0 {
        return None;
    }
    let p = Ports::at(&pkt, l4)?;
    key.sport = p.source();
    key.dport = p.dest();
    key.proto = proto;
    key.family = family;
    let flags = if proto == PROTO_TCP {
        Tcp::<7>::at(&pkt, l4).map_or(0, Tcp::flags)
    } else {
        0
    };
    Some(Reply {
        l3,
        l4,
        family,
        proto,
        flags,
    })
}

/// Rewrites the source to the VIP of the binding under `key`, if there is one and
/// its connection is not over; the reply moves the binding's state and age on.
#[inline(always)]
fn translate(ctx: &TcContext, r: &Reply, key: &FlowKey, flags: u8) -> Option<()> {
    let p = NAT.get_ptr_mut(key)?;
    let b: NatEntry = maps::copy(p);
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = state::tick(unsafe { bpf_ktime_get_coarse_ns() });
    if state::expired(now, b.expires) {
        return None;
    }
    let next = state::from_backend(b.state, r.proto, flags);
    if next != b.state || b.seen != now {
        let v = maps::value_mut(p);
        v.state = next;
        v.seen = now;
        v.expires = now.wrapping_add(state::timeout(b.vip_id, next));
    }
    let (csum, mangled) = if r.proto == PROTO_TCP {
        (r.l4 + TCP_CSUM, 0)
    } else {
        (r.l4 + UDP_CSUM, u64::from(BPF_F_MARK_MANGLED_0))
    };
    let pseudo = u64::from(BPF_F_PSEUDO_HDR) | mangled;
    if r.family == FAMILY_V4 {
        let (old, new) = (u64::from(key.src[0]), u64::from(b.vip[0]));
        ctx.l3_csum_replace(r.l3 + IPV4_CSUM, old, new, 4).ok()?;
        ctx.l4_csum_replace(csum, old, new, pseudo | 4).ok()?;
        ctx.store(r.l3 + IPV4_SRC, &b.vip[0], 0).ok()?;
    } else {
        for i in 0..4 {
            let (old, new) = (u64::from(key.src[i]), u64::from(b.vip[i]));
            ctx.l4_csum_replace(csum, old, new, pseudo | 4).ok()?;
        }
        ctx.store(r.l3 + IPV6_SRC, &b.vip, 0).ok()?;
    }
    ctx.l4_csum_replace(
        csum,
        u64::from(key.sport),
        u64::from(b.vip_port),
        mangled | 2,
    )
    .ok()?;
    ctx.store(r.l4, &b.vip_port, 0).ok()?;
    count(Counter::TcLocalReply);
    Some(())
}
