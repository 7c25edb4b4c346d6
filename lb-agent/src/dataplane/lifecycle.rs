//! Flow states and ages as people and tests see them: names, ages in seconds, and
//! moving every entry's clock back (what the packet tests use to expire flows
//! without waiting, and without a test-only branch in the program).

use aya::maps::{HashMap as BpfHashMap, MapData};
use lb_common::{
    FLOW_TCP_CLOSING, FLOW_TCP_ESTABLISHED, FLOW_TCP_RESET, FLOW_TCP_SYN, FLOW_TCP_TIME_WAIT,
    FLOW_UDP, FLOW_UDP_REPLIED, FlowEntry, FlowKey, MAP_FLOWS, MAP_NAT, NatEntry,
};

use super::{Dataplane, DataplaneError, read, services::map_err};

/// The name of a `FLOW_*` state.
pub fn state_name(state: u8) -> &'static str {
    match state {
        FLOW_TCP_SYN => "syn",
        FLOW_TCP_ESTABLISHED => "established",
        FLOW_TCP_CLOSING => "closing",
        FLOW_TCP_TIME_WAIT => "time_wait",
        FLOW_TCP_RESET => "reset",
        FLOW_UDP => "udp",
        FLOW_UDP_REPLIED => "udp_replied",
        _ => "unknown",
    }
}

impl Dataplane {
    /// Moves every flow entry's and NAT binding's clock `ticks` into the past, as if
    /// that much time had gone by without a packet. Returns (flows, bindings) moved.
    pub fn age_flows(&mut self, ticks: u32) -> Result<(usize, usize), DataplaneError> {
        let entries = read::flows(self)?;
        let mut flows: BpfHashMap<&mut MapData, FlowKey, FlowEntry> = self.map_mut(MAP_FLOWS)?;
        for (k, mut e) in entries.iter().copied() {
            e.seen = e.seen.wrapping_sub(ticks);
            e.expires = e.expires.wrapping_sub(ticks);
            flows
                .insert(k, e, 0)
                .map_err(map_err(MAP_FLOWS, "update"))?;
        }
        let bindings = read::nat_bindings(self)?;
        let mut nat: BpfHashMap<&mut MapData, FlowKey, NatEntry> = self.map_mut(MAP_NAT)?;
        for (k, mut e) in bindings.iter().copied() {
            e.seen = e.seen.wrapping_sub(ticks);
            e.expires = e.expires.wrapping_sub(ticks);
            nat.insert(k, e, 0).map_err(map_err(MAP_NAT, "update"))?;
        }
        Ok((entries.len(), bindings.len()))
    }
}
