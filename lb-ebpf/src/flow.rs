//! Backend choice. An established flow is found in the flow table and forwarded from
//! the snapshot it carries (backend, service mode, SNAT address) while its backend is
//! up or draining, its service unchanged and the flow not expired: no service
//! lookup. Any other packet for a service gets a backend from the service's live
//! Maglev ring. Flow state and age: see `state.rs`.

use aya_ebpf::bindings::BPF_ANY;
use lb_common::{
    BACKEND_DOWN, BACKEND_UP, Backend, Counter, FlowEntry, FlowKey, NO_BACKEND, VipMeta,
    hash::flow_hash,
};

use crate::{
    maps::{self, FLOWS, RINGS, Scratch, VIP_GENERATIONS, count},
    state,
};

/// The backend a packet goes to.
pub struct Choice {
    pub id: u32,
    pub backend: Backend,
    pub entry: FlowEntry,
    /// True when the flow entry must be (re)written: new flow or re-hashed.
    pub new_flow: bool,
    /// The entry was refreshed by this packet (a new state, or its once-a-tick
    /// refresh): a NAT flow checks and refreshes its binding too.
    pub refresh: bool,
    /// The flow table held an entry for the packet (live or not).
    pub found: bool,
}

/// The flow's binding, copied into `out`: `None` without one, else whether its
/// backend still takes it (same generation, not down).
#[inline(always)]
fn bound(key: &FlowKey, out: &mut Choice) -> Option<bool> {
    let p = FLOWS.get_ptr(key)?;
    maps::copy_into(p, &mut out.entry);
    let valid = maps::backend(out.entry.backend, &mut out.backend)
        && out.backend.generation == out.entry.generation
        && out.backend.state != BACKEND_DOWN;
    if valid {
        out.id = out.entry.backend;
        out.new_flow = false;
    }
    Some(valid)
}

/// The flow of `s.key` if it is still valid and alive: fills `s.choice` and the
/// parts of `s.vip` that forwarding reads (slot, flags, SNAT address) from the
/// flow's snapshot, and moves the flow's state and age on.
#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value would copy the 40-byte key onto the 512-byte BPF stack"
)]
pub fn established(s: &mut Scratch, proto: u8) -> bool {
    let Some(p) = FLOWS.get_ptr_mut(&s.key) else {
        s.choice.found = false;
        return false;
    };
    s.choice.found = true;
    maps::copy_into(p, &mut s.choice.entry);
    let e = &s.choice.entry;
    if state::expired(s.now, e.expires) || state::reopens(e.state, s.flags) {
        count(Counter::FlowExpired);
        return false;
    }
    let out = &mut s.choice;
    let valid = maps::backend(out.entry.backend, &mut out.backend)
        && out.backend.generation == out.entry.generation
        && out.backend.state != BACKEND_DOWN
        && VIP_GENERATIONS
            .get_ptr(out.entry.vip_id)
            .map(maps::copy)
            .is_some_and(|g| g == out.entry.vip_generation);
    if !valid {
        count(Counter::FlowRehashed);
        return false;
    }
    out.id = out.entry.backend;
    out.new_flow = false;
    let e = &mut out.entry;
    s.vip.id = e.vip_id;
    s.vip.flags = e.vip_flags;
    s.vip.snat_addr = e.snat_addr;
    let next = state::from_client(e.state, proto, s.flags);
    out.refresh = next != e.state || e.seen != s.now;
    if out.refresh {
        e.state = next;
        e.seen = s.now;
        e.expires = s.now.wrapping_add(state::timeout(e.vip_id, next));
        let v = maps::value_mut(p);
        v.state = e.state;
        v.seen = e.seen;
        v.expires = e.expires;
    }
    true
}

/// The flow's binding if it is still valid, whatever service it was bound under (ICMP
/// errors: the service was already looked up).
#[inline(always)]
pub fn remembered(key: &FlowKey, out: &mut Choice) -> bool {
    bound(key, out) == Some(true)
}

/// The backend the VIP's live ring gives this flow, if one is up, into `s.choice`,
/// with the service snapshot a new flow entry carries. (`key` is `s.key`, or for
/// an ICMP error the flow it quotes.) Not inlined: the hash's register spills stay
/// in its own frame, off the call chain that forwards the packet afterwards (the
/// BPF stack of a call chain is capped at 512 bytes).
#[inline(never)]
pub fn hashed(vip: &VipMeta, key: &FlowKey, out: &mut Choice, now: u32, flags: u8) -> bool {
    let size = maps::ring_size();
    if size == 0 || vip.id >= maps::max_vips() {
        return false;
    }
    let ring = vip.id * 2 + (vip.ring & 1);
    let index = ring * size + flow_hash(key) % size;
    let Some(p) = RINGS.get_ptr(index) else {
        return false;
    };
    let id = maps::copy(p);
    if id == NO_BACKEND || !maps::backend(id, &mut out.backend) || out.backend.state != BACKEND_UP {
        return false;
    }
    let first = state::first(key.proto, flags);
    out.id = id;
    // Field by field: a whole struct literal would be built on the BPF stack first.
    let e = &mut out.entry;
    e.backend = id;
    e.generation = out.backend.generation;
    e.vip_id = vip.id;
    e.vip_generation = vip.generation;
    e.vip_flags = vip.flags;
    e.snat_addr = vip.snat_addr;
    e.snat_port = 0;
    e.state = first;
    e._pad = 0;
    e.seen = now;
    e.expires = now.wrapping_add(state::timeout(vip.id, first));
    out.new_flow = true;
    out.refresh = true;
    true
}

/// Stores the flow's binding (new or re-hashed flows only).
#[inline(always)]
pub fn remember(key: &FlowKey, entry: &FlowEntry) {
    // An LRU insert only fails under memory pressure; the flow then re-hashes to the
    // same backend on its next packet (the ring is deterministic), so nothing breaks.
    if let Err(e) = FLOWS.insert(key, entry, u64::from(BPF_ANY)) {
        crate::log::insert_failed(crate::log::Table::Flows, e);
    }
}
