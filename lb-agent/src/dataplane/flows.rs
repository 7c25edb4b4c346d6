//! Reading the flow and NAT tables (operator inspection, benchmarks).

use aya::maps::{HashMap as BpfHashMap, MapData};
use lb_common::{FlowEntry, FlowKey, MAP_FLOWS, MAP_NAT, NatEntry};

use super::{Dataplane, DataplaneError};

impl Dataplane {
    /// Every flow binding (client 5-tuple -> backend slot), as far as the LRU holds.
    pub fn flows(&mut self) -> Result<Vec<(FlowKey, FlowEntry)>, DataplaneError> {
        let map: BpfHashMap<&mut MapData, FlowKey, FlowEntry> = self.map_mut(MAP_FLOWS)?;
        Ok(map.iter().filter_map(Result::ok).collect())
    }

    /// Every NAT binding (backend reply 5-tuple -> client).
    pub fn nat_bindings(&mut self) -> Result<Vec<(FlowKey, NatEntry)>, DataplaneError> {
        let map: BpfHashMap<&mut MapData, FlowKey, NatEntry> = self.map_mut(MAP_NAT)?;
        Ok(map.iter().filter_map(Result::ok).collect())
    }
}
