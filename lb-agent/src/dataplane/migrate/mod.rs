//! Carrying pinned maps over into a new layout. An upgrade whose maps differ from
//! the pinned ones (a value type that grew, a changed `flow_table_size`) would
//! otherwise refuse to start or drop every flow. Instead:
//!
//! 1. `plan`: every pinned map's shape is read; each must be one this agent can
//!    carry (the same value, or an older layout's: `v1.rs`) and what is in use
//!    must fit the new capacities. Nothing is touched before this passes.
//! 2. `maps/` is renamed `maps-old/` (the running program keeps its maps: it holds
//!    them, not their names), the new object loads with fresh maps pinned in
//!    `maps/`, and services, backends, address tables, counters, flows, NAT
//!    bindings and balanced sockets are copied (converted) into them in batches. A
//!    failure puts `maps-old/` back: nothing changed.
//! 3. The agent applies its config. Just before the first pinned link gets the new
//!    program, the connections the old program added or changed since the copy are
//!    copied again (`before_switch`: by their refresh tick, so only those); then
//!    the links run the new program on the new maps.
//! 4. `finish`: the connections the old program touched in the last moments are
//!    added too (never over what the new program wrote), and `maps-old/` goes.
//!
//! A start finding `maps-old/` finishes an interrupted upgrade: what `maps/` holds
//! is kept and the connections of `maps-old/` are added to it.
//!
//! Not carried: the Maglev rings (rebuilt from the config: the same tables, the
//! backends keep their slots), next-hop caches and SNAT port cursors.

pub mod v1;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    Pod,
    maps::{Array, HashMap as BpfHashMap, Map, MapData, MapError, MapInfo, PerCpuArray},
};
use lb_common::{
    AddrInfo, AddrKey, AddrSlot, Backend, FlowEntry, FlowKey, MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE,
    MAP_ADDRS, MAP_BACKENDS, MAP_FLOWS, MAP_NAT, MAP_SNAT_ADDRS, MAP_SOCK_REVNAT, MAP_STATS,
    MAP_TIMEOUTS, MAP_UPGRADE_HOLD, MAP_VIP_GENERATIONS, MAP_VIPS, MAX_SNAT_ADDRS, MapRole,
    NatEntry, SockKey, SockOrigin, Timeouts, TrafficCounters, VipKey, VipMeta, map_def,
};
use v1::{FlowEntryV1, Lifetimes, NatEntryV1, VipMetaV1};

use super::{
    Capacities, Dataplane, DataplaneError, FlowTimeouts, PinLayout, batch, map_shapes,
    services::map_err, shapes::MapShape, ticks, timeouts::now_tick,
};

/// Where the maps being carried over wait, beside `maps/` (bpffs refuses names
/// with a dot).
pub const OLD_MAPS: &str = "maps-old";

/// A directory made in `maps-old/` just before the first link gets the new
/// program: from then on the new program may have written `maps/`, so a start
/// finishing the upgrade only adds to it (bpffs holds no plain files).
pub const SWITCHED: &str = "switched";

/// Where `maps-old/` goes, whole and at once, when an upgrade is done, before its
/// pins are removed one by one.
const GONE_MAPS: &str = "maps-gone";

/// How long the new program holds NAT packets missing their state at most, in
/// ticks (about 3 s): the switch's copies take well under a second for a full
/// default table; `finish` ends the hold sooner.
const HOLD_TICKS: u32 = 3;

/// Entries per batch syscall.
const CHUNK: usize = 4096;

/// How one map's entries reach the new layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carry {
    /// The same key and value: copied as they are.
    Same,
    /// A layout-1 value, converted.
    FromV1,
    /// Not copied: rebuilt or refilled by the new agent and program.
    Rebuilt,
}

/// What `name` holds (`lb_common::MAPS`), which decides when it is copied.
fn role(name: &str) -> MapRole {
    map_def(name).map_or(MapRole::Rebuilt, |d| d.role)
}

impl Drop for Plan {
    fn drop(&mut self) {
        self.undo();
    }
}

/// A copy of the connection maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Into the fresh maps: everything, in batches.
    Fresh,
    /// Before the new program runs: what changed since, over the copy.
    BeforeSwitch,
    /// With the new program running: what is new since, never over its entries.
    AfterSwitch,
}

/// One pinned map and how it is carried.
#[derive(Clone, Debug)]
struct Step {
    name: &'static str,
    from: MapShape,
    carry: Carry,
}

/// An upgrade of the pinned maps into this agent's layout (see the module doc).
#[derive(Debug)]
pub struct Plan {
    /// `maps-old/`.
    old: PathBuf,
    steps: Vec<Step>,
    /// An interrupted upgrade had switched links to the new program: what `maps/`
    /// holds is kept, connections are added or refreshed.
    resumed: bool,
    /// `maps/`, for `undo`.
    maps: PathBuf,
    /// `finish` ran (or failed after the switch).
    finished: bool,
    lifetimes: FlowTimeouts,
    /// Time spent copying (the rest of the start loads and applies as always).
    copying: Duration,
    /// The tick the last pass began at: later passes copy what changed from then.
    since: u32,
    /// `before_switch` ran.
    switched: bool,
    carried: Vec<(&'static str, usize)>,
}

fn shape_of(path: &Path, name: &'static str) -> Result<MapShape, DataplaneError> {
    let info = MapInfo::from_pin(path).map_err(|e| DataplaneError::PinnedMap {
        path: path.to_path_buf(),
        why: format!("cannot open it: {e}"),
    })?;
    Ok(MapShape {
        name,
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
    })
}

/// How `from` is carried into `to`, or why it cannot be.
fn carry_of(from: &MapShape, to: &MapShape) -> Result<Carry, String> {
    let same = from.key_size == to.key_size && from.value_size == to.value_size;
    let old = |k, v| (from.key_size, from.value_size) == (k, v);
    let size = |t: usize| t as u32;
    Ok(match to.name {
        // Tables the agent writes again from its config, or caches.
        _ if role(to.name) == MapRole::Rebuilt => Carry::Rebuilt,
        _ if same => Carry::Same,
        MAP_FLOWS if old(size(size_of::<FlowKey>()), size(size_of::<FlowEntryV1>())) => {
            Carry::FromV1
        }
        MAP_NAT if old(size(size_of::<FlowKey>()), size(size_of::<NatEntryV1>())) => Carry::FromV1,
        MAP_VIPS if old(size(size_of::<VipKey>()), size(size_of::<VipMetaV1>())) => Carry::FromV1,
        _ => {
            return Err(format!(
                "it has key/value sizes {}/{}, this agent's is {}/{} and it knows no layout \
                 with {}/{} to carry over (a newer agent's maps?); to start afresh, dropping \
                 its flows, remove the pin directory",
                from.key_size,
                from.value_size,
                to.key_size,
                to.value_size,
                from.key_size,
                from.value_size
            ));
        }
    })
}

/// Reads what is pinned under `pins` and decides: `None` when every pinned map has
/// this agent's shape (or nothing is pinned), else the upgrade to run. Fails, with
/// nothing touched, naming a map that cannot be carried.
pub fn plan(
    pins: &PinLayout,
    caps: &Capacities,
    lifetimes: &FlowTimeouts,
) -> Result<Option<Plan>, DataplaneError> {
    let want = map_shapes(caps);
    let old = pins.dir.join(OLD_MAPS);
    // What a finished upgrade left if it died deleting the old maps.
    let gone = pins.dir.join(GONE_MAPS);
    if gone.exists() {
        remove_all(&gone).map_err(|source| DataplaneError::Pin {
            what: "removing the maps of a finished upgrade".into(),
            path: gone.clone(),
            source,
        })?;
    }
    let interrupted = old.exists();
    if interrupted && !old.join(MAP_VIPS).exists() {
        return Err(DataplaneError::PinnedMap {
            path: old,
            why: "it holds no VIPS: not the maps an upgrade set aside; remove it".into(),
        });
    }
    // Before the switch the new maps are only a copy: an interrupted upgrade that
    // did not switch starts over from the old ones.
    let resumed = interrupted && old.join(SWITCHED).exists();
    let mut differs = false;
    for w in &want {
        let path = pins.map(w.name);
        if !path.exists() || (interrupted && !resumed) {
            continue;
        }
        let got = shape_of(&path, w.name)?;
        if got != *w {
            if resumed {
                return Err(DataplaneError::PinnedMap {
                    path,
                    why: format!(
                        "an interrupted upgrade left {} and this map has neither its layout \
                         nor this agent's (key/value/entries {}/{}/{}, wanted {}/{}/{}): start \
                         the agent of that upgrade again, or remove the pin directory to \
                         start afresh",
                        old.display(),
                        got.key_size,
                        got.value_size,
                        got.max_entries,
                        w.key_size,
                        w.value_size,
                        w.max_entries
                    ),
                });
            }
            differs = true;
        }
    }
    if !interrupted && !differs {
        return Ok(None);
    }
    let source = if interrupted {
        old.clone()
    } else {
        pins.maps()
    };
    let mut steps = Vec::new();
    for w in &want {
        let path = source.join(w.name);
        if !path.exists() {
            continue;
        }
        let from = shape_of(&path, w.name)?;
        let carry = carry_of(&from, w).map_err(|why| DataplaneError::PinnedMap {
            path: path.clone(),
            why,
        })?;
        steps.push(Step {
            name: w.name,
            from,
            carry,
        });
    }
    check_fits(&source, &steps, caps)?;
    Ok(Some(Plan {
        old,
        steps,
        resumed,
        maps: pins.maps(),
        finished: false,
        lifetimes: *lifetimes,
        copying: Duration::ZERO,
        since: 0,
        switched: false,
        carried: Vec::new(),
    }))
}

/// Services and backends in use must keep their slots: the new capacities must
/// hold the highest slot in use.
fn check_fits(source: &Path, steps: &[Step], caps: &Capacities) -> Result<(), DataplaneError> {
    let too_small = |name: &str, what: &str, slot: u32, cap: u32| DataplaneError::PinnedMap {
        path: source.join(name),
        why: format!(
            "{what} slot {slot} is in use and the new capacity is {cap}: upgrade with the \
             old capacity, or remove the pin directory to start afresh"
        ),
    };
    for s in steps {
        match s.name {
            MAP_BACKENDS if s.from.max_entries > caps.max_backends => {
                let old = open(source, s.name)?;
                let mut highest = None;
                read::<u32, Backend>(&old, s.name, |k, b| {
                    if b.family != 0 && *k >= caps.max_backends {
                        highest = highest.max(Some(*k));
                    }
                })?;
                if let Some(slot) = highest {
                    return Err(too_small(s.name, "backend", slot, caps.max_backends));
                }
            }
            MAP_VIPS => {
                let old = open(source, s.name)?;
                let mut highest = None;
                let mut note = |id: u32| {
                    if id >= caps.max_vips {
                        highest = highest.max(Some(id));
                    }
                };
                match s.carry {
                    Carry::FromV1 => read::<VipKey, VipMetaV1>(&old, s.name, |_, m| note(m.id))?,
                    _ => read::<VipKey, VipMeta>(&old, s.name, |_, m| note(m.id))?,
                }
                if let Some(slot) = highest {
                    return Err(too_small(s.name, "service", slot, caps.max_vips));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn open(dir: &Path, name: &'static str) -> Result<MapData, DataplaneError> {
    let path = dir.join(name);
    MapData::from_pin(&path).map_err(|e| DataplaneError::PinnedMap {
        path,
        why: format!("cannot open it: {e}"),
    })
}

fn carry_err(
    name: &'static str,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> DataplaneError {
    move |source| DataplaneError::Carry { name, what, source }
}

/// Calls `each` with every entry of hash or array map `map`.
fn read<K: Pod + Default, V: Pod + Default>(
    map: &MapData,
    name: &'static str,
    mut each: impl FnMut(&K, &V),
) -> Result<(), DataplaneError> {
    batch::walk::<K, V>(map, CHUNK, |keys, values| {
        keys.iter().zip(values).for_each(|(k, v)| each(k, v));
        Ok(())
    })
    .map_err(carry_err(name, "reading the old map"))
}

/// How `copy` writes into the new map.
#[derive(Clone, Copy)]
enum Write<B> {
    /// Every entry, over what is there (in batches).
    Over,
    /// Keys the new map lacks are added; an entry it holds is replaced only when
    /// `newer(copy, held)` (one lookup each: for the few entries of a pass after
    /// the switch).
    Merge(fn(&B, &B) -> bool),
}

/// The later of two copies of a flow or binding, by refresh tick.
fn seen_later<T: Seen>(copy: &T, held: &T) -> bool {
    copy.seen().wrapping_sub(held.seen()) as i32 > 0
}

fn never<T>(_: &T, _: &T) -> bool {
    false
}

/// A value with a refresh tick.
trait Seen {
    fn seen(&self) -> u32;
}

impl Seen for FlowEntry {
    fn seen(&self) -> u32 {
        self.seen
    }
}

impl Seen for NatEntry {
    fn seen(&self) -> u32 {
        self.seen
    }
}

/// Copies every entry of `from` that `f` turns into a value into `to` as `write`
/// says. Returns how many were written.
fn copy<K: Pod + Default, A: Pod + Default, B: Pod>(
    from: &MapData,
    to: &Map,
    name: &'static str,
    write: Write<B>,
    mut f: impl FnMut(&K, &A) -> Option<B>,
) -> Result<usize, DataplaneError> {
    let data = map_data(to, name)?;
    let held: Option<BpfHashMap<&MapData, K, B>> = match write {
        Write::Over => None,
        Write::Merge(_) => Some(BpfHashMap::try_from(to).map_err(map_err(name, "type check"))?),
    };
    let mut written = 0;
    let mut failed = None;
    let walked = batch::walk::<K, A>(from, CHUNK, |keys, values| {
        let mut add = (Vec::new(), Vec::new());
        let mut over = (
            Vec::with_capacity(keys.len()),
            Vec::with_capacity(keys.len()),
        );
        for (k, v) in keys.iter().zip(values) {
            let Some(b) = f(k, v) else { continue };
            match (write, &held) {
                (Write::Merge(newer), Some(held)) => match held.get(k, 0) {
                    Ok(h) if newer(&b, &h) => {
                        over.0.push(*k);
                        over.1.push(b);
                    }
                    Ok(_) => {}
                    Err(MapError::KeyNotFound) => {
                        add.0.push(*k);
                        add.1.push(b);
                    }
                    Err(e) => {
                        failed = Some(map_err(name, "lookup")(e));
                        return Err(std::io::Error::other("stopped"));
                    }
                },
                _ => {
                    over.0.push(*k);
                    over.1.push(b);
                }
            }
        }
        let wrote = batch::update(data, &over.0, &over.1, 0)
            .and_then(|n| batch::update(data, &add.0, &add.1, batch::NOEXIST).map(|m| n + m));
        match wrote {
            Ok(n) => written += n,
            Err(e) => {
                failed = Some(carry_err(name, "writing the new map")(e));
                return Err(std::io::Error::other("stopped"));
            }
        }
        Ok(())
    });
    if let Err(e) = walked {
        return Err(failed.unwrap_or_else(|| carry_err(name, "reading the old map")(e)));
    }
    Ok(written)
}

/// Entries of the new object's map `name`.
fn new_len(dp: &Dataplane, name: &str) -> u32 {
    map_def(name).map_or(0, |d| dp.caps.entries(d.entries))
}

/// The new object's map `name`.
fn new_map<'a>(dp: &'a Dataplane, name: &'static str) -> Result<&'a Map, DataplaneError> {
    dp.ebpf.map(name).ok_or(DataplaneError::MissingMap { name })
}

/// The descriptor of `map`, for batch writes.
fn map_data<'a>(map: &'a Map, name: &'static str) -> Result<&'a MapData, DataplaneError> {
    match map {
        Map::Array(d) | Map::HashMap(d) | Map::LruHashMap(d) | Map::PerCpuArray(d) => Ok(d),
        _ => Err(DataplaneError::MissingMap { name }),
    }
}

impl Plan {
    /// Renames `maps/` to `maps-old/` (unless an interrupted upgrade did; its copy
    /// in `maps/` is dropped when it had not switched).
    pub fn set_aside(&self, pins: &PinLayout) -> Result<(), DataplaneError> {
        let err = |what: &str, path: &Path| {
            let (what, path) = (what.to_string(), path.to_path_buf());
            move |source| DataplaneError::Pin { what, path, source }
        };
        if !self.old.exists() {
            std::fs::rename(pins.maps(), &self.old)
                .map_err(err("setting the old maps aside", &self.old))?;
        } else if !self.resumed && pins.maps().exists() {
            remove_all(&pins.maps()).map_err(err("dropping an unfinished copy", &pins.maps()))?;
        }
        std::fs::create_dir_all(pins.maps())
            .map_err(err("a directory for the new maps", &pins.maps()))
    }

    /// Puts the old maps back as they were when the upgrade ends before any link
    /// switched (a failed copy, or a start that failed later): the new maps' pins
    /// go and `maps-old/` is `maps/` again, so the agent that pinned them (or this
    /// one) can start on them. Runs when the plan is dropped unfinished.
    fn undo(&mut self) {
        // Not set aside yet (the rename failed): nothing to put back.
        if self.resumed || self.switched || self.finished || !self.old.exists() {
            return;
        }
        self.finished = true;
        let back = || -> std::io::Result<()> {
            if self.maps.exists() {
                remove_all(&self.maps)?;
            }
            std::fs::rename(&self.old, &self.maps)
        };
        match back() {
            Ok(()) => tracing::warn!(
                "the upgrade of the pinned maps did not complete: the old maps are back in {}",
                self.maps.display()
            ),
            Err(e) => tracing::error!(
                "putting {} back as {} failed: {e}; the next start redoes the upgrade",
                self.old.display(),
                self.maps.display()
            ),
        }
    }

    /// The first copy, into the freshly loaded maps (see the module doc).
    pub fn carry(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        let started = Instant::now();
        let fresh = !self.resumed;
        // An interrupted upgrade's maps may hold what the new program wrote.
        let pass = if fresh {
            Pass::Fresh
        } else {
            Pass::AfterSwitch
        };
        let since = self.since;
        self.since = now_tick();
        for s in &self.steps.clone() {
            let n = match role(s.name) {
                MapRole::Connection => self.connections(dp, s, pass, since)?,
                MapRole::Config if fresh => self.service(dp, s)?,
                MapRole::Counter if fresh => self.counters(dp, s)?,
                _ => continue,
            };
            self.carried.push((s.name, n));
        }
        self.copying += started.elapsed();
        Ok(())
    }

    /// Just before the first pinned link is given the new program: the connections
    /// the old program added or changed since `carry` are written over (nothing
    /// but the copy is in the new maps yet). Once; later links find it done.
    pub fn before_switch(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        if self.switched {
            return Ok(());
        }
        if !self.resumed {
            std::fs::create_dir(self.old.join(SWITCHED)).map_err(|source| DataplaneError::Pin {
                what: "marking the switch".into(),
                path: self.old.join(SWITCHED),
                source,
            })?;
        }
        self.switched = true;
        // From the switch until `finish`, a NAT packet missing its flow or binding
        // is probably one of the connections still to copy: held (dropped, sent
        // again by its sender) rather than given a new binding. Bounded, should
        // this agent die before `finish`.
        hold(dp, now_tick().wrapping_add(HOLD_TICKS))?;
        // An interrupted upgrade's new program may have run already: nothing of
        // its is overwritten.
        let pass = if self.resumed {
            Pass::AfterSwitch
        } else {
            Pass::BeforeSwitch
        };
        self.delta(dp, pass)
    }

    /// Right after a pinned link got the new program: the connections the old one
    /// added or changed since `before_switch`, never over the new one's entries.
    pub fn after_switch(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        self.delta(dp, Pass::AfterSwitch)
    }

    /// The last copy, once the new program runs everywhere: connections the old
    /// program added since the last pass (never over what the new program wrote),
    /// then `maps-old/` removed. Returns a summary for the log.
    pub fn finish(mut self, dp: &mut Dataplane) -> Result<String, DataplaneError> {
        self.finished = true;
        self.delta(dp, Pass::AfterSwitch)?;
        hold(dp, 0)?;
        // Out of `plan`'s sight at once, then removed pin by pin.
        let gone = self.old.with_file_name(GONE_MAPS);
        let err = |what: &str, path: &Path| {
            let (what, path) = (what.to_string(), path.to_path_buf());
            move |source| DataplaneError::Pin { what, path, source }
        };
        std::fs::rename(&self.old, &gone).map_err(err("retiring the old maps", &self.old))?;
        remove_all(&gone).map_err(err("removing the old maps", &gone))?;
        Ok(self.summary())
    }

    /// Copies the connections touched since the last pass.
    fn delta(&mut self, dp: &mut Dataplane, pass: Pass) -> Result<(), DataplaneError> {
        let started = Instant::now();
        let since = self.since;
        self.since = now_tick();
        let mut written = 0;
        for s in &self.steps.clone() {
            if role(s.name) != MapRole::Connection {
                continue;
            }
            let n = self.connections(dp, s, pass, since)?;
            written += n;
            if pass == Pass::AfterSwitch
                && let Some(c) = self.carried.iter_mut().find(|c| c.0 == s.name)
            {
                c.1 += n;
            }
        }
        self.copying += started.elapsed();
        tracing::debug!(
            "upgrade: {pass:?} copied {written} connection entries in {} us",
            started.elapsed().as_micros()
        );
        Ok(())
    }

    fn summary(&self) -> String {
        let count = |name| {
            self.carried
                .iter()
                .filter(|c| c.0 == name)
                .map(|c| c.1)
                .sum::<usize>()
        };
        let layout = if self.steps.iter().any(|s| s.carry == Carry::FromV1) {
            "layout 1 (before flow lifecycles)"
        } else {
            "the same layout with other capacities"
        };
        format!(
            "carried the pinned maps from {layout} into this agent's: {} flows, {} NAT \
             bindings, {} balanced sockets, {} services{}; copying took {} ms",
            count(MAP_FLOWS),
            count(MAP_NAT),
            count(MAP_SOCK_REVNAT),
            count(MAP_VIPS),
            if self.resumed {
                " (finishing an interrupted upgrade)"
            } else {
                ""
            },
            self.copying.as_millis()
        )
    }

    fn old_map(&self, name: &'static str) -> Result<MapData, DataplaneError> {
        open(&self.old, name)
    }

    /// Copies connection map `s`: into `fresh` (empty) maps in batches, else one by
    /// one, never over an entry the new maps hold.
    /// Copies connection map `s` for `pass`: after the first one, only entries
    /// the old program touched from tick `since` on (a changed entry is rewritten
    /// with its tick; entries of layout 1 have none and all go again).
    fn connections(
        &self,
        dp: &mut Dataplane,
        s: &Step,
        pass: Pass,
        since: u32,
    ) -> Result<usize, DataplaneError> {
        let old = self.old_map(s.name)?;
        let to = new_map(dp, s.name)?;
        let life = Lifetimes {
            now: now_tick(),
            tcp: ticks(self.lifetimes.tcp_established),
            udp: ticks(self.lifetimes.udp),
        };
        // After the switch the new program writes too: add what it lacks, replace
        // only what the old one saw later.
        let after = pass == Pass::AfterSwitch;
        let touched = |seen: u32| pass == Pass::Fresh || seen.wrapping_sub(since) as i32 >= 0;
        match (s.name, s.carry) {
            (MAP_FLOWS, Carry::Same) => {
                let w = if after {
                    Write::Merge(seen_later)
                } else {
                    Write::Over
                };
                copy::<FlowKey, FlowEntry, _>(&old, to, s.name, w, |_, v| {
                    touched(v.seen).then_some(*v)
                })
            }
            (MAP_FLOWS, Carry::FromV1) => {
                let w = if after {
                    Write::Merge(never)
                } else {
                    Write::Over
                };
                copy::<FlowKey, FlowEntryV1, _>(&old, to, s.name, w, |k, v| {
                    Some(v.upgrade(k, &life))
                })
            }
            (MAP_NAT, Carry::Same) => {
                let w = if after {
                    Write::Merge(seen_later)
                } else {
                    Write::Over
                };
                copy::<FlowKey, NatEntry, _>(&old, to, s.name, w, |_, v| {
                    touched(v.seen).then_some(*v)
                })
            }
            (MAP_NAT, Carry::FromV1) => {
                let w = if after {
                    Write::Merge(never)
                } else {
                    Write::Over
                };
                copy::<FlowKey, NatEntryV1, _>(&old, to, s.name, w, |k, v| {
                    Some(v.upgrade(k, &life))
                })
            }
            (MAP_SOCK_REVNAT, Carry::Same) => {
                let w = if after {
                    Write::Merge(never)
                } else {
                    Write::Over
                };
                copy::<SockKey, SockOrigin, _>(&old, to, s.name, w, |_, v| Some(*v))
            }
            _ => Ok(0),
        }
    }

    fn service(&self, dp: &mut Dataplane, s: &Step) -> Result<usize, DataplaneError> {
        if s.carry == Carry::Rebuilt {
            return Ok(0);
        }
        let old = self.old_map(s.name)?;
        // Arrays: the slots both layouts have (`check_fits` made sure no slot in use
        // is beyond the new end).
        let end = new_len(dp, s.name).min(s.from.max_entries);
        let slot = |k: &u32| *k < end;
        let to = new_map(dp, s.name)?;
        match (s.name, s.carry) {
            (MAP_VIPS, Carry::FromV1) => {
                let mut snats = Vec::new();
                let n = copy::<VipKey, VipMetaV1, _>(&old, to, s.name, Write::Over, |_, m| {
                    let meta = m.upgrade();
                    if meta.snat_count > 0 {
                        snats.push((meta.id, meta.snat_addr));
                    }
                    Some(meta)
                })?;
                let mut map: Array<&mut MapData, [u32; 4]> = dp.map_mut(MAP_SNAT_ADDRS)?;
                for (id, addr) in snats {
                    map.set(id * MAX_SNAT_ADDRS, addr, 0)
                        .map_err(map_err(MAP_SNAT_ADDRS, "update"))?;
                }
                Ok(n)
            }
            (MAP_VIPS, _) => {
                copy::<VipKey, VipMeta, _>(&old, to, s.name, Write::Over, |_, v| Some(*v))
            }
            (MAP_ADDRS, _) => {
                copy::<AddrKey, AddrInfo, _>(&old, to, s.name, Write::Over, |_, v| Some(*v))
            }
            (MAP_ADDR_TABLE, _) => {
                copy::<u32, AddrSlot, _>(&old, to, s.name, Write::Over, |k, v| {
                    slot(k).then_some(*v)
                })
            }
            (MAP_ADDR_TABLE_LIVE | MAP_VIP_GENERATIONS, _) => {
                copy::<u32, u32, _>(&old, to, s.name, Write::Over, |k, v| slot(k).then_some(*v))
            }
            (MAP_BACKENDS, _) => {
                copy::<u32, Backend, _>(&old, to, s.name, Write::Over, |k, v| slot(k).then_some(*v))
            }
            (MAP_SNAT_ADDRS, _) => {
                copy::<u32, [u32; 4], _>(&old, to, s.name, Write::Over, |k, v| {
                    slot(k).then_some(*v)
                })
            }
            (MAP_TIMEOUTS, _) => copy::<u32, Timeouts, _>(&old, to, s.name, Write::Over, |k, v| {
                slot(k).then_some(*v)
            }),
            _ => Ok(0),
        }
    }

    fn counters(&self, dp: &mut Dataplane, s: &Step) -> Result<usize, DataplaneError> {
        let old = Map::from_map_data(self.old_map(s.name)?).map_err(map_err(s.name, "open"))?;
        let end = new_len(dp, s.name).min(s.from.max_entries);
        match s.name {
            MAP_STATS => per_cpu::<u64>(dp, &old, s.name, end),
            _ => per_cpu::<TrafficCounters>(dp, &old, s.name, end),
        }
    }
}

/// Sets the new program's hold (`MAP_UPGRADE_HOLD`) until tick `until` (0: none).
fn hold(dp: &mut Dataplane, until: u32) -> Result<(), DataplaneError> {
    let mut map: Array<&mut MapData, u32> = dp.map_mut(MAP_UPGRADE_HOLD)?;
    map.set(0, until, 0)
        .map_err(map_err(MAP_UPGRADE_HOLD, "update"))
}

/// Removes a directory of pins (and the marker directory in it).
fn remove_all(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            std::fs::remove_dir(e.path())?;
        } else {
            std::fs::remove_file(e.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Copies slots `0..end` of a per-CPU array.
fn per_cpu<V: Pod>(
    dp: &mut Dataplane,
    old: &Map,
    name: &'static str,
    end: u32,
) -> Result<usize, DataplaneError> {
    let from: PerCpuArray<&MapData, V> =
        PerCpuArray::try_from(old).map_err(map_err(name, "type check"))?;
    let mut to: PerCpuArray<&mut MapData, V> = dp.map_mut(name)?;
    for i in 0..end {
        let v = from.get(&i, 0).map_err(map_err(name, "lookup"))?;
        to.set(i, v, 0).map_err(map_err(name, "update"))?;
    }
    Ok(end as usize)
}

#[cfg(test)]
mod tests {
    use lb_common::{MAP_NEXTHOPS, MAP_RINGS, MAP_SNAT_CURSORS};

    use super::*;

    fn shape(name: &'static str, k: usize, v: usize, n: u32) -> MapShape {
        MapShape {
            name,
            key_size: k as u32,
            value_size: v as u32,
            max_entries: n,
        }
    }

    #[test]
    fn layout_1_values_are_carried_and_unknown_ones_refused() {
        let flows = shape(MAP_FLOWS, 40, size_of::<FlowEntry>(), 1024);
        assert_eq!(
            carry_of(&shape(MAP_FLOWS, 40, 40, 512), &flows),
            Ok(Carry::FromV1)
        );
        assert_eq!(
            carry_of(&shape(MAP_FLOWS, 40, 48, 512), &flows),
            Ok(Carry::Same)
        );
        let nat = shape(MAP_NAT, 40, size_of::<NatEntry>(), 1024);
        assert_eq!(
            carry_of(&shape(MAP_NAT, 40, 72, 1024), &nat),
            Ok(Carry::FromV1)
        );
        let vips = shape(MAP_VIPS, 20, size_of::<VipMeta>(), 64);
        assert_eq!(
            carry_of(&shape(MAP_VIPS, 20, 32, 64), &vips),
            Ok(Carry::FromV1)
        );
        let err = carry_of(&shape(MAP_FLOWS, 40, 56, 1024), &flows).expect_err("unknown");
        assert!(
            err.contains("40/56") && err.contains("remove the pin directory"),
            "{err}"
        );
        // Rings and caches are rebuilt whatever their shape.
        let rings = shape(MAP_RINGS, 4, 4, 10);
        assert_eq!(
            carry_of(&shape(MAP_RINGS, 4, 8, 3), &rings),
            Ok(Carry::Rebuilt)
        );
    }

    #[test]
    fn caches_and_rings_are_rebuilt_whatever_their_shape() {
        for name in [MAP_NEXTHOPS, MAP_SNAT_CURSORS, MAP_UPGRADE_HOLD] {
            let to = shape(name, 4, 4, 10);
            assert_eq!(
                carry_of(&shape(name, 4, 8, 3), &to),
                Ok(Carry::Rebuilt),
                "{name}"
            );
        }
        assert_eq!(role(MAP_FLOWS), MapRole::Connection);
        assert_eq!(role(MAP_SOCK_REVNAT), MapRole::Connection);
        assert_eq!(role(MAP_STATS), MapRole::Counter);
        assert_eq!(role(MAP_BACKENDS), MapRole::Config);
    }
}
