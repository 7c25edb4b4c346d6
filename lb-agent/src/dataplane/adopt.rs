//! Rebuilding the agent's bookkeeping from maps an earlier agent left pinned: which
//! slots serve which service and backend, generations, rings and address tables.
//! After this, applying the same config writes nothing, and a changed one only what
//! changed (flows to remaining backends keep their slots, so nothing moves).

use std::collections::HashMap;

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use lb_common::{
    ADDR_TABLE_SLOTS, AddrSlot, Backend, MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE, MAP_BACKENDS,
    MAP_RINGS, MAP_SNAT_ADDRS, MAP_VIP_GENERATIONS, MAP_VIPS, MAX_SNAT_ADDRS, PROTO_TCP, PROTO_UDP,
    VipKey, VipMeta, maps::addr::from_words,
};

use super::{
    BackendState, Dataplane, DataplaneError, Protocol,
    services::{Programmed, ServiceId, map_err},
};

/// A backend found in the maps, with the state the data plane last had for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptedBackend {
    pub vip: std::net::IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub addr: std::net::IpAddr,
    pub backend_port: u16,
    pub state: BackendState,
}

impl Dataplane {
    /// Reads the pinned maps into the bookkeeping (see the module doc). Returns every
    /// backend of a service with the state the previous agent left it in (the health
    /// to start from).
    pub(super) fn adopt(&mut self) -> Result<Vec<AdoptedBackend>, DataplaneError> {
        let caps = self.caps.clone();
        let vips: Vec<(VipKey, VipMeta)> = {
            let map: BpfHashMap<&mut MapData, VipKey, VipMeta> = self.map_mut(MAP_VIPS)?;
            // Only agents write VIPS, and none runs now: every read error counts.
            map.iter()
                .collect::<Result<_, _>>()
                .map_err(map_err(MAP_VIPS, "read"))?
        };
        let backends: Vec<Backend> = {
            let map: Array<&mut MapData, Backend> = self.map_mut(MAP_BACKENDS)?;
            (0..caps.max_backends)
                .map(|i| map.get(&i, 0).map_err(map_err(MAP_BACKENDS, "lookup")))
                .collect::<Result<_, _>>()?
        };
        let vip_generations: Vec<u32> = {
            let map: Array<&mut MapData, u32> = self.map_mut(MAP_VIP_GENERATIONS)?;
            (0..caps.max_vips)
                .map(|i| {
                    map.get(&i, 0)
                        .map_err(map_err(MAP_VIP_GENERATIONS, "lookup"))
                })
                .collect::<Result<_, _>>()?
        };
        // Each service's SNAT addresses as written (so the same config rewrites
        // nothing, and established flows keep their snapshot).
        let snat_map: Vec<[u32; 4]> = {
            let map: Array<&mut MapData, [u32; 4]> = self.map_mut(MAP_SNAT_ADDRS)?;
            (0..caps.max_vips * MAX_SNAT_ADDRS)
                .map(|i| map.get(&i, 0).map_err(map_err(MAP_SNAT_ADDRS, "lookup")))
                .collect::<Result<_, _>>()?
        };
        let p = &mut self.programmer;
        p.services.clear();
        p.generations = backends.iter().map(|b| b.generation).collect();
        p.backend_values = backends.iter().copied().map(Some).collect();
        p.vip_generations = vip_generations;
        let mut by_vip: HashMap<u32, HashMap<(std::net::IpAddr, u16), u32>> = HashMap::new();
        for (slot, b) in backends.iter().enumerate() {
            if b.family != 0 {
                by_vip.entry(b.vip_id).or_default().insert(
                    (from_words(b.addr, b.family), u16::from_be(b.port)),
                    slot as u32,
                );
            }
        }
        let mut used_vips = Vec::new();
        for (key, meta) in vips {
            let protocol = match key.proto {
                PROTO_TCP => Protocol::Tcp,
                PROTO_UDP => Protocol::Udp,
                other => {
                    tracing::warn!("pinned VIPS holds a service with protocol {other}: ignored");
                    continue;
                }
            };
            if meta.id >= caps.max_vips || meta.ring > 1 {
                tracing::warn!("pinned VIPS holds a service with slot {}: ignored", meta.id);
                continue;
            }
            used_vips.push(meta.id);
            let sid = (
                from_words(key.addr, key.family),
                u16::from_be(key.port),
                protocol,
            );
            p.services.insert(
                sid,
                Programmed {
                    id: meta.id,
                    ring: meta.ring,
                    key,
                    meta: Some(meta),
                    backends: by_vip.remove(&meta.id).unwrap_or_default(),
                    table: Vec::new(),
                    // Unknown: the first write of a table after adoption is whole.
                    standby: None,
                    ring_input: Vec::new(),
                    snats: {
                        let first = (meta.id * MAX_SNAT_ADDRS) as usize;
                        let n = meta.snat_count.min(MAX_SNAT_ADDRS) as usize;
                        snat_map.get(first..first + n).unwrap_or_default().to_vec()
                    },
                },
            );
        }
        // Backends of no service (an agent stopped between writes) are freed below.
        let orphans: Vec<u32> = by_vip
            .into_values()
            .flat_map(HashMap::into_values)
            .collect();
        p.free_vips = (0..caps.max_vips)
            .filter(|i| !used_vips.contains(i))
            .collect();
        p.free_backends = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.family == 0)
            .map(|(i, _)| i as u32)
            .collect();
        // The live rings, so an unchanged table is not rewritten.
        let rings: Vec<ServiceId> = p.services.keys().copied().collect();
        for sid in rings {
            let (id, ring) = match self.programmer.services.get(&sid) {
                Some(s) => (s.id, s.ring),
                None => continue,
            };
            let base = (id * 2 + ring) * caps.ring_size;
            let map: Array<&mut MapData, u32> = self.map_mut(MAP_RINGS)?;
            let table: Vec<u32> = (0..caps.ring_size)
                .map(|i| {
                    map.get(&(base + i), 0)
                        .map_err(map_err(MAP_RINGS, "lookup"))
                })
                .collect::<Result<_, _>>()?;
            if let Some(s) = self.programmer.services.get_mut(&sid) {
                s.table = table;
            }
        }
        let live = {
            let map: Array<&mut MapData, u32> = self.map_mut(MAP_ADDR_TABLE_LIVE)?;
            map.get(&0, 0)
                .map_err(map_err(MAP_ADDR_TABLE_LIVE, "lookup"))?
                & 1
        };
        let halves: Vec<AddrSlot> = {
            let map: Array<&mut MapData, AddrSlot> = self.map_mut(MAP_ADDR_TABLE)?;
            (0..2 * ADDR_TABLE_SLOTS)
                .map(|i| map.get(&i, 0).map_err(map_err(MAP_ADDR_TABLE, "lookup")))
                .collect::<Result<_, _>>()?
        };
        let (a, b) = halves.split_at(ADDR_TABLE_SLOTS as usize);
        self.programmer.addr_tables = [a.to_vec(), b.to_vec()];
        self.programmer.addr_live = live;
        for slot in orphans {
            self.free_backend_slot(slot)?;
        }
        let adopted = self
            .programmer
            .services
            .iter()
            .flat_map(|((vip, port, protocol), p)| {
                p.backends
                    .iter()
                    .map(|((addr, backend_port), slot)| AdoptedBackend {
                        vip: *vip,
                        port: *port,
                        protocol: *protocol,
                        addr: *addr,
                        backend_port: *backend_port,
                        state: super::services::state_of_word(backends[*slot as usize].state),
                    })
            })
            .collect();
        Ok(adopted)
    }
}
