//! The load balancer's XDP program and its TC companion.
//!
//! Packet path (`lb_xdp`): parse to the IP header, look the destination up among our
//! addresses (a miss passes at once), then either
//! - a NAT reply (to a SNAT address with a binding): translate back to the client;
//! - a VIP service (TCP/UDP): choose the backend (flow table, else Maglev), rewrite
//!   (NAT: addresses and ports; DSR: MACs only), route with `bpf_fib_lookup`, send;
//!   a backend on this node gets the packet through the local stack instead
//!   (`local.rs`), its NAT replies translated back at TC egress (`tc_local.rs`);
//! - an ICMP error about a VIP flow: relay it to the flow's backend;
//! - anything else: pass to the stack, counted by reason.
//!
//! Socket programs (`sock.rs`, cgroup sock_addr hooks) balance this node's own
//! connects to a VIP over the same services, rings and backend states.
#![no_std]
#![no_main]
#![expect(
    internal_features,
    reason = "atomic_cxchg: the bpf target's core::sync::atomic has no compare-and-swap, \
              nat.rs takes an expired binding over with one"
)]
#![feature(core_intrinsics)]

#[cfg(feature = "bench")]
mod bench;
mod csum;
mod fib;
mod flow;
mod headers;
mod icmp;
mod local;
mod log;
mod maps;
mod nat;
mod packet;
mod parse;
mod reset;
mod rewrite;
mod sock;
mod sockctx;
mod state;
mod tc;
mod tc_local;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    ADDR_F_SNAT, ADDR_F_VIP_ANY_PORT, ADDR_F_VIP_PORTS, BACKEND_F_LOCAL, Counter, FAMILY_V6,
    PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, VIP_F_DSR, VIP_F_RESET, VIP_F_STANDBY, VipKey,
};

use crate::{
    headers::{Ports, Tcp, Udp},
    maps::{BACKEND_STATS, NEXTHOPS, Scratch, VIP_STATS, account, count},
    packet::Packet,
    parse::Ip,
};

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let pkt = Packet::new(&ctx);
    let Some(s) = maps::scratch() else {
        log::internal(log::Internal::Scratch);
        return pass(Counter::PassParseError);
    };
    match parse::ip(&pkt, &mut s.key, &mut s.addr) {
        Ok(ip) => dispatch(&ctx, &pkt, &ip, s),
        Err(reason) => pass(reason),
    }
}

#[inline(always)]
fn pass(reason: Counter) -> u32 {
    count(reason);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn drop(reason: Counter) -> u32 {
    count(reason);
    xdp_action::XDP_DROP
}

#[inline(always)]
fn dispatch(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    if ip.proto == PROTO_TCP || ip.proto == PROTO_UDP {
        // The whole transport header must be there before any state is created.
        let whole = if ip.proto == PROTO_TCP {
            Tcp::<10>::at(pkt, ip.l4).is_some()
        } else {
            Udp::at(pkt, ip.l4).is_some()
        };
        let Some(p) = Ports::at(pkt, ip.l4).filter(|_| whole) else {
            return pass(Counter::PassParseError);
        };
        s.key.sport = p.source();
        s.key.dport = p.dest();
        s.key._pad = [0; 2];
        // One clock read a packet: flow ages and the next-hop cache.
        // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
        s.now_ns = unsafe { bpf_ktime_get_coarse_ns() };
        s.now = state::tick(s.now_ns);
        s.flags = state::tcp_flags(pkt, ip);
        if ip.addr_flags & ADDR_F_SNAT != 0 {
            let verdict = nat_reply(ctx, pkt, ip, s);
            if verdict != NOT_A_REPLY {
                return verdict;
            }
        }
        if ip.addr_flags & (ADDR_F_VIP_PORTS | ADDR_F_VIP_ANY_PORT) != 0 {
            if flow::established(s, ip.proto) {
                return forward(ctx, pkt, ip, s);
            }
            if service(ip, s) {
                if s.vip.flags & VIP_F_STANDBY != 0 {
                    return pass(Counter::PassStandby);
                }
                if !s.choice.found && state::midstream(ip.proto, s.flags) {
                    // Carried over by an upgrade in a moment: a new NAT binding
                    // would give the connection another source port.
                    if s.vip.flags & VIP_F_DSR == 0 && maps::upgrade_holds(s.now) {
                        return drop(Counter::DropUpgradeHold);
                    }
                    count(Counter::FlowMidstream);
                }
                return new_flow(ctx, pkt, ip, s);
            }
        }
        if ip.addr_flags & ADDR_F_SNAT != 0 {
            // A NAT source port's reply is a binding still to copy; the node's own
            // traffic to the address (health checks, ssh) uses other ports.
            let (lo, hi) = maps::snat_port_range();
            let port = u32::from(u16::from_be(s.key.dport));
            if port >= lo && port <= hi && maps::upgrade_holds(s.now) {
                return drop(Counter::DropUpgradeHold);
            }
            return pass(Counter::PassNatNoEntry);
        }
        return pass(Counter::PassNoService);
    }
    if ip.proto == PROTO_ICMP || ip.proto == PROTO_ICMPV6 {
        return icmp_error(ctx, pkt, ip, s);
    }
    if ip.family == FAMILY_V6 {
        // An extension header we do not walk (routing, ESP, ...) or no transport.
        return pass(Counter::PassIpv6Ext);
    }
    pass(Counter::PassNoService)
}

/// The service for the destination port, else the VIP's any-port service, into
/// `s.vip`.
#[inline(always)]
fn service(ip: &Ip, s: &mut Scratch) -> bool {
    let mut vk = VipKey {
        addr: s.key.dst,
        port: s.key.dport,
        proto: ip.proto,
        family: ip.family,
    };
    if ip.addr_flags & ADDR_F_VIP_PORTS != 0 && maps::vip(&vk, &mut s.vip) {
        return true;
    }
    if ip.addr_flags & ADDR_F_VIP_ANY_PORT != 0 {
        vk.port = 0;
        return maps::vip(&vk, &mut s.vip);
    }
    false
}

#[inline(always)]
fn no_backend(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &Scratch) -> u32 {
    if s.vip.flags & VIP_F_RESET != 0 && ip.proto == PROTO_TCP {
        return reset::send(ctx, pkt, ip, &s.key);
    }
    count(Counter::DropNoBackend);
    xdp_action::XDP_DROP
}

/// A packet for a service without a valid binding: a backend from the ring.
#[inline(never)]
fn new_flow(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    if !flow::hashed(&s.vip, &s.key, &mut s.choice, s.now, s.flags) {
        return no_backend(ctx, pkt, ip, s);
    }
    forward(ctx, pkt, ip, s)
}

/// A packet of a flow with its backend chosen: routed to a remote backend, or handed
/// to the local stack for one on this node. (Decided here rather than inside
/// `to_backend`, so neither path adds a call frame to the other: the BPF stack of
/// a call chain is capped at 512 bytes.)
#[inline(always)]
fn forward(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    if s.choice.backend.flags & BACKEND_F_LOCAL != 0 {
        return local::deliver(pkt, ip, s);
    }
    to_backend(ctx, pkt, ip, s)
}

/// Sends a packet of a flow to `s.choice` under the service parts of `s.vip` (slot,
/// flags, SNAT address), binding a NAT port and remembering the flow when new.
#[inline(never)]
fn to_backend(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    let bport = match s.choice.backend.port {
        0 => s.key.dport,
        p => p,
    };
    let dsr = s.vip.flags & VIP_F_DSR != 0;
    if !dsr {
        let mut bound = !s.choice.new_flow && s.choice.entry.snat_port != 0;
        // The binding is checked (and refreshed) when the flow is, once a tick or on
        // a new state; in between the flow entry's port is trusted.
        if bound && s.choice.refresh {
            let c = &s.choice;
            nat::reply_key(
                &s.key,
                &c.backend.addr,
                bport,
                &s.vip.snat_addr,
                c.entry.snat_port,
                &mut s.reply,
            );
            bound = nat::refresh(s);
            if !bound {
                count(Counter::NatBindingLost);
            }
        }
        if !bound {
            let port = nat::claim_port(s, bport);
            if port == 0 {
                count(Counter::DropSnatExhausted);
                let b = &s.choice.backend;
                log::snat_exhausted(s.vip.id, &b.addr, b.family, bport);
                return xdp_action::XDP_DROP;
            }
            s.choice.entry.snat_port = port;
            s.choice.new_flow = true;
        }
    }
    if s.choice.new_flow {
        flow::remember(&s.key, &s.choice.entry);
    }
    account(&VIP_STATS, s.vip.id, ip.ip_len, s.choice.new_flow);
    account(&BACKEND_STATS, s.choice.id, ip.ip_len, s.choice.new_flow);
    s.out.src = if dsr { s.key.src } else { s.vip.snat_addr };
    s.out.dst = s.choice.backend.addr;
    s.out.sport = s.choice.entry.snat_port;
    s.out.dport = bport;
    s.out.family = ip.family;
    s.out.proto = ip.proto;
    s.out.ok = Counter::FwdToBackend;
    if !dsr && !rewrite::endpoints(pkt, ip, &s.key, &s.out) {
        return pass(Counter::PassParseError);
    }
    let cache = NEXTHOPS
        .get_ptr_mut(s.choice.id)
        .unwrap_or(core::ptr::null_mut());
    fib::forward(ctx, pkt, s, cache)
}

/// `nat_reply`'s answer for a packet without a binding (not an XDP action).
const NOT_A_REPLY: u32 = u32::MAX;

/// Translates a backend's reply back to the client, or returns `NOT_A_REPLY`.
#[inline(never)]
fn nat_reply(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    let Some(binding) = nat::binding(&s.key, &mut s.nat) else {
        return NOT_A_REPLY;
    };
    if state::expired(s.now, s.nat.expires) {
        return pass(Counter::PassNatExpired);
    }
    nat::replied(s, binding);
    s.out.src = s.nat.vip;
    s.out.dst = s.nat.client;
    s.out.sport = s.nat.vip_port;
    s.out.dport = s.nat.client_port;
    s.out.family = ip.family;
    s.out.proto = ip.proto;
    s.out.ok = Counter::FwdNatReply;
    if !rewrite::endpoints(pkt, ip, &s.key, &s.out) {
        return pass(Counter::PassParseError);
    }
    account(&VIP_STATS, s.nat.vip_id, ip.ip_len, false);
    account(&BACKEND_STATS, s.nat.backend, ip.ip_len, false);
    // SAFETY: `binding` points at the LRU value found above, valid for this run.
    let cache = unsafe { &raw mut (*binding).nh };
    fib::forward(ctx, pkt, s, cache)
}

#[inline(never)]
fn icmp_error(ctx: &XdpContext, pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    if ip.addr_flags & (ADDR_F_VIP_PORTS | ADDR_F_VIP_ANY_PORT) == 0 || !icmp::target(pkt, ip, s) {
        return pass(Counter::PassIcmpLocal);
    }
    // A backend on this node: the stack takes the error (its socket is the backend's
    // address, so it ignores an error about the VIP's; see docs/dataplane.md).
    if s.choice.backend.flags & BACKEND_F_LOCAL != 0 {
        return pass(Counter::PassIcmpLocal);
    }
    let dsr = s.vip.flags & VIP_F_DSR != 0;
    if !dsr && !icmp::translate(pkt, ip, s) {
        return pass(Counter::PassParseError);
    }
    s.out.src = if dsr {
        s.key.src
    } else {
        s.choice.entry.snat_addr
    };
    s.out.dst = s.choice.backend.addr;
    s.out.sport = 0;
    s.out.dport = 0;
    s.out.family = ip.family;
    s.out.proto = ip.proto;
    s.out.ok = Counter::FwdIcmpError;
    fib::forward(ctx, pkt, s, core::ptr::null_mut())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
