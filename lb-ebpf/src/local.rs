//! Backends on this node (`BACKEND_F_LOCAL`): the XDP program cannot route a packet
//! to one of the node's own addresses (`bpf_fib_lookup` answers "not forwarded"), so
//! it hands the packet to the local stack instead, after the same choice, flow table
//! entry and counters as any backend:
//! - NAT: the destination becomes the backend's address and port, the source stays
//!   the client (a source address of our own would be dropped as martian). A binding
//!   keyed by the backend's reply (backend -> client) lets the TC egress companion
//!   (`tc_local.rs`) turn the replies back into VIP -> client.
//! - DSR: nothing changes; the node holds the VIP (it receives it), so the stack
//!   delivers the packet to whatever listens on the VIP or the wildcard address.

use aya_ebpf::bindings::{BPF_ANY, xdp_action};
use lb_common::{Counter, VIP_F_DSR};

use crate::{
    flow,
    maps::{BACKEND_STATS, NAT, Scratch, VIP_STATS, account, count},
    nat,
    packet::Packet,
    parse::Ip,
    pass, rewrite,
};

/// Sends a packet of the flow `s.key` to the local backend `s.choice` through the
/// stack.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value would copy the binding's key and value onto the 512-byte BPF stack"
)]
pub fn deliver(pkt: &Packet, ip: &Ip, s: &mut Scratch) -> u32 {
    let bport = match s.choice.backend.port {
        0 => s.key.dport,
        p => p,
    };
    let dsr = s.vip.flags & VIP_F_DSR != 0;
    // A local backend needs no source port of ours: the client's stays.
    s.choice.entry.snat_port = 0;
    if !dsr && s.choice.refresh {
        let c = &s.choice;
        nat::reply_key(
            &s.key,
            &c.backend.addr,
            bport,
            &s.key.src,
            s.key.sport,
            &mut s.reply,
        );
        // New, or its binding gone at the once-a-tick check: (re)written. Built in
        // scratch memory: the BPF stack has no room for it here.
        if s.choice.new_flow || !nat::refresh(s) {
            nat::new_binding(s);
            // The reply 5-tuple is the client's own flow mirrored: no other live
            // flow can hold it, so no claim is needed. Should the insert fail (memory
            // pressure), the next check tries again.
            if let Err(e) = NAT.insert(&s.reply, &s.nat, u64::from(BPF_ANY)) {
                crate::log::insert_failed(crate::log::Table::Nat, e);
            }
        }
    }
    if s.choice.new_flow {
        flow::remember(&s.key, &s.choice.entry);
    }
    account(&VIP_STATS, s.vip.id, ip.ip_len, s.choice.new_flow);
    account(&BACKEND_STATS, s.choice.id, ip.ip_len, s.choice.new_flow);
    if !dsr {
        s.out.src = s.key.src;
        s.out.dst = s.choice.backend.addr;
        s.out.sport = s.key.sport;
        s.out.dport = bport;
        s.out.family = ip.family;
        s.out.proto = ip.proto;
        // Inlined: this frame is the last of its chain (see `rewrite::rewrite`).
        if rewrite::rewrite(pkt, ip, &s.key, &s.out).is_none() {
            return pass(Counter::PassParseError);
        }
    }
    count(Counter::FwdToLocal);
    xdp_action::XDP_PASS
}
