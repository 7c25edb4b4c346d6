//! Backend choice: the flow table first (an established flow keeps its backend while
//! that backend is up or draining), else the VIP's live Maglev ring.

use aya_ebpf::bindings::BPF_ANY;
use lb_common::{
    BACKEND_DOWN, BACKEND_UP, Backend, Counter, FlowEntry, FlowKey, NO_BACKEND, VipMeta,
    hash::flow_hash,
};

use crate::maps::{self, FLOWS, RINGS, count};

/// The backend a packet goes to.
pub struct Choice {
    pub id: u32,
    pub backend: Backend,
    pub entry: FlowEntry,
    /// True when the flow entry must be (re)written: new flow or re-hashed.
    pub new_flow: bool,
}

/// The flow's remembered backend, if it is still valid, into `out`.
#[inline(always)]
pub fn remembered(key: &FlowKey, out: &mut Choice) -> bool {
    let Some(p) = FLOWS.get_ptr(key) else {
        return false;
    };
    maps::copy_into(p, &mut out.entry);
    if maps::backend(out.entry.backend, &mut out.backend)
        && out.backend.generation == out.entry.generation
        && out.backend.state != BACKEND_DOWN
    {
        out.id = out.entry.backend;
        out.new_flow = false;
        return true;
    }
    count(Counter::FlowRehashed);
    false
}

/// The backend the VIP's live ring gives this flow, if one is up, into `out`.
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
        snat_port: 0,
        _pad: 0,
    };
    out.new_flow = true;
    true
}

/// Remembered backend, else hashed.
#[inline(always)]
pub fn choose(vip: &VipMeta, key: &FlowKey, out: &mut Choice) -> bool {
    remembered(key, out) || hashed(vip, key, out)
}

/// Stores the flow's binding (new or re-hashed flows only).
#[inline(always)]
pub fn remember(key: &FlowKey, entry: &FlowEntry) {
    // An LRU insert only fails under memory pressure; the flow then re-hashes to the
    // same backend on its next packet (the ring is deterministic), so nothing breaks.
    let _ = FLOWS.insert(key, entry, BPF_ANY as u64);
}
