//! The agent's sweep of the flow table and the NAT bindings: entries whose state's
//! timeout has passed are removed in batches (`BPF_MAP_LOOKUP_BATCH`, then
//! `BPF_MAP_DELETE_BATCH` of that batch's expired keys at once, so an entry is
//! deleted microseconds after it was read expired), at a bounded pace, from a
//! thread of its own on the pinned maps. Each pass also counts what the tables hold,
//! by state, and the NAT bindings in use per (SNAT address, backend).
//!
//! The data plane does not need the sweep to stay correct (expired entries are
//! chosen again, expired bindings taken over at once): it keeps the tables' memory
//! to live flows and gives the counts.
//!
//! Neither side can compare and delete in one step, so the two never act on the
//! same binding: the program takes over (or gives back to its flow) only bindings
//! expired less than `NAT_RECLAIM_TICKS` ago, the sweep deletes only bindings
//! expired longer than that and a tick (what it read expired that long stays
//! untouched until it is deleted). A flow entry the program renews between the
//! sweep's read and its delete (microseconds) is deleted with it: the flow's next
//! packet chooses again (`flow_expired`) and gets its own binding back.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use aya::maps::MapData;
use lb_common::{
    FLOW_STATES, FlowEntry, FlowKey, MAP_FLOWS, MAP_NAT, NatEntry, maps::addr::from_words, ticks,
};

use super::{Dataplane, DataplaneError, PinLayout, batch, now_tick};

/// Entries read per batch.
const CHUNK: usize = 512;

/// What one table held at a pass, and what the pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePass {
    /// Live entries by `FLOW_*` state (after the pass).
    pub by_state: [u64; FLOW_STATES],
    /// Expired entries removed, by state.
    pub removed: [u64; FLOW_STATES],
    /// Expired entries kept (NAT bindings in their reclaim window).
    pub expired: u64,
}

impl TablePass {
    pub fn entries(&self) -> u64 {
        self.by_state.iter().sum()
    }
}

/// One pass over both tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepPass {
    pub flows: TablePass,
    pub bindings: TablePass,
    /// Live NAT bindings per (SNAT address, backend address).
    pub in_use: BTreeMap<(IpAddr, IpAddr), u64>,
    pub took: Duration,
}

/// The pinned flow and NAT maps, opened for sweeping.
pub struct Sweeper {
    flows: MapData,
    nat: MapData,
    /// Entries looked at per second at most (both tables together).
    pace: u64,
}

fn open(pins: &PinLayout, name: &'static str) -> Result<MapData, DataplaneError> {
    let path = pins.map(name);
    MapData::from_pin(&path).map_err(|e| DataplaneError::PinnedMap {
        path,
        why: format!("cannot open it: {e}"),
    })
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> DataplaneError {
    move |source| DataplaneError::Io { what, source }
}

impl Sweeper {
    /// Opens the maps pinned under `pins`; a pass looks at no more than `pace`
    /// entries a second (the rest of the time it sleeps).
    pub fn open(pins: &PinLayout, pace: u64) -> Result<Self, DataplaneError> {
        Ok(Self {
            flows: open(pins, MAP_FLOWS)?,
            nat: open(pins, MAP_NAT)?,
            pace: pace.max(1),
        })
    }

    /// The maps of a loaded (not necessarily pinned) data plane, for sweeping.
    pub fn of(dp: &Dataplane, pace: u64) -> Result<Self, DataplaneError> {
        Ok(Self {
            flows: dp.map_data(MAP_FLOWS)?,
            nat: dp.map_data(MAP_NAT)?,
            pace: pace.max(1),
        })
    }

    /// One pass over both tables (see the module doc).
    pub fn pass(&mut self) -> Result<SweepPass, DataplaneError> {
        let start = Instant::now();
        let mut out = SweepPass::default();
        let mut seen = 0u64;
        let pace = self.pace;
        let mut breathe = |n: usize| {
            seen += n as u64;
            // Keep to the pace: sleep until `seen` entries are due.
            let due = Duration::from_secs_f64(seen as f64 / pace as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        };
        let flows = &self.flows;
        batch::walk::<FlowKey, FlowEntry>(flows, CHUNK, |keys, values| {
            let now = now_tick();
            let mut gone = Vec::new();
            for (k, v) in keys.iter().zip(values) {
                let state = usize::from(v.state) & (FLOW_STATES - 1);
                if ticks::expired(now, v.expires) {
                    gone.push(*k);
                    out.flows.removed[state] += 1;
                } else {
                    out.flows.by_state[state] += 1;
                }
            }
            batch::delete(flows, &gone)?;
            breathe(keys.len());
            Ok(())
        })
        .map_err(io("sweeping the flow table"))?;
        let nat = &self.nat;
        batch::walk::<FlowKey, NatEntry>(nat, CHUNK, |keys, values| {
            let now = now_tick();
            let mut gone = Vec::new();
            for (k, v) in keys.iter().zip(values) {
                let state = usize::from(v.state) & (FLOW_STATES - 1);
                if ticks::nat_sweepable(now, v.expires) {
                    gone.push(*k);
                    out.bindings.removed[state] += 1;
                } else if ticks::expired(now, v.expires) {
                    out.bindings.expired += 1;
                } else {
                    out.bindings.by_state[state] += 1;
                    // Reply key: backend -> SNAT address (a local backend's binding:
                    // backend -> client, counted under the client, not a SNAT port).
                    let snat = from_words(k.dst, k.family);
                    let backend = from_words(k.src, k.family);
                    *out.in_use.entry((snat, backend)).or_default() += 1;
                }
            }
            batch::delete(nat, &gone)?;
            breathe(keys.len());
            Ok(())
        })
        .map_err(io("sweeping the NAT bindings"))?;
        out.took = start.elapsed();
        Ok(out)
    }
}
