//! Reading what the data plane holds, from a `MapSet`: counters (summed over CPUs),
//! flows, NAT bindings, and the services as programmed (backends, states, ring
//! shares). Works on a running agent's maps and on pinned ones alike.

use std::{collections::HashMap, net::IpAddr};

use aya::maps::{Array, HashMap as BpfHashMap, IterableMap as _, MapData, PerCpuArray};
use lb_common::{
    BACKEND_F_LOCAL, Backend, Counter, FlowEntry, FlowKey, MAP_BACKEND_STATS, MAP_BACKENDS,
    MAP_FLOWS, MAP_NAT, MAP_RINGS, MAP_STATS, MAP_VIP_STATS, MAP_VIPS, NO_BACKEND, NatEntry,
    PROTO_TCP, TrafficCounters, VIP_F_DSR, VipKey, VipMeta, maps::addr::from_words,
};

use super::{
    BackendState, DataplaneError, Forwarding, Protocol,
    mapset::{MapSet, typed},
    services::map_err,
};

/// Packets, bytes and new flows of a VIP or backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// Every global counter (by `Counter` index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalCounters(pub Vec<u64>);

impl GlobalCounters {
    pub fn get(&self, c: Counter) -> u64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }
}

/// Global verdict/reason counters.
pub fn global_counters(set: &mut impl MapSet) -> Result<GlobalCounters, DataplaneError> {
    let stats: PerCpuArray<&mut MapData, u64> = typed(set, MAP_STATS)?;
    let mut out = Vec::with_capacity(Counter::ALL.len());
    for c in Counter::ALL {
        let v = stats
            .get(&(*c as u32), 0)
            .map_err(map_err(MAP_STATS, "lookup"))?;
        out.push(v.iter().sum());
    }
    Ok(GlobalCounters(out))
}

/// Traffic of VIP slot `id`.
pub fn vip_traffic(set: &mut impl MapSet, id: u32) -> Result<Traffic, DataplaneError> {
    traffic(set, MAP_VIP_STATS, id)
}

/// Traffic of backend slot `id`.
pub fn backend_traffic(set: &mut impl MapSet, id: u32) -> Result<Traffic, DataplaneError> {
    traffic(set, MAP_BACKEND_STATS, id)
}

fn traffic(set: &mut impl MapSet, name: &'static str, id: u32) -> Result<Traffic, DataplaneError> {
    let stats: PerCpuArray<&mut MapData, TrafficCounters> = typed(set, name)?;
    let v = stats.get(&id, 0).map_err(map_err(name, "lookup"))?;
    Ok(v.iter().fold(Traffic::default(), |t, c| Traffic {
        packets: t.packets + c.packets,
        bytes: t.bytes + c.bytes,
        new_flows: t.new_flows + c.new_flows,
    }))
}

/// Every flow binding (client 5-tuple -> backend slot), as far as the LRU holds.
pub fn flows(set: &mut impl MapSet) -> Result<Vec<(FlowKey, FlowEntry)>, DataplaneError> {
    let map: BpfHashMap<&mut MapData, FlowKey, FlowEntry> = typed(set, MAP_FLOWS)?;
    // (aya's iterator skips entries deleted while it runs; what remains is a failure.)
    map.iter()
        .collect::<Result<_, _>>()
        .map_err(map_err(MAP_FLOWS, "read"))
}

/// Every NAT binding (backend reply 5-tuple -> client).
pub fn nat_bindings(set: &mut impl MapSet) -> Result<Vec<(FlowKey, NatEntry)>, DataplaneError> {
    let map: BpfHashMap<&mut MapData, FlowKey, NatEntry> = typed(set, MAP_NAT)?;
    map.iter()
        .collect::<Result<_, _>>()
        .map_err(map_err(MAP_NAT, "read"))
}

/// A service as the maps hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub forwarding: Forwarding,
    /// VIP slot (index of its counters).
    pub id: u32,
    pub backends: Vec<BackendView>,
    /// Live ring entries without a backend (no backend up); 0 when rings are not read.
    pub empty_slots: u32,
    pub ring_size: u32,
}

/// A backend as the maps hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendView {
    pub slot: u32,
    pub addr: IpAddr,
    /// 0 = the client's destination port.
    pub port: u16,
    pub state: BackendState,
    /// The backend's address was this node's when the agent last applied.
    pub local: bool,
    /// Entries of the service's live Maglev ring pointing at it (0 when rings are
    /// not read).
    pub ring_slots: u32,
}

/// Every service in the maps, with its backends and, if `with_rings`, their shares of the
/// live ring (a lookup per ring entry: only for views that show them).
pub fn services(
    set: &mut impl MapSet,
    with_rings: bool,
) -> Result<Vec<ServiceView>, DataplaneError> {
    let vips: Vec<(VipKey, VipMeta)> = {
        let map: BpfHashMap<&mut MapData, VipKey, VipMeta> = typed(set, MAP_VIPS)?;
        map.iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(MAP_VIPS, "read"))?
    };
    let max_vips = {
        let map: BpfHashMap<&mut MapData, VipKey, VipMeta> = typed(set, MAP_VIPS)?;
        map_entries(map.map(), MAP_VIPS)?
    };
    let backends: Vec<(u32, Backend)> = {
        let map: Array<&mut MapData, Backend> = typed(set, MAP_BACKENDS)?;
        map.iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err(MAP_BACKENDS, "read"))?
            .into_iter()
            .enumerate()
            .filter(|(_, b)| b.family != 0)
            .map(|(i, b)| (i as u32, b))
            .collect()
    };
    let rings: Array<&mut MapData, u32> = typed(set, MAP_RINGS)?;
    let ring_size = map_entries(rings.map(), MAP_RINGS)? / (2 * max_vips.max(1));
    let mut out = Vec::with_capacity(vips.len());
    for (key, meta) in vips {
        let base = (meta.id * 2 + (meta.ring & 1)) * ring_size;
        let mut shares: HashMap<u32, u32> = HashMap::new();
        if with_rings {
            for i in 0..ring_size {
                let slot = rings
                    .get(&(base + i), 0)
                    .map_err(map_err(MAP_RINGS, "lookup"))?;
                *shares.entry(slot).or_default() += 1;
            }
        }
        let mut bs: Vec<BackendView> = backends
            .iter()
            .filter(|(_, b)| b.vip_id == meta.id)
            .map(|(slot, b)| BackendView {
                slot: *slot,
                addr: from_words(b.addr, b.family),
                port: u16::from_be(b.port),
                state: super::services::state_of_word(b.state),
                local: b.flags & BACKEND_F_LOCAL != 0,
                ring_slots: shares.get(slot).copied().unwrap_or(0),
            })
            .collect();
        bs.sort_by_key(|b| (b.addr, b.port));
        out.push(ServiceView {
            vip: from_words(key.addr, key.family),
            port: u16::from_be(key.port),
            protocol: if key.proto == PROTO_TCP {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            forwarding: if meta.flags & VIP_F_DSR != 0 {
                Forwarding::Dsr
            } else {
                Forwarding::Nat
            },
            id: meta.id,
            backends: bs,
            empty_slots: shares.get(&NO_BACKEND).copied().unwrap_or(0),
            ring_size,
        });
    }
    out.sort_by_key(|s| (s.vip, s.port, s.protocol));
    Ok(out)
}

fn map_entries(map: &MapData, name: &'static str) -> Result<u32, DataplaneError> {
    map.info()
        .map(|i| i.max_entries())
        .map_err(map_err(name, "info"))
}
