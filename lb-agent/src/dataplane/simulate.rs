//! "Which backend would this flow get?": asked of the live maps (flow table first,
//! then the service's live ring), with the same hash the program uses.

use std::net::IpAddr;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError};
use lb_common::{
    BACKEND_DOWN, Backend, FlowEntry, FlowKey, MAP_BACKENDS, MAP_FLOWS, MAP_RINGS,
    MAP_VIP_GENERATIONS, MAP_VIPS, NO_BACKEND, VipKey, VipMeta,
    hash::flow_hash,
    maps::addr::{from_words, to_words},
};

use super::{Dataplane, DataplaneError, Protocol};

/// A client flow to a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientFlow {
    pub client: IpAddr,
    pub client_port: u16,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// The answer: backend address and port (0 = the VIP's), and whether the flow table
/// already pinned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Simulated {
    pub backend: IpAddr,
    pub port: u16,
    pub pinned: bool,
}

fn lookup_err(name: &'static str) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::Map {
        name,
        what: "lookup",
        source,
    }
}

impl Dataplane {
    /// The backend the program would send `flow` to now; `None` if it has none.
    pub fn which_backend(
        &mut self,
        flow: &ClientFlow,
    ) -> Result<Option<Simulated>, DataplaneError> {
        let (caddr, family) = to_words(flow.client);
        let (vaddr, _) = to_words(flow.vip);
        let proto = flow.protocol.number();
        let key = FlowKey {
            src: caddr,
            dst: vaddr,
            sport: flow.client_port.to_be(),
            dport: flow.port.to_be(),
            proto,
            family,
            _pad: [0; 2],
        };
        let backend = |dp: &mut Self, slot: u32| -> Result<Backend, DataplaneError> {
            let backends: Array<&mut MapData, Backend> = dp.map_mut(MAP_BACKENDS)?;
            backends.get(&slot, 0).map_err(lookup_err(MAP_BACKENDS))
        };
        let answer = |b: &Backend, pinned| Simulated {
            backend: from_words(b.addr, b.family),
            port: u16::from_be(b.port),
            pinned,
        };
        let pinned = {
            let flows: BpfHashMap<&mut MapData, FlowKey, FlowEntry> = self.map_mut(MAP_FLOWS)?;
            match flows.get(&key, 0) {
                Ok(e) => Some(e),
                Err(MapError::KeyNotFound) => None,
                Err(e) => return Err(lookup_err(MAP_FLOWS)(e)),
            }
        };
        if let Some(e) = pinned {
            let b = backend(self, e.backend)?;
            let gens: Array<&mut MapData, u32> = self.map_mut(MAP_VIP_GENERATIONS)?;
            let live = gens
                .get(&e.vip_id, 0)
                .map_err(lookup_err(MAP_VIP_GENERATIONS))?
                == e.vip_generation;
            if live && b.generation == e.generation && b.state != BACKEND_DOWN {
                return Ok(Some(answer(&b, true)));
            }
        }
        let vip = {
            let vips: BpfHashMap<&mut MapData, VipKey, VipMeta> = self.map_mut(MAP_VIPS)?;
            let exact = VipKey {
                addr: vaddr,
                port: flow.port.to_be(),
                proto,
                family,
            };
            match vips.get(&exact, 0) {
                Ok(v) => v,
                Err(MapError::KeyNotFound) => match vips.get(&VipKey { port: 0, ..exact }, 0) {
                    Ok(v) => v,
                    Err(MapError::KeyNotFound) => return Ok(None),
                    Err(e) => return Err(lookup_err(MAP_VIPS)(e)),
                },
                Err(e) => return Err(lookup_err(MAP_VIPS)(e)),
            }
        };
        let size = self.caps.ring_size;
        let index = (vip.id * 2 + (vip.ring & 1)) * size + flow_hash(&key) % size;
        let slot = {
            let rings: Array<&mut MapData, u32> = self.map_mut(MAP_RINGS)?;
            rings.get(&index, 0).map_err(lookup_err(MAP_RINGS))?
        };
        if slot == NO_BACKEND {
            return Ok(None);
        }
        let b = backend(self, slot)?;
        Ok(Some(answer(&b, false)))
    }
}
