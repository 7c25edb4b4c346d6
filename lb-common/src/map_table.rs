//! Every map of the data plane in one table: name, type, key and value, how many
//! entries, and what it holds. The agent derives the shapes it creates, pins and
//! checks from it (`lb-agent/src/dataplane/shapes.rs`) and what an upgrade copies
//! (`migrate`); a test parses the built object and checks each `#[map]` static of
//! `lb-ebpf` against it, without root.

use core::mem::size_of;

use crate::{
    ADDR_TABLE_SLOTS, AddrInfo, AddrKey, AddrSlot, Backend, COUNTER_COUNT, FlowEntry, FlowKey,
    MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE, MAP_ADDRS, MAP_AYA_LOGS, MAP_BACKEND_STATS, MAP_BACKENDS,
    MAP_FLOWS, MAP_LOG_LAST, MAP_LOG_SWITCH, MAP_NAT, MAP_NEXTHOPS, MAP_RINGS, MAP_SNAT_ADDRS,
    MAP_SNAT_CURSORS, MAP_SOCK_REVNAT, MAP_STATS, MAP_TIMEOUTS, MAP_UPGRADE_HOLD,
    MAP_VIP_GENERATIONS, MAP_VIP_STATS, MAP_VIPS, MAX_SNAT_ADDRS, NatEntry, NextHop, SockKey,
    SockOrigin, Timeouts, TrafficCounters, VipKey, VipMeta,
};

/// The kernel map types the program uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`, not preallocated (`BPF_F_NO_PREALLOC`): a replaced value
    /// stays valid for a reader that holds it (RCU).
    Hash,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PerCpuArray,
}

impl MapType {
    /// The kernel's `enum bpf_map_type` value.
    pub const fn kernel_type(self) -> u32 {
        match self {
            Hash => 1,
            Array => 2,
            PerCpuArray => 6,
            LruHash => 9,
        }
    }

    /// The map flags the program declares it with.
    pub const fn flags(self) -> u32 {
        match self {
            // BPF_F_NO_PREALLOC
            Hash => 1,
            _ => 0,
        }
    }
}

/// How many entries a map gets, from the capacities the agent loads with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    Fixed(u32),
    /// This many per VIP slot (`max_vips`).
    PerVip(u32),
    /// One per backend slot (`max_backends`).
    PerBackend,
    /// Each service's address and its own SNAT addresses, and each backend's
    /// address (a local backend's).
    Addresses,
    /// Two Maglev rings per VIP slot.
    Rings,
    /// `flow_table_size`.
    Flows,
    /// `sock_table_size`.
    Sockets,
}

/// What a map holds, which decides what an upgrade of the maps does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRole {
    /// Written by the agent from its config (services, backends, addresses):
    /// copied into new maps, the agent's bookkeeping rebuilt from them.
    Config,
    /// Derived or cached: rebuilt by the agent or refilled by the program.
    Rebuilt,
    /// Written by the program per connection (flows, bindings, balanced sockets).
    Connection,
    /// Counters.
    Counter,
}

/// One map of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// The `#[map]` static's name in lb-ebpf (the name the agent pins it by).
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Entries,
    pub role: MapRole,
}

const fn def<K, V>(
    name: &'static str,
    map_type: MapType,
    entries: Entries,
    role: MapRole,
) -> MapDef {
    MapDef {
        name,
        map_type,
        key_size: size_of::<K>() as u32,
        value_size: size_of::<V>() as u32,
        entries,
        role,
    }
}

use Entries::*;
use MapRole::*;
use MapType::*;

/// Every map the agent owns and pins.
pub const MAPS: [MapDef; 18] = [
    def::<AddrKey, AddrInfo>(MAP_ADDRS, Hash, Addresses, Config),
    def::<u32, AddrSlot>(MAP_ADDR_TABLE, Array, Fixed(2 * ADDR_TABLE_SLOTS), Config),
    def::<u32, u32>(MAP_ADDR_TABLE_LIVE, Array, Fixed(1), Config),
    def::<VipKey, VipMeta>(MAP_VIPS, Hash, PerVip(1), Config),
    def::<u32, u32>(MAP_VIP_GENERATIONS, Array, PerVip(1), Config),
    def::<u32, Backend>(MAP_BACKENDS, Array, PerBackend, Config),
    def::<u32, u32>(MAP_RINGS, Array, Rings, Rebuilt),
    def::<FlowKey, FlowEntry>(MAP_FLOWS, LruHash, Flows, Connection),
    def::<FlowKey, NatEntry>(MAP_NAT, LruHash, Flows, Connection),
    def::<u32, NextHop>(MAP_NEXTHOPS, PerCpuArray, PerBackend, Rebuilt),
    def::<u32, u64>(MAP_STATS, PerCpuArray, Fixed(COUNTER_COUNT), Counter),
    def::<u32, TrafficCounters>(MAP_VIP_STATS, PerCpuArray, PerVip(1), Counter),
    def::<u32, TrafficCounters>(MAP_BACKEND_STATS, PerCpuArray, PerBackend, Counter),
    def::<SockKey, SockOrigin>(MAP_SOCK_REVNAT, LruHash, Sockets, Connection),
    def::<u32, Timeouts>(MAP_TIMEOUTS, Array, PerVip(1), Config),
    def::<u32, [u32; 4]>(MAP_SNAT_ADDRS, Array, PerVip(MAX_SNAT_ADDRS), Config),
    def::<u32, u32>(MAP_SNAT_CURSORS, Array, PerVip(1), Rebuilt),
    def::<u32, u32>(MAP_UPGRADE_HOLD, Array, Fixed(1), Rebuilt),
];

/// Maps of the object that are not pinned, made anew with each load: the program's
/// per-CPU scratch space, and its log (switch, rate limit, aya-log's ring, which the
/// agent that loaded it drains).
pub const PRIVATE_MAPS: [&str; 4] = ["SCRATCH", MAP_LOG_SWITCH, MAP_LOG_LAST, MAP_AYA_LOGS];

/// The table entry of map `name`.
pub fn map_def(name: &str) -> Option<&'static MapDef> {
    MAPS.iter().find(|d| d.name == name)
}

const _: () = {
    // One entry per name.
    let mut i = 0;
    while i < MAPS.len() {
        let mut j = i + 1;
        while j < MAPS.len() {
            assert!(!const_eq(MAPS[i].name, MAPS[j].name));
            j += 1;
        }
        i += 1;
    }
};

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
