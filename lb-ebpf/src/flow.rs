//! Backend choice. An established flow is found in the flow table and forwarded from
//! the snapshot it carries (backend, service mode, SNAT address) while its backend is
//! up or draining and its service unchanged: no service lookup. Any other packet for
//! a service gets a backend from the service's live Maglev ring.

use aya_ebpf::bindings::BPF_ANY;
use lb_common::{
    BACKEND_DOWN, BACKEND_UP, Backend, Counter, FlowEntry, FlowKey, NO_BACKEND, VipMeta,
    hash::flow_hash,
};

use crate::maps::{self, FLOWS, RINGS, VIP_GENERATIONS, count};

/// The backend a packet goes to.
pub struct Choice {
    pub id: u32,
    pub backend: Backend,
    pub entry: FlowEntry,
    /// True when the flow entry must be (re)written: new flow or re-hashed.
    pub new_flow: bool,
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

/// The flow's binding if it is still valid: fills `out` and the parts of `vip` that
/// forwarding reads (slot, flags, SNAT address) from the flow's snapshot.
#[inline(always)]
pub fn established(key: &FlowKey, out: &mut Choice, vip: &mut VipMeta) -> bool {
    let Some(valid) = bound(key, out) else {
        return false;
    };
    let e = &out.entry;
    let live = valid
        && VIP_GENERATIONS
            .get_ptr(e.vip_id)
            .map(maps::copy)
            .is_some_and(|g| g == e.vip_generation);
    if live {
        vip.id = e.vip_id;
        vip.flags = e.vip_flags;
        vip.snat_addr = e.snat_addr;
        return true;
    }
    count(Counter::FlowRehashed);
    false
}

/// The flow's binding if it is still valid, whatever service it was bound under (ICMP
/// errors: the service was already looked up).
#[inline(always)]
pub fn remembered(key: &FlowKey, out: &mut Choice) -> bool {
    bound(key, out) == Some(true)
}

/// The backend the VIP's live ring gives this flow, if one is up, into `out`, with
/// the service snapshot a new binding carries.
#[inline(always)]
pub fn hashed(vip: &VipMeta, key: &FlowKey, out: &mut Choice) -> bool {
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
    out.id = id;
    out.entry = FlowEntry {
        backend: id,
        generation: out.backend.generation,
        vip_id: vip.id,
        vip_generation: vip.generation,
        vip_flags: vip.flags,
        snat_addr: vip.snat_addr,
        snat_port: 0,
        _pad: 0,
    };
    out.new_flow = true;
    true
}

/// Stores the flow's binding (new or re-hashed flows only).
#[inline(always)]
pub fn remember(key: &FlowKey, entry: &FlowEntry) {
    // An LRU insert only fails under memory pressure; the flow then re-hashes to the
    // same backend on its next packet (the ring is deterministic), so nothing breaks.
    let _ = FLOWS.insert(key, entry, BPF_ANY as u64);
}
