//! Next hop and the way out: `bpf_fib_lookup`, then XDP_TX (same interface) or
//! redirect; an unresolved neighbour is handed to the kernel through XDP metadata read
//! by the TC companion (`tc.rs`), which calls `bpf_redirect_neigh`.
//!
//! The route lookup is the most expensive step of a forward (measured ~180 ns of
//! ~450 ns), so the result for a backend is cached per CPU for `NEXTHOP_TTL_NS`.
//!
//! The kernel helpers are called from here only; each call is one small `unsafe`.

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibLookupRaw, xdp_action},
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_xdp_adjust_meta},
    programs::XdpContext,
};
use lb_common::{Counter, FAMILY_V4, NEIGH_META_MAGIC, NEXTHOP_TTL_NS, NeighMeta, NextHop};

use crate::{
    headers::EthAddrs,
    maps::{Scratch, count},
    packet::{AF_INET, AF_INET6, Packet},
};

const FIB_RET_SUCCESS: i64 = 0;
const FIB_RET_NO_NEIGH: i64 = 7;

/// `struct bpf_fib_lookup` of the kernel UAPI, laid out by hand so it does not depend
/// on how bindgen named the unions.
#[repr(C)]
pub struct FibParams {
    family: u8,
    l4_protocol: u8,
    sport: u16,
    dport: u16,
    /// tot_len in, mtu_result out. 0 skips the MTU check (the device enforces it).
    tot_len: u16,
    ifindex: u32,
    flowinfo: u32,
    src: [u32; 4],
    dst: [u32; 4],
    vlan: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
}

const _: () = assert!(size_of::<FibParams>() == 64);

/// Where a packet goes: its new addresses and ports (memory order; for DSR only `dst`,
/// the backend, is routed on and nothing is rewritten) and the counter to bump when it
/// leaves through XDP.
pub struct Out {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub proto: u8,
    pub ok: Counter,
}

/// Routes the rewritten packet as if it came in on the context's interface, sets its
/// Ethernet addresses and returns the verdict: XDP_TX (same interface), redirect, pass
/// to the kernel (neighbour unresolved) or drop (no route), each counted.
///
/// `cache` points at a cached next hop for this destination (a backend's per-CPU
/// entry, a NAT binding's own) or is null: a fresh entry is used instead of the
/// route lookup, a stale one is refreshed by it.
#[inline(never)]
pub fn forward(ctx: &XdpContext, pkt: &Packet, s: &mut Scratch, cache: *mut NextHop) -> u32 {
    // The packet's arrival time (read once in `dispatch`).
    let now = s.now_ns;
    let (out, params) = (&s.out, &mut s.fib);
    // SAFETY: a non-null `cache` points into a map value found by a lookup during
    // this run (per-CPU array slot or LRU value), valid until the program returns.
    let cached = unsafe { cache.as_mut() };
    if let Some(nh) = &cached
        && now < nh.expires_ns
    {
        return send(ctx, pkt, nh.ifindex, &nh.smac, &nh.dmac, out.ok);
    }
    params.family = if out.family == FAMILY_V4 {
        AF_INET
    } else {
        AF_INET6
    };
    params.l4_protocol = out.proto;
    params.sport = 0;
    params.dport = 0;
    params.tot_len = 0;
    params.ifindex = ctx.ingress_ifindex() as u32;
    params.flowinfo = 0;
    params.src = out.src;
    params.dst = out.dst;
    // vlan/tbid and mark are inputs too (mark overlaps the MACs, which are output
    // only: without BPF_FIB_LOOKUP_MARK it is not read).
    params.vlan = 0;
    // SAFETY: `params` is a live, correctly sized `struct bpf_fib_lookup`.
    let ret = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            core::ptr::from_mut::<FibParams>(params).cast::<FibLookupRaw>(),
            size_of::<FibParams>() as i32,
            0,
        )
    };
    if ret == FIB_RET_NO_NEIGH {
        return to_kernel(ctx, params, out.family);
    }
    if ret != FIB_RET_SUCCESS {
        count(Counter::DropFibFailed);
        return xdp_action::XDP_DROP;
    }
    if let Some(nh) = cached {
        nh.expires_ns = now + NEXTHOP_TTL_NS;
        nh.ifindex = params.ifindex;
        nh.smac = params.smac;
        nh.dmac = params.dmac;
    }
    send(ctx, pkt, params.ifindex, &params.smac, &params.dmac, out.ok)
}

/// Sets the Ethernet addresses and sends the frame out of `ifindex`.
#[inline(always)]
fn send(
    ctx: &XdpContext,
    pkt: &Packet,
    ifindex: u32,
    s: &[u8; 6],
    d: &[u8; 6],
    ok: Counter,
) -> u32 {
    let Some(eth) = EthAddrs::at(pkt) else {
        count(Counter::DropInternal);
        crate::log::internal(crate::log::Internal::EthernetHeader);
        return xdp_action::XDP_DROP;
    };
    eth.set(d, s);
    count(ok);
    if ifindex == ctx.ingress_ifindex() as u32 {
        return xdp_action::XDP_TX;
    }
    // SAFETY: plain helper call with an interface index and no flags.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// No neighbour entry for the next hop yet: pass the (already rewritten) packet with
/// metadata telling the TC companion where it goes; `bpf_redirect_neigh` there makes
/// the kernel resolve the neighbour and transmit.
#[inline(always)]
fn to_kernel(ctx: &XdpContext, params: &FibParams, family: u8) -> u32 {
    let size = size_of::<NeighMeta>();
    // SAFETY: grows the metadata area in front of the packet; checked below.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(size as i32)) } != 0 {
        count(Counter::DropInternal);
        crate::log::internal(crate::log::Internal::AdjustMeta);
        return xdp_action::XDP_DROP;
    }
    let meta = ctx.metadata();
    if meta + size > ctx.data() {
        count(Counter::DropInternal);
        crate::log::internal(crate::log::Internal::MetaBounds);
        return xdp_action::XDP_DROP;
    }
    let m = NeighMeta {
        magic: NEIGH_META_MAGIC,
        ifindex: params.ifindex,
        nexthop: params.dst,
        family: u32::from(family),
    };
    // SAFETY: [meta, meta + size) is inside the metadata area checked just above.
    unsafe { core::ptr::write_unaligned(meta as *mut NeighMeta, m) };
    count(Counter::PassNoNeigh);
    xdp_action::XDP_PASS
}
