//! Programming services into the maps.
//!
//! The agent is the only writer. `Dataplane::apply` takes the whole desired set of
//! services, checks all of it before writing anything, then per service: backend slots
//! (a backend keeps its slot, so its flows stay), the Maglev ring written into the
//! service's idle ring, and finally the VIP entry replaced whole to point at the new
//! ring: a packet sees the old ring or the new one, never a half-written one.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    net::IpAddr,
};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues};
use lb_common::{
    ADDR_TABLE_SLOTS, AddrSlot, BACKEND_DOWN, BACKEND_DRAIN, BACKEND_F_LOCAL, BACKEND_UP, Backend,
    MAP_BACKEND_STATS, MAP_BACKENDS, MAP_NEXTHOPS, MAP_RINGS, MAP_SNAT_ADDRS, MAP_TIMEOUTS,
    MAP_VIP_GENERATIONS, MAP_VIP_STATS, MAP_VIPS, MAX_SNAT_ADDRS, NO_BACKEND, NextHop, Timeouts,
    TrafficCounters, VIP_F_DSR, VIP_F_RESET, VIP_F_STANDBY, VipKey, VipMeta,
    maglev::{self, MaglevBackend},
    maps::addr::to_words,
};
// The services' values are config values (`lb_config::service`), written here.
pub use lb_config::service::{
    BackendSpec, BackendState, Forwarding, NoBackend, Protocol, ServiceSpec,
};

use super::{Capacities, Dataplane, DataplaneError, batch, local::node_addresses};

pub(super) type ServiceId = (IpAddr, u16, Protocol);
pub(super) type BackendId = (IpAddr, u16);

/// What the agent remembers of a programmed service.
pub(super) struct Programmed {
    pub(super) id: u32,
    pub(super) ring: u32,
    pub(super) key: VipKey,
    /// The VIP value last written (its generation and what established flows copy).
    pub(super) meta: Option<VipMeta>,
    pub(super) backends: HashMap<BackendId, u32>,
    /// The live ring's content, to skip rewriting an unchanged table.
    pub(super) table: Vec<u32>,
    /// The other ring's content when known (it was live before the last flip):
    /// the next table is written there as the entries that differ, not whole.
    pub(super) standby: Option<Vec<u32>>,
    /// What `table` was built from (each backend's name, weight in the ring and
    /// slot): the same input reuses it instead of building the table again.
    pub(super) ring_input: Vec<(String, u32, u32)>,
    /// The SNAT addresses last written (`SNAT_ADDRS`).
    pub(super) snats: Vec<[u32; 4]>,
}

/// Slot bookkeeping (kept in the agent; rebuilt from pinned maps by `adopt.rs`).
pub(super) struct Programmer {
    pub(super) services: HashMap<ServiceId, Programmed>,
    pub(super) free_vips: VecDeque<u32>,
    /// Freed backend slots are reused oldest first, and every reuse bumps the slot's
    /// generation, so a stale flow never follows a slot to another backend.
    pub(super) free_backends: VecDeque<u32>,
    pub(super) generations: Vec<u32>,
    /// What each slot of `BACKENDS` holds as last written or read (`None`: not known),
    /// so an apply writes only the backends that changed: a 1,000-backend service
    /// would otherwise cost 1,000 map updates for each change of one.
    pub(super) backend_values: Vec<Option<Backend>>,
    /// Per VIP slot, mirrored in `VIP_GENERATIONS`.
    pub(super) vip_generations: Vec<u32>,
    /// What each half of `ADDR_TABLE` holds, and which half is live.
    pub(super) addr_tables: [Vec<AddrSlot>; 2],
    pub(super) addr_live: u32,
    /// Backend addresses that were this node's at the last apply.
    pub(super) local: BTreeSet<IpAddr>,
}

impl Programmer {
    /// What slot `slot` of `BACKENDS` holds, when known.
    fn known_backend(&self, slot: u32) -> Option<Backend> {
        self.backend_values.get(slot as usize).copied().flatten()
    }

    pub(super) fn new(caps: &Capacities) -> Self {
        Self {
            services: HashMap::new(),
            free_vips: (0..caps.max_vips).collect(),
            free_backends: (0..caps.max_backends).collect(),
            generations: vec![0; caps.max_backends as usize],
            backend_values: vec![None; caps.max_backends as usize],
            vip_generations: vec![0; caps.max_vips as usize],
            addr_tables: [
                vec![AddrSlot::default(); ADDR_TABLE_SLOTS as usize],
                vec![AddrSlot::default(); ADDR_TABLE_SLOTS as usize],
            ],
            addr_live: 0,
            local: BTreeSet::new(),
        }
    }
}

pub(super) fn map_err(
    name: &'static str,
    what: &'static str,
) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { name, what, source }
}

/// The state a `Backend::state` word stands for.
pub(super) fn state_of_word(word: u32) -> BackendState {
    match word {
        BACKEND_DOWN => BackendState::Down,
        BACKEND_DRAIN => BackendState::Drain,
        _ => BackendState::Up,
    }
}

fn state_word(s: BackendState) -> u32 {
    match s {
        BackendState::Up => BACKEND_UP,
        BackendState::Drain => BACKEND_DRAIN,
        BackendState::Down => BACKEND_DOWN,
    }
}

/// Checks the whole desired set; nothing is written when this fails.
fn validate(specs: &[ServiceSpec], caps: &Capacities) -> Result<(), DataplaneError> {
    let mut seen = HashSet::new();
    let mut backends = 0usize;
    for s in specs {
        let bad = |why: String| DataplaneError::Service {
            service: s.name.clone(),
            why,
        };
        if !seen.insert((s.vip, s.port, s.protocol)) {
            return Err(bad(format!(
                "{}:{} {:?} is defined twice",
                s.vip, s.port, s.protocol
            )));
        }
        if s.node_local() && s.forwarding == Forwarding::Dsr {
            return Err(bad(format!(
                "{} is node-local (loopback): only this node's sockets reach it, and \
                 there is nothing to forward with DSR",
                s.vip
            )));
        }
        if s.forwarding == Forwarding::Nat && !s.node_local() {
            if s.snat.is_empty() {
                return Err(bad("NAT forwarding needs a SNAT address".into()));
            }
            if s.snat.len() > MAX_SNAT_ADDRS as usize {
                return Err(bad(format!(
                    "{} SNAT addresses, at most {MAX_SNAT_ADDRS}",
                    s.snat.len()
                )));
            }
            let mut distinct = HashSet::new();
            for snat in &s.snat {
                if snat.is_ipv4() != s.vip.is_ipv4() {
                    return Err(DataplaneError::FamilyMismatch {
                        service: s.name.clone(),
                        vip: s.vip,
                        other: *snat,
                    });
                }
                if !distinct.insert(snat) {
                    return Err(bad(format!("SNAT address {snat} is listed twice")));
                }
            }
        }
        let mut ids = HashSet::new();
        for b in &s.backends {
            if b.addr.is_ipv4() != s.vip.is_ipv4() {
                return Err(DataplaneError::FamilyMismatch {
                    service: s.name.clone(),
                    vip: s.vip,
                    other: b.addr,
                });
            }
            if s.forwarding == Forwarding::Dsr && b.port != 0 && b.port != s.port {
                return Err(bad(format!(
                    "backend {}:{}: DSR forwards without rewriting ports, so the backend \
                     port must be the VIP port ({}) or left out",
                    b.addr, b.port, s.port
                )));
            }
            if b.addr.is_loopback() && !s.node_local() {
                return Err(bad(format!(
                    "backend {}: a loopback address is reachable from this node's own \
                     sockets only, not by packets from the network to {}",
                    b.addr, s.vip
                )));
            }
            if !ids.insert((b.addr, b.port)) {
                return Err(bad(format!(
                    "backend {}:{} is listed twice",
                    b.addr, b.port
                )));
            }
        }
        backends += s.backends.len();
    }
    if specs.len() > caps.max_vips as usize {
        return Err(DataplaneError::Full {
            what: "services",
            capacity: caps.max_vips,
        });
    }
    if backends > caps.max_backends as usize {
        return Err(DataplaneError::Full {
            what: "backends",
            capacity: caps.max_backends,
        });
    }
    Ok(())
}

impl Dataplane {
    /// Checks `specs` as `apply` would, writing nothing.
    pub fn check(&self, specs: &[ServiceSpec]) -> Result<(), DataplaneError> {
        validate(specs, &self.caps)
    }

    /// Makes the data plane serve exactly `specs`. Backends whose address is one of
    /// this node's (of the calling thread's network namespace) are marked local (see
    /// `lb-ebpf/src/local.rs`).
    pub fn apply(&mut self, specs: &[ServiceSpec]) -> Result<(), DataplaneError> {
        validate(specs, &self.caps)?;
        self.programmer.local = local_backends(specs, &node_addresses()?);
        let wanted: HashSet<ServiceId> =
            specs.iter().map(|s| (s.vip, s.port, s.protocol)).collect();
        let gone: Vec<ServiceId> = self
            .programmer
            .services
            .keys()
            .filter(|k| !wanted.contains(*k))
            .copied()
            .collect();
        for id in gone {
            self.remove_service(id)?;
        }
        for spec in specs {
            self.apply_service(spec)?;
        }
        self.sync_addresses(specs)
    }

    /// Whether the node's addresses changed since the last apply in a way that
    /// makes a backend of `specs` local or no longer local (then apply again).
    pub fn local_backends_changed(&self, specs: &[ServiceSpec]) -> Result<bool, DataplaneError> {
        Ok(local_backends(specs, &node_addresses()?) != self.programmer.local)
    }

    /// Backend addresses that are this node's.
    pub fn local_backends(&self) -> &BTreeSet<IpAddr> {
        &self.programmer.local
    }

    fn apply_service(&mut self, spec: &ServiceSpec) -> Result<(), DataplaneError> {
        let sid = (spec.vip, spec.port, spec.protocol);
        let (addr, family) = to_words(spec.vip);
        let key = VipKey {
            addr,
            port: spec.port.to_be(),
            proto: spec.protocol.number(),
            family,
        };
        if !self.programmer.services.contains_key(&sid) {
            let id = self
                .programmer
                .free_vips
                .pop_front()
                .ok_or(DataplaneError::Full {
                    what: "services",
                    capacity: self.caps.max_vips,
                })?;
            zero_slot::<TrafficCounters>(&mut self.ebpf, MAP_VIP_STATS, id)?;
            self.programmer.services.insert(
                sid,
                Programmed {
                    id,
                    ring: 1,
                    key,
                    meta: None,
                    backends: HashMap::new(),
                    table: Vec::new(),
                    ring_input: Vec::new(),
                    standby: None,
                    snats: Vec::new(),
                },
            );
        }
        // Backend slots: keep existing, free removed, allocate new.
        let wanted: HashSet<BackendId> = spec.backends.iter().map(|b| (b.addr, b.port)).collect();
        let mut freed = Vec::new();
        if let Some(p) = self.programmer.services.get_mut(&sid) {
            p.backends.retain(|id, slot| {
                let keep = wanted.contains(id);
                if !keep {
                    freed.push(*slot);
                }
                keep
            });
        }
        // Order of writes, so no packet meets a ring entry whose backend is not up:
        // backends joining (or rejoining) the ring before the ring flips, backends
        // leaving it (down, drain, removed) after.
        let mut after_flip: Vec<(u32, Backend)> = Vec::new();
        let mut slots = Vec::with_capacity(spec.backends.len());
        for b in &spec.backends {
            let existing = self
                .programmer
                .services
                .get(&sid)
                .and_then(|p| p.backends.get(&(b.addr, b.port)).copied());
            let slot =
                match existing {
                    Some(slot) => slot,
                    None => {
                        let slot = self.programmer.free_backends.pop_front().ok_or(
                            DataplaneError::Full {
                                what: "backends",
                                capacity: self.caps.max_backends,
                            },
                        )?;
                        let g = &mut self.programmer.generations[slot as usize];
                        *g = g.wrapping_add(1);
                        zero_slot::<TrafficCounters>(&mut self.ebpf, MAP_BACKEND_STATS, slot)?;
                        // A cached next hop belongs to the slot's previous backend.
                        zero_slot::<NextHop>(&mut self.ebpf, MAP_NEXTHOPS, slot)?;
                        if let Some(p) = self.programmer.services.get_mut(&sid) {
                            p.backends.insert((b.addr, b.port), slot);
                        }
                        slot
                    }
                };
            let (baddr, bfamily) = to_words(b.addr);
            let local = self.programmer.local.contains(&b.addr);
            let value = Backend {
                addr: baddr,
                port: b.port.to_be(),
                family: bfamily,
                flags: if local { BACKEND_F_LOCAL } else { 0 },
                state: state_word(b.state),
                generation: self.programmer.generations[slot as usize],
                vip_id: self.programmer.services.get(&sid).map_or(0, |p| p.id),
            };
            if existing.is_some() && b.state != BackendState::Up {
                after_flip.push((slot, value));
            } else {
                self.write_backend(slot, value)?;
            }
            slots.push(slot);
        }
        // The ring over backends that take new flows.
        let names: Vec<String> = spec
            .backends
            .iter()
            .map(|b| format!("{}:{}", b.addr, b.port))
            .collect();
        let members: Vec<MaglevBackend<'_>> = spec
            .backends
            .iter()
            .zip(&names)
            .map(|(b, n)| MaglevBackend {
                key: n.as_bytes(),
                weight: if b.state == BackendState::Up {
                    b.weight
                } else {
                    0
                },
            })
            .collect();
        let ring_input: Vec<(String, u32, u32)> = members
            .iter()
            .zip(&names)
            .zip(&slots)
            .map(|((m, n), slot)| (n.clone(), m.weight, *slot))
            .collect();
        // Building a ring is the slow part of an apply (65,537 entries per service):
        // a service whose members, weights and slots are unchanged keeps its table.
        let cached = self
            .programmer
            .services
            .get(&sid)
            .filter(|p| p.ring_input == ring_input && !ring_input.is_empty() && !p.table.is_empty())
            .map(|p| p.table.clone());
        let table: Vec<u32> = match cached {
            Some(t) => t,
            None => maglev::build(&members, self.caps.ring_size)
                .map_err(|source| DataplaneError::Maglev {
                    service: spec.name.clone(),
                    source,
                })?
                .into_iter()
                .map(|i| {
                    if i == NO_BACKEND {
                        NO_BACKEND
                    } else {
                        slots[i as usize]
                    }
                })
                .collect(),
        };
        let (id, mut ring, unchanged, previous) = match self.programmer.services.get(&sid) {
            Some(p) => (p.id, p.ring, p.table == table, p.meta),
            None => return Ok(()),
        };
        if !unchanged {
            // Unknown until this write is done (taken): a failure half way leaves
            // the next write whole.
            let standby = self
                .programmer
                .services
                .get_mut(&sid)
                .and_then(|p| p.standby.take());
            ring ^= 1;
            let base = (id * 2 + ring) * self.caps.ring_size;
            let rings = self
                .ebpf
                .map_mut(MAP_RINGS)
                .ok_or(DataplaneError::MissingMap { name: MAP_RINGS })?;
            let Map::Array(data) = rings else {
                return Err(DataplaneError::Service {
                    service: spec.name.clone(),
                    why: format!("map {MAP_RINGS} is not an array"),
                });
            };
            // A change of a few backends moves a few entries: only those are
            // written when the other ring's content is known.
            let written = match standby.filter(|old| old.len() == table.len()) {
                Some(old) => {
                    let (keys, values): (Vec<u32>, Vec<u32>) = old
                        .iter()
                        .zip(&table)
                        .enumerate()
                        .filter(|(_, (was, now))| was != now)
                        .map(|(i, (_, now))| (base + i as u32, *now))
                        .unzip();
                    batch::update(data, &keys, &values, 0).map(|_| ())
                }
                None => batch::set_u32_range(data, base, &table),
            };
            written.map_err(|source| DataplaneError::MapWrite {
                name: MAP_RINGS,
                source,
            })?;
        }
        let flags = match spec.forwarding {
            Forwarding::Dsr => VIP_F_DSR,
            Forwarding::Nat => 0,
        } | match spec.on_no_backend {
            NoBackend::Reset => VIP_F_RESET,
            NoBackend::Drop => 0,
        } | match (spec.forwarding, spec.standby) {
            (Forwarding::Dsr, true) => VIP_F_STANDBY,
            _ => 0,
        };
        let snats: Vec<[u32; 4]> = match spec.forwarding {
            Forwarding::Nat => spec.snat.iter().map(|a| to_words(*a).0).collect(),
            Forwarding::Dsr => Vec::new(),
        };
        let snat_addr = snats.first().copied().unwrap_or_default();
        // Established flows carry the service's flags and SNAT address: a change of
        // either (or a service new to the slot) must send them down the full path.
        // (Standby is not forwarding: established flows keep going through a VRRP
        // role change.)
        let same_flags = |m: &VipMeta| m.flags & !VIP_F_STANDBY == flags & !VIP_F_STANDBY;
        let same_snats = self
            .programmer
            .services
            .get(&sid)
            .is_some_and(|p| p.snats == snats);
        let generation = match previous {
            Some(m) if same_flags(&m) && same_snats => m.generation,
            _ => self.bump_vip_generation(id)?,
        };
        // The addresses before the service that counts them.
        if !same_snats {
            let mut map: Array<&mut MapData, [u32; 4]> = self.map_mut(MAP_SNAT_ADDRS)?;
            for (i, a) in snats.iter().enumerate() {
                map.set(id * MAX_SNAT_ADDRS + i as u32, *a, 0)
                    .map_err(map_err(MAP_SNAT_ADDRS, "update"))?;
            }
        }
        let meta = VipMeta {
            id,
            flags,
            ring,
            snat_addr,
            generation,
            snat_count: snats.len() as u32,
            _pad: 0,
        };
        // Lifetimes before the service: its first flows read them.
        let mut timeouts: Array<&mut MapData, Timeouts> = self.map_mut(MAP_TIMEOUTS)?;
        timeouts
            .set(id, spec.timeouts.to_map(), 0)
            .map_err(map_err(MAP_TIMEOUTS, "update"))?;
        let mut vips: BpfHashMap<&mut MapData, VipKey, VipMeta> = self.map_mut(MAP_VIPS)?;
        vips.insert(key, meta, 0)
            .map_err(map_err(MAP_VIPS, "update"))?;
        if let Some(p) = self.programmer.services.get_mut(&sid) {
            if p.ring != ring {
                p.standby = Some(std::mem::replace(&mut p.table, table));
            } else {
                p.table = table;
            }
            p.ring = ring;
            p.ring_input = ring_input;
            p.meta = Some(meta);
            p.snats = snats;
        }
        for (slot, value) in after_flip {
            self.write_backend(slot, value)?;
        }
        for slot in freed {
            self.free_backend_slot(slot)?;
        }
        Ok(())
    }

    /// Writes a backend slot unless it already holds `value`.
    fn write_backend(&mut self, slot: u32, value: Backend) -> Result<(), DataplaneError> {
        if self.programmer.known_backend(slot) == Some(value) {
            return Ok(());
        }
        let mut backends: Array<&mut MapData, Backend> = self.map_mut(MAP_BACKENDS)?;
        backends
            .set(slot, value, 0)
            .map_err(map_err(MAP_BACKENDS, "update"))?;
        if let Some(v) = self.programmer.backend_values.get_mut(slot as usize) {
            *v = Some(value);
        }
        Ok(())
    }

    /// Marks a slot down and free (`family` 0; its generation is kept, so the next
    /// backend given the slot gets a new one) and queues it for reuse.
    pub(super) fn free_backend_slot(&mut self, slot: u32) -> Result<(), DataplaneError> {
        let mut b = match self.programmer.known_backend(slot) {
            Some(b) => b,
            None => {
                let backends: Array<&mut MapData, Backend> = self.map_mut(MAP_BACKENDS)?;
                backends
                    .get(&slot, 0)
                    .map_err(map_err(MAP_BACKENDS, "lookup"))?
            }
        };
        b.state = BACKEND_DOWN;
        b.family = 0;
        self.write_backend(slot, b)?;
        self.programmer.free_backends.push_back(slot);
        Ok(())
    }

    /// Moves VIP slot `id` to a new generation (in the map first) and returns it.
    fn bump_vip_generation(&mut self, id: u32) -> Result<u32, DataplaneError> {
        let g = &mut self.programmer.vip_generations[id as usize];
        *g = g.wrapping_add(1);
        let generation = *g;
        let mut gens: Array<&mut MapData, u32> = self.map_mut(MAP_VIP_GENERATIONS)?;
        gens.set(id, generation, 0)
            .map_err(map_err(MAP_VIP_GENERATIONS, "update"))?;
        Ok(generation)
    }

    fn remove_service(&mut self, sid: ServiceId) -> Result<(), DataplaneError> {
        let Some(p) = self.programmer.services.remove(&sid) else {
            return Ok(());
        };
        // Established flows of the service stop taking the fast path at once.
        self.bump_vip_generation(p.id)?;
        let mut vips: BpfHashMap<&mut MapData, VipKey, VipMeta> = self.map_mut(MAP_VIPS)?;
        match vips.remove(&p.key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(MAP_VIPS, "delete")(e)),
        }
        for slot in p.backends.values() {
            self.free_backend_slot(*slot)?;
        }
        self.programmer.free_vips.push_back(p.id);
        Ok(())
    }

    /// Slot of a programmed service, for counters.
    pub fn service_slot(&self, vip: IpAddr, port: u16, protocol: Protocol) -> Option<u32> {
        self.programmer
            .services
            .get(&(vip, port, protocol))
            .map(|p| p.id)
    }

    /// Slot of a programmed backend of a service, for counters.
    pub fn backend_slot(
        &self,
        vip: IpAddr,
        port: u16,
        protocol: Protocol,
        backend: IpAddr,
        backend_port: u16,
    ) -> Option<u32> {
        self.programmer
            .services
            .get(&(vip, port, protocol))
            .and_then(|p| p.backends.get(&(backend, backend_port)).copied())
    }

    /// Forgets what the services' standby rings hold, so each next table is
    /// written whole (benchmarks compare that with writing the changed entries).
    pub fn forget_ring_contents(&mut self) {
        for p in self.programmer.services.values_mut() {
            p.standby = None;
        }
    }

    /// The live ring of a service as the agent wrote it (its bookkeeping) and as
    /// the map holds it (read back entry by entry): for tests.
    pub fn live_ring(
        &mut self,
        vip: IpAddr,
        port: u16,
        protocol: Protocol,
    ) -> Result<Option<LiveRing>, DataplaneError> {
        let Some(p) = self.programmer.services.get(&(vip, port, protocol)) else {
            return Ok(None);
        };
        let (table, ring, key) = (p.table.clone(), p.ring, p.key);
        let base = (p.id * 2 + p.ring) * self.caps.ring_size;
        let size = self.caps.ring_size;
        let vips: BpfHashMap<&mut MapData, VipKey, VipMeta> = self.map_mut(MAP_VIPS)?;
        let live = vips.get(&key, 0).map_err(map_err(MAP_VIPS, "lookup"))?.ring;
        let map: Array<&mut MapData, u32> = self.map_mut(MAP_RINGS)?;
        let held = (base..base + size)
            .map(|i| map.get(&i, 0).map_err(map_err(MAP_RINGS, "lookup")))
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(Some(LiveRing {
            table,
            held,
            ring,
            live,
        }))
    }

    /// Entries of a service's live Maglev ring per backend slot (`NO_BACKEND` for
    /// entries without one), from the agent's copy of the ring.
    pub fn ring_shares(&self, vip: IpAddr, port: u16, protocol: Protocol) -> HashMap<u32, u32> {
        let mut shares = HashMap::new();
        if let Some(p) = self.programmer.services.get(&(vip, port, protocol)) {
            for slot in &p.table {
                *shares.entry(*slot).or_default() += 1;
            }
        }
        shares
    }

    /// A map of its own for another thread (a second descriptor of the same map).
    pub(super) fn map_data(&self, name: &'static str) -> Result<MapData, DataplaneError> {
        use std::os::fd::AsFd as _;
        let Some(Map::HashMap(data) | Map::LruHashMap(data)) = self.ebpf.map(name) else {
            return Err(DataplaneError::MissingMap { name });
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| DataplaneError::Io {
                what: "duplicating a map descriptor",
                source,
            })?;
        MapData::from_fd(fd).map_err(map_err(name, "open"))
    }

    pub(super) fn map_mut<'a, T>(&'a mut self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a mut Map, Error = MapError>,
    {
        self.ebpf
            .map_mut(name)
            .ok_or(DataplaneError::MissingMap { name })?
            .try_into()
            .map_err(map_err(name, "type check"))
    }
}

/// The backend addresses of `specs` found among `node`'s.
fn local_backends(specs: &[ServiceSpec], node: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
    specs
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.addr))
        .filter(|a| node.contains(a))
        .collect()
}

/// Zeroes every CPU's value of `slot` in a per-CPU array.
fn zero_slot<T: aya::Pod + Default>(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
    slot: u32,
) -> Result<(), DataplaneError> {
    let map = ebpf
        .map_mut(name)
        .ok_or(DataplaneError::MissingMap { name })?;
    let mut values: PerCpuArray<&mut MapData, T> =
        map.try_into().map_err(map_err(name, "type check"))?;
    let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::Cpus { source })?;
    let zeros = PerCpuValues::try_from(vec![T::default(); cpus])
        .map_err(|source| DataplaneError::Cpus { source })?;
    values.set(slot, zeros, 0).map_err(map_err(name, "zero"))
}

#[cfg(test)]
mod tests {
    use super::{super::FlowTimeouts, *};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            vip: ip("198.18.0.10"),
            port: 80,
            protocol: Protocol::Tcp,
            forwarding: Forwarding::Nat,
            snat: vec![ip("198.18.0.1")],
            on_no_backend: NoBackend::Drop,
            standby: false,
            timeouts: FlowTimeouts::default(),
            backends: vec![BackendSpec {
                addr: ip("198.18.0.11"),
                port: 8080,
                weight: 1,
                state: BackendState::Up,
            }],
        }
    }

    fn rejected(specs: &[ServiceSpec], caps: &Capacities) -> String {
        match validate(specs, caps) {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_valid_set_passes() {
        assert!(validate(&[spec()], &Capacities::default()).is_ok());
    }

    #[test]
    fn bad_service_sets_are_rejected_with_the_reason() {
        let caps = Capacities::default();
        let e = rejected(&[spec(), spec()], &caps);
        assert!(e.contains("web") && e.contains("defined twice"), "{e}");

        let mut no_snat = spec();
        no_snat.snat = Vec::new();
        assert!(rejected(&[no_snat], &caps).contains("needs a SNAT address"));

        let mut v6_snat = spec();
        v6_snat.snat = vec![ip("fd00::1")];
        assert!(rejected(&[v6_snat], &caps).contains("address families differ"));

        let mut v6_backend = spec();
        v6_backend.backends[0].addr = ip("fd00::11");
        assert!(rejected(&[v6_backend], &caps).contains("address families differ"));

        let mut dsr = spec();
        dsr.forwarding = Forwarding::Dsr;
        let e = rejected(&[dsr], &caps);
        assert!(e.contains("DSR") && e.contains("8080"), "{e}");

        let mut twice = spec();
        twice.backends.push(twice.backends[0].clone());
        assert!(rejected(&[twice], &caps).contains("listed twice"));

        let small = Capacities {
            max_backends: 1,
            ..Capacities::default()
        };
        let mut two = spec();
        two.backends.push(BackendSpec {
            addr: ip("198.18.0.12"),
            ..two.backends[0].clone()
        });
        assert!(rejected(&[two], &small).contains("too many backends"));

        let mut loopback_backend = spec();
        loopback_backend.backends[0].addr = ip("127.0.0.1");
        assert!(rejected(&[loopback_backend], &caps).contains("loopback address"));

        let mut node_local_dsr = spec();
        node_local_dsr.vip = ip("127.0.0.1");
        node_local_dsr.forwarding = Forwarding::Dsr;
        node_local_dsr.backends[0].port = 0;
        assert!(rejected(&[node_local_dsr], &caps).contains("node-local"));
    }

    #[test]
    fn a_node_local_vip_needs_no_snat_address() {
        let mut s = spec();
        s.vip = ip("127.0.0.1");
        s.snat = Vec::new();
        s.backends[0].addr = ip("127.0.0.2");
        assert!(s.node_local());
        assert!(validate(&[s], &Capacities::default()).is_ok());
    }
}

/// A service's live ring as the agent built it and as the map holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRing {
    pub table: Vec<u32>,
    pub held: Vec<u32>,
    /// Which of the two rings the agent wrote last, and which one `VIPS` names.
    pub ring: u32,
    pub live: u32,
}
