//! The readers of `read.rs` as methods of the loaded data plane (tests, demo, bench).

use lb_common::{FlowEntry, FlowKey, NatEntry};

use super::{Dataplane, DataplaneError, GlobalCounters, Traffic, read};

impl Dataplane {
    /// Global verdict/reason counters.
    pub fn global_counters(&mut self) -> Result<GlobalCounters, DataplaneError> {
        read::global_counters(self)
    }

    /// Traffic of VIP slot `id`.
    pub fn vip_traffic(&mut self, id: u32) -> Result<Traffic, DataplaneError> {
        read::vip_traffic(self, id)
    }

    /// Traffic of backend slot `id`.
    pub fn backend_traffic(&mut self, id: u32) -> Result<Traffic, DataplaneError> {
        read::backend_traffic(self, id)
    }

    /// Every flow binding, as far as the LRU holds.
    pub fn flows(&mut self) -> Result<Vec<(FlowKey, FlowEntry)>, DataplaneError> {
        read::flows(self)
    }

    /// Every NAT binding.
    pub fn nat_bindings(&mut self) -> Result<Vec<(FlowKey, NatEntry)>, DataplaneError> {
        read::nat_bindings(self)
    }
}
