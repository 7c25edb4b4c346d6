//! Reading the per-CPU counters, summed over CPUs.

use aya::maps::{MapData, PerCpuArray};
use lb_common::{Counter, MAP_BACKEND_STATS, MAP_STATS, MAP_VIP_STATS, TrafficCounters};

use super::{Dataplane, DataplaneError};

/// Packets, bytes and new flows of a VIP or backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
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

impl Dataplane {
    /// Global verdict/reason counters.
    pub fn global_counters(&mut self) -> Result<GlobalCounters, DataplaneError> {
        let stats: PerCpuArray<&mut MapData, u64> = self.map_mut(MAP_STATS)?;
        let mut out = Vec::with_capacity(Counter::ALL.len());
        for c in Counter::ALL {
            let v = stats
                .get(&(*c as u32), 0)
                .map_err(|source| DataplaneError::Map {
                    name: MAP_STATS,
                    what: "lookup",
                    source,
                })?;
            out.push(v.iter().sum());
        }
        Ok(GlobalCounters(out))
    }

    /// Traffic of VIP slot `id`.
    pub fn vip_traffic(&mut self, id: u32) -> Result<Traffic, DataplaneError> {
        self.traffic(MAP_VIP_STATS, id)
    }

    /// Traffic of backend slot `id`.
    pub fn backend_traffic(&mut self, id: u32) -> Result<Traffic, DataplaneError> {
        self.traffic(MAP_BACKEND_STATS, id)
    }

    fn traffic(&mut self, name: &'static str, id: u32) -> Result<Traffic, DataplaneError> {
        let stats: PerCpuArray<&mut MapData, TrafficCounters> = self.map_mut(name)?;
        let v = stats.get(&id, 0).map_err(|source| DataplaneError::Map {
            name,
            what: "lookup",
            source,
        })?;
        Ok(v.iter().fold(Traffic::default(), |t, c| Traffic {
            packets: t.packets + c.packets,
            bytes: t.bytes + c.bytes,
            new_flows: t.new_flows + c.new_flows,
        }))
    }
}
