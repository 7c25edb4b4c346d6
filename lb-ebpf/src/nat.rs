//! Full NAT: source port allocation for client flows and reply translation.
//!
//! A binding is the NAT map entry keyed by the reply's 5-tuple (backend -> SNAT
//! address:port). Ports are claimed with `BPF_NOEXIST`, so two CPUs can never hand out
//! the same free (SNAT address, port, backend, backend port, protocol). A binding
//! whose connection is over (expired: see `state.rs`) is taken over at once by the
//! claim that meets it, with a compare-and-swap on its `expires` word, so only one
//! claim wins it: ports run out only with genuinely concurrent flows. A binding
//! expired for longer than `NAT_RECLAIM_TICKS` is left alone: it is the agent's
//! sweep's to delete. A flow checks
//! its binding still exists and is its own once a tick, when it refreshes it (the
//! LRU may evict it, the agent may sweep it), and claims a port again if not.

use core::intrinsics::{AtomicOrdering, atomic_cxchg};

use aya_ebpf::bindings::BPF_NOEXIST;
use lb_common::{
    Counter, FlowKey, MAX_SNAT_ADDRS, NatEntry, SNAT_PORT_PROBES, hash::flow_hash, ticks,
};

use crate::{
    maps::{self, NAT, SNAT_ADDRS, SNAT_CURSORS, Scratch, count},
    packet::htons,
    state,
};

/// The reply 5-tuple of a client flow sent to `backend_addr:backend_port` from
/// `snat_addr:port`, into `out`.
#[inline(always)]
pub fn reply_key(
    client: &FlowKey,
    backend_addr: &[u32; 4],
    backend_port: u16,
    snat_addr: &[u32; 4],
    port: u16,
    out: &mut FlowKey,
) {
    out.src = *backend_addr;
    out.dst = *snat_addr;
    out.sport = backend_port;
    out.dport = port;
    out.proto = client.proto;
    out.family = client.family;
    out._pad = [0; 2];
}

/// The binding a new flow `s.key` towards `s.choice` writes, into `s.nat` (field by
/// field: a struct literal would be built on the BPF stack first).
#[inline(always)]
pub fn new_binding(s: &mut Scratch) {
    let n = &mut s.nat;
    n.client = s.key.src;
    n.vip = s.key.dst;
    n.client_port = s.key.sport;
    n.vip_port = s.key.dport;
    n.vip_id = s.vip.id;
    n.backend = s.choice.id;
    n.state = s.choice.entry.state;
    n._pad = [0; 3];
    n.seen = s.now;
    n.expires = s.choice.entry.expires;
    n.nh.expires_ns = 0;
    n.nh.ifindex = 0;
    n.nh.smac = [0; 6];
    n.nh.dmac = [0; 6];
}

/// Claims a source port (network order) for the flow `s.key` towards `s.choice`,
/// over the service's SNAT addresses; `s.reply` ends as the binding's key,
/// `s.vip.snat_addr` and the flow entry's as the address chosen. 0 when every probe
/// is taken.
///
/// The first probe is the flow's own position (a hash of the flow): a flow chosen
/// again (its entry lost or expired) finds its own binding there. The others follow
/// the service's cursor (`SNAT_CURSORS`) through every (address, port) in turn, so
/// claims walk the range in order and meet the ports claimed longest ago, the ones
/// most likely expired: the range fills to the last port, where probing from
/// hashes alone starts refusing flows at about half full (a long range, 32 probes).
///
/// (Few arguments and a scalar result: BPF calls pass at most five registers and no
/// stack.)
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value would copy the 40-byte key onto the 512-byte BPF stack"
)]
pub fn claim_port(s: &mut Scratch, backend_port: u16) -> u16 {
    let (min, max) = maps::snat_port_range();
    let max = if max > 0xffff { 0xffff } else { max };
    if max < min {
        return 0;
    }
    // Non-zero: at most 0x10000.
    let span = max - min + 1;
    if span == 0 {
        return 0;
    }
    new_binding(s);
    // Start away from the Maglev position bits so neighbouring flows spread.
    let start = flow_hash(&s.key).rotate_right(13);
    // Several SNAT addresses: the cursor goes round them port by port, so one
    // address running out of ports does not refuse the flow while another has some.
    let addrs = match s.vip.snat_count {
        0 => 1,
        n if n > MAX_SNAT_ADDRS => MAX_SNAT_ADDRS,
        n => n,
    };
    // At most 0x10000 * MAX_SNAT_ADDRS: no overflow.
    let slots = span * addrs;
    let cursor = SNAT_CURSORS.get_ptr_mut(s.vip.id);
    let from = cursor.map_or(start, |c| *maps::value_ref(c));
    for i in 0..SNAT_PORT_PROBES {
        let (addr, offset) = if i == 0 {
            ((start >> 24) % addrs, start % span)
        } else {
            let slot = from.wrapping_add(i - 1) % slots;
            (slot % addrs, slot / addrs)
        };
        if addrs > 1 {
            let Some(a) = SNAT_ADDRS.get_ptr(s.vip.id * MAX_SNAT_ADDRS + addr) else {
                return 0;
            };
            maps::copy_into(a, &mut s.vip.snat_addr);
        }
        let port = htons((min + offset) as u16);
        reply_key(
            &s.key,
            &s.choice.backend.addr,
            backend_port,
            &s.vip.snat_addr,
            port,
            &mut s.reply,
        );
        if NAT.insert(&s.reply, &s.nat, u64::from(BPF_NOEXIST)).is_ok() {
            return claimed(s, cursor, from, i, port);
        }
        let Some(p) = NAT.get_ptr_mut(&s.reply) else {
            continue;
        };
        let b = maps::value_mut(p);
        let (seen, old) = (b.seen, b.expires);
        let stale = state::expired(s.now, old);
        if stale && !ticks::nat_reclaimable(s.now, old) {
            // Expired too long ago: the agent's sweep may be deleting it; it is
            // nobody's to write.
            continue;
        }
        if maps::owned_by(b, &s.key) {
            // This client's own binding (a re-hashed flow, or its port reused): a
            // new connection on it. Expired, it is won like any other (another
            // claim may be taking it over).
            if stale && !take_over(p, seen, old, s.nat.expires) {
                continue;
            }
            let b = maps::value_mut(p);
            b.state = s.nat.state;
            b.seen = s.nat.seen;
            b.expires = s.nat.expires;
            b.backend = s.nat.backend;
            b.vip_id = s.nat.vip_id;
            return claimed(s, cursor, from, i, port);
        }
        if stale && take_over(p, seen, old, s.nat.expires) {
            maps::copy_into(&raw const s.nat, maps::value_mut(p));
            count(Counter::NatPortReused);
            return claimed(s, cursor, from, i, port);
        }
    }
    // Past this stretch of taken ports for the next claim.
    if let Some(c) = cursor {
        *maps::value_mut(c) = from.wrapping_add(SNAT_PORT_PROBES - 1);
    }
    0
}

/// A claim that got `port` at probe `i`: the flow entry takes the address, the
/// cursor moves past a port it took (a plain store: a lost race between CPUs costs
/// a later claim a probe, nothing more).
#[inline(always)]
fn claimed(s: &mut Scratch, cursor: Option<*mut u32>, from: u32, i: u32, port: u16) -> u16 {
    s.choice.entry.snat_addr = s.vip.snat_addr;
    if i > 0
        && let Some(c) = cursor
    {
        *maps::value_mut(c) = from.wrapping_add(i);
    }
    port
}

/// Makes the binding at `p` ours if its (`seen`, `expires`) are still the ones we
/// read (no other claim or refresh wrote them since), setting `expires`. The two
/// ticks are adjacent, 8-byte aligned, and swapped as one word (BPF_CMPXCHG; the
/// bpf target's `core::sync::atomic` has no compare-and-swap, the intrinsic does).
#[inline(always)]
fn take_over(p: *mut NatEntry, seen: u32, old: u32, expires: u32) -> bool {
    let word = |seen: u32, expires: u32| u64::from(seen) | u64::from(expires) << 32;
    // SAFETY: `seen` and `expires` are adjacent u32s at an 8-byte aligned offset of a
    // map value found by a lookup during this run (asserted in lb-common); every
    // concurrent writer of them stores whole words or uses this compare-and-swap.
    let (_, swapped) = unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::Relaxed }>(
            (&raw mut (*p).seen).cast::<u64>(),
            word(seen, old),
            word(seen, expires),
        )
    };
    swapped
}

/// The flow `s.key`'s binding under `s.reply` at its once-a-tick refresh: whether it
/// is still this flow's; if so it takes the client's packet into its state and age.
#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value would copy the 40-byte key onto the 512-byte BPF stack"
)]
pub fn refresh(s: &Scratch) -> bool {
    let Some(p) = NAT.get_ptr_mut(&s.reply) else {
        return false;
    };
    let b = maps::value_mut(p);
    if !maps::owned_by(b, &s.key) || state::expired(s.now, b.expires) {
        return false;
    }
    let next = state::from_client(b.state, s.key.proto, s.flags);
    b.state = next;
    b.seen = s.now;
    b.expires = s.now.wrapping_add(state::timeout(b.vip_id, next));
    true
}

/// The binding of a packet arriving at a SNAT address, if it is a NAT reply: copied
/// into `out`, and a pointer to the map value (its next-hop cache) returned.
#[inline(always)]
pub fn binding(reply: &FlowKey, out: &mut NatEntry) -> Option<*mut NatEntry> {
    let p = NAT.get_ptr_mut(reply)?;
    maps::copy_into(p, out);
    Some(p)
}

/// A backend's reply through binding `p` (copied in `s.nat`): its state and age
/// move on, at most one write a tick while the state stays.
#[inline(always)]
pub fn replied(s: &Scratch, p: *mut NatEntry) {
    let next = state::from_backend(s.nat.state, s.key.proto, s.flags);
    if next != s.nat.state || s.nat.seen != s.now {
        let b = maps::value_mut(p);
        b.state = next;
        b.seen = s.now;
        b.expires = s.now.wrapping_add(state::timeout(s.nat.vip_id, next));
    }
}
