//! The program's maps and load-time globals. Sizes here are placeholders: the agent
//! sets every capacity at load time (`EbpfLoader::set_max_entries`). Each static
//! matches its row of `lb_common::MAPS` (name, type, key, value, flags): the agent's
//! test `the_object_declares_the_table_of_maps` checks the built object against it.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use lb_common::{
    ADDR_SLOT_SHARED, ADDR_TABLE_SLOTS, AddrInfo, AddrKey, AddrSlot, Backend, COUNTER_COUNT,
    Counter, DEFAULT_RING_SIZE, FlowEntry, FlowKey, NatEntry, NextHop, SockKey, SockOrigin,
    Timeouts, TrafficCounters, VipKey, VipMeta, hash::addr_slot,
};

/// Our addresses (VIPs, SNAT addresses). Not preallocated: readers are RCU-protected.
#[map]
pub static ADDRS: HashMap<AddrKey, AddrInfo> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// Direct-mapped copy of `ADDRS`, two halves (see `lb_common::MAP_ADDR_TABLE`).
#[map]
pub static ADDR_TABLE: Array<AddrSlot> = Array::with_max_entries(2 * ADDR_TABLE_SLOTS, 0);

/// Which half of `ADDR_TABLE` is live.
#[map]
pub static ADDR_TABLE_LIVE: Array<u32> = Array::with_max_entries(1, 0);

/// Services. Not preallocated, so replacing a value (ring swap) is atomic for readers.
#[map]
pub static VIPS: HashMap<VipKey, VipMeta> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// Per VIP slot: the generation established flows must carry (see `FlowEntry`).
#[map]
pub static VIP_GENERATIONS: Array<u32> = Array::with_max_entries(1, 0);

/// Backend slots.
#[map]
pub static BACKENDS: Array<Backend> = Array::with_max_entries(1, 0);

/// Maglev rings: slot `vip.id * 2 + vip.ring`, `LB_RING_SIZE` entries each.
#[map]
pub static RINGS: Array<u32> = Array::with_max_entries(1, 0);

/// Client flow -> backend.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowEntry> = LruHashMap::with_max_entries(1, 0);

/// NAT binding: backend reply 5-tuple -> client.
#[map]
pub static NAT: LruHashMap<FlowKey, NatEntry> = LruHashMap::with_max_entries(1, 0);

/// Per CPU, per backend slot: the cached next hop.
#[map]
pub static NEXTHOPS: PerCpuArray<NextHop> = PerCpuArray::with_max_entries(1, 0);

/// Global counters, indexed by `Counter`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Per VIP slot traffic.
#[map]
pub static VIP_STATS: PerCpuArray<TrafficCounters> = PerCpuArray::with_max_entries(1, 0);

/// Per backend slot traffic.
#[map]
pub static BACKEND_STATS: PerCpuArray<TrafficCounters> = PerCpuArray::with_max_entries(1, 0);

/// Per VIP slot, `MAX_SNAT_ADDRS` slots: NAT source addresses.
#[map]
pub static SNAT_ADDRS: Array<[u32; 4]> = Array::with_max_entries(1, 0);

/// Per VIP slot: where the service's next port claim probes after its hash.
#[map]
pub static SNAT_CURSORS: Array<u32> = Array::with_max_entries(1, 0);

/// Per VIP slot: flow lifetimes by state.
#[map]
pub static TIMEOUTS: Array<Timeouts> = Array::with_max_entries(1, 0);

/// The tick until which NAT packets missing their flow or binding are held
/// (`lb_common::MAP_UPGRADE_HOLD`).
#[map]
pub static UPGRADE_HOLD: Array<u32> = Array::with_max_entries(1, 0);

/// Whether an upgrade holds NAT packets that miss their state at tick `now`: read
/// on those (rare) paths only.
#[inline(always)]
pub fn upgrade_holds(now: u32) -> bool {
    match UPGRADE_HOLD.get(0) {
        Some(&until) => until != 0 && !lb_common::ticks::expired(now, until),
        None => false,
    }
}

/// Sockets the socket programs sent to a backend instead of a VIP.
#[map]
pub static SOCK_REVNAT: LruHashMap<SockKey, SockOrigin> = LruHashMap::with_max_entries(1, 0);

// Load-time globals (`lb_common::GLOBAL_*`). Read with `read_volatile` so the compiler
// does not fold the defaults in; the loader rewrites them in `.rodata`.
#[unsafe(no_mangle)]
static LB_RING_SIZE: u32 = DEFAULT_RING_SIZE;
#[unsafe(no_mangle)]
static LB_MAX_VIPS: u32 = 1;
#[unsafe(no_mangle)]
static LB_SNAT_PORT_MIN: u32 = lb_common::DEFAULT_SNAT_PORT_MIN as u32;
#[unsafe(no_mangle)]
static LB_SNAT_PORT_MAX: u32 = lb_common::DEFAULT_SNAT_PORT_MAX as u32;
#[unsafe(no_mangle)]
static LB_NETNS_COOKIE: u64 = 0;

#[inline(always)]
fn global(v: &'static u32) -> u32 {
    // SAFETY: a valid, aligned static; volatile only to keep the load in the program.
    unsafe { core::ptr::read_volatile(v) }
}

#[inline(always)]
pub fn ring_size() -> u32 {
    global(&LB_RING_SIZE)
}

#[inline(always)]
pub fn max_vips() -> u32 {
    global(&LB_MAX_VIPS)
}

#[inline(always)]
pub fn snat_port_range() -> (u32, u32) {
    (global(&LB_SNAT_PORT_MIN), global(&LB_SNAT_PORT_MAX))
}

/// The network namespace whose sockets the socket programs balance (0: every one).
#[inline(always)]
pub fn netns_cookie() -> u64 {
    // SAFETY: as in `global`.
    unsafe { core::ptr::read_volatile(&LB_NETNS_COOKIE) }
}

/// Bumps a global counter.
#[inline(always)]
pub fn count(c: Counter) {
    if let Some(p) = STATS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU value of this CPU; XDP runs with preemption disabled.
        unsafe { *p += 1 }
    }
}

/// Adds one packet of `bytes` (and a new flow if `new_flow`) to a traffic counter.
#[inline(always)]
pub fn account(map: &PerCpuArray<TrafficCounters>, index: u32, bytes: usize, new_flow: bool) {
    if let Some(p) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU value of this CPU, see `count`.
        unsafe {
            (*p).packets += 1;
            (*p).bytes += bytes as u64;
            (*p).new_flows += u64::from(new_flow);
        }
    }
}

/// Adds one new flow (a balanced socket: no packet seen) to a traffic counter.
#[inline(always)]
pub fn account_flow(map: &PerCpuArray<TrafficCounters>, index: u32) {
    if let Some(p) = map.get_ptr_mut(index) {
        // SAFETY: this CPU's value; a socket program may be preempted, so an
        // increment racing another on the same CPU can be lost (a counter, not state).
        unsafe { (*p).new_flows += 1 }
    }
}

/// A copy of a map value behind a pointer from a lookup.
#[inline(always)]
pub fn copy<T: Copy>(p: *const T) -> T {
    // SAFETY: `p` comes from a successful map lookup (non-null, valid for T); the maps
    // read this way are RCU-protected (not preallocated, LRU, or arrays whose slots
    // the agent never reuses while flows may point at them).
    unsafe { *p }
}

/// Copies the map value behind `p` into `out` (scratch memory). A plain `*out = *p`
/// between two pointers becomes a `memmove`, which BPF can only call as a byte loop;
/// a non-overlapping copy is expanded inline into word loads and stores.
#[inline(always)]
pub fn copy_into<T: Copy>(p: *const T, out: &mut T) {
    // SAFETY: `p` as in `copy`; `out` is a distinct, valid destination (scratch
    // memory never aliases another map's value).
    unsafe { core::ptr::copy_nonoverlapping(p, out, 1) }
}

/// Looks up `key` in `VIPS` into `out`.
#[inline(always)]
pub fn vip(key: &VipKey, out: &mut VipMeta) -> bool {
    match VIPS.get_ptr(key) {
        Some(p) => {
            copy_into(p, out);
            true
        }
        None => false,
    }
}

/// Does the NAT binding `e` belong to the client flow `client`?
#[inline(always)]
pub fn owned_by(e: &NatEntry, client: &FlowKey) -> bool {
    e.client == client.src
        && e.client_port == client.sport
        && e.vip == client.dst
        && e.vip_port == client.dport
}

/// A map value behind a pointer from a successful lookup, read in place.
#[inline(always)]
pub fn value_ref<T>(p: *const T) -> &'static T {
    // SAFETY: as in `copy`; the value stays valid until the program returns.
    unsafe { &*p }
}

/// A map value behind a pointer from a successful lookup of an LRU or array map.
#[inline(always)]
pub fn value_mut<T>(p: *mut T) -> &'static mut T {
    // SAFETY: `p` comes from a successful lookup during this run; the value stays
    // valid until the program returns (RCU). Other CPUs may write it concurrently:
    // callers only store whole words whose last writer wins (state, ticks), or take
    // a word over with a compare-and-swap (`nat::take_over`).
    unsafe { &mut *p }
}

/// `ADDR_F_*` flags of an address (0: not ours). The live half of the address table
/// answers; only a slot shared by several of our addresses asks `ADDRS`.
#[inline(always)]
pub fn addr_flags(key: &AddrKey) -> u32 {
    let half = ADDR_TABLE_LIVE.get_ptr(0).map_or(0, copy) & 1;
    let index = half * ADDR_TABLE_SLOTS + addr_slot(&key.addr, key.family);
    let Some(p) = ADDR_TABLE.get_ptr(index) else {
        return 0;
    };
    // SAFETY: a value of an array map found by the lookup above.
    let slot = unsafe { &*p };
    if slot.family == key.family
        && slot.addr[0] == key.addr[0]
        && slot.addr[1] == key.addr[1]
        && slot.addr[2] == key.addr[2]
        && slot.addr[3] == key.addr[3]
    {
        return slot.flags;
    }
    if slot.family != ADDR_SLOT_SHARED {
        return 0;
    }
    ADDRS.get_ptr(key).map(copy).map_or(0, |i| i.flags)
}

/// Backend slot `id` into `out`.
#[inline(always)]
pub fn backend(id: u32, out: &mut Backend) -> bool {
    match BACKENDS.get_ptr(id) {
        Some(p) => {
            copy_into(p, out);
            true
        }
        None => false,
    }
}

/// Per-packet working state too large for the 512-byte BPF stack, in this CPU's slot
/// of a per-CPU array (XDP runs to completion on one CPU, so the slot is ours).
#[repr(C)]
pub struct Scratch {
    /// The packet's 5-tuple (for an ICMP error: its outer addresses, ports 0).
    pub key: FlowKey,
    /// The destination as an `ADDRS` key.
    pub addr: AddrKey,
    /// The service it is for.
    pub vip: VipMeta,
    /// A NAT binding (reply path).
    pub nat: NatEntry,
    /// The chosen backend.
    pub choice: crate::flow::Choice,
    /// The NAT binding key of a forward flow; for an ICMP error, the client flow it
    /// is about.
    pub reply: FlowKey,
    /// Where the rewritten packet goes.
    pub out: crate::fib::Out,
    /// `bpf_fib_lookup` parameters.
    pub fib: crate::fib::FibParams,
    /// `bpf_ktime_get_coarse_ns` when the packet arrived (TCP/UDP packets).
    pub now_ns: u64,
    /// The same in clock ticks (`state::tick`).
    pub now: u32,
    /// The packet's TCP flags (0 for UDP).
    pub flags: u8,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch area.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: a per-CPU array slot is only touched by the program running on this CPU,
    // which runs to completion; no other reference to it exists during the packet.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}
