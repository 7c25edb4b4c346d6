//! Every map's shape (key size, value size, entries) for given capacities: set at
//! load time, and checked against maps found pinned by an earlier agent.

use core::mem::size_of;

use lb_common::{
    ADDR_TABLE_SLOTS, AddrInfo, AddrKey, AddrSlot, Backend, COUNTER_COUNT, FlowEntry, FlowKey,
    MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE, MAP_ADDRS, MAP_BACKEND_STATS, MAP_BACKENDS, MAP_FLOWS,
    MAP_NAT, MAP_NEXTHOPS, MAP_RINGS, MAP_SNAT_ADDRS, MAP_SNAT_CURSORS, MAP_SOCK_REVNAT, MAP_STATS,
    MAP_TIMEOUTS, MAP_UPGRADE_HOLD, MAP_VIP_GENERATIONS, MAP_VIP_STATS, MAP_VIPS, MAX_SNAT_ADDRS,
    NatEntry, NextHop, SockKey, SockOrigin, Timeouts, TrafficCounters, VipKey, VipMeta,
};

use super::Capacities;

/// One map of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub name: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

const fn shape<K, V>(name: &'static str, max_entries: u32) -> MapShape {
    MapShape {
        name,
        key_size: size_of::<K>() as u32,
        value_size: size_of::<V>() as u32,
        max_entries,
    }
}

/// Every map the agent owns (and pins), with its size for `caps`.
pub fn map_shapes(caps: &Capacities) -> [MapShape; 18] {
    [
        // Each service has a VIP address and may have SNAT addresses of its own;
        // each backend's address may be a local backend's.
        shape::<AddrKey, AddrInfo>(
            MAP_ADDRS,
            caps.max_vips * (1 + MAX_SNAT_ADDRS) + caps.max_backends,
        ),
        shape::<u32, AddrSlot>(MAP_ADDR_TABLE, 2 * ADDR_TABLE_SLOTS),
        shape::<u32, u32>(MAP_ADDR_TABLE_LIVE, 1),
        shape::<VipKey, VipMeta>(MAP_VIPS, caps.max_vips),
        shape::<u32, u32>(MAP_VIP_GENERATIONS, caps.max_vips),
        shape::<u32, Backend>(MAP_BACKENDS, caps.max_backends),
        shape::<u32, u32>(MAP_RINGS, caps.ring_entries()),
        shape::<FlowKey, FlowEntry>(MAP_FLOWS, caps.flow_table_size),
        shape::<FlowKey, NatEntry>(MAP_NAT, caps.flow_table_size),
        shape::<u32, NextHop>(MAP_NEXTHOPS, caps.max_backends),
        shape::<u32, u64>(MAP_STATS, COUNTER_COUNT),
        shape::<u32, TrafficCounters>(MAP_VIP_STATS, caps.max_vips),
        shape::<u32, TrafficCounters>(MAP_BACKEND_STATS, caps.max_backends),
        shape::<SockKey, SockOrigin>(MAP_SOCK_REVNAT, caps.sock_table_size),
        shape::<u32, Timeouts>(MAP_TIMEOUTS, caps.max_vips),
        shape::<u32, [u32; 4]>(MAP_SNAT_ADDRS, caps.max_vips * MAX_SNAT_ADDRS),
        shape::<u32, u32>(MAP_SNAT_CURSORS, caps.max_vips),
        shape::<u32, u32>(MAP_UPGRADE_HOLD, 1),
    ]
}
