//! The sender: once a second, this node's flows (past `min_age`, past their SYN)
//! with their NAT bindings, as addresses; a flow goes out when first eligible, when
//! its backend, port or state changes, and again after `RESEND` (spread over
//! passes); all of them to a peer that asks (its start). Sends are paced.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Instant,
};

use aya::maps::{Array, MapData};
use lb_common::{
    Backend, FLOW_TCP_SYN, FlowKey, MAP_BACKENDS, NatEntry,
    ticks::{expired, past},
};

use super::{
    Out, PASS, RESEND, Stats,
    wire::{Life, Record},
};
use crate::{
    config::SyncConfig,
    dataplane::{PinLayout, PinnedMaps, now_tick, read, typed},
};

/// What was last sent of a flow.
struct Sent {
    first_seen: Instant,
    /// (backend slot, snat port, state) when last sent; `None`: not yet.
    what: Option<(u32, u16, u8)>,
    at: Option<Instant>,
}

pub fn run(
    cfg: &SyncConfig,
    pins: &PinLayout,
    out: &Out,
    stats: &Stats,
    stop: &AtomicBool,
    resync: &mpsc::Receiver<SocketAddr>,
) {
    let mut sent: HashMap<FlowKey, Sent> = HashMap::new();
    let mut maps: Option<PinnedMaps> = None;
    while !stop.load(Ordering::Relaxed) {
        // A peer's request wakes the pass early.
        let asked: Vec<SocketAddr> = match resync.recv_timeout(PASS) {
            Ok(a) => std::iter::once(a).chain(resync.try_iter()).collect(),
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if maps.is_none() {
            maps = match PinnedMaps::open(pins) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!("flow sync: opening the pinned maps: {e}");
                    continue;
                }
            };
        }
        let Some(m) = maps.as_mut() else { continue };
        let (changed, all) = match pass(m, cfg, &mut sent, !asked.is_empty()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("flow sync: reading the flow table: {e}");
                maps = None;
                continue;
            }
        };
        for p in &cfg.peers {
            out.send_all(SocketAddr::new(*p, cfg.port), &changed, stats);
        }
        for p in asked {
            tracing::info!(
                "flow sync: {} asked for every flow: sending {}",
                p.ip(),
                all.len()
            );
            out.send_all(p, &all, stats);
        }
    }
}

/// One read of the tables: (the records to send now, and with `want_all` every
/// eligible record). Unchanged flows due again (`RESEND`) go out a share per pass,
/// so a large table's refresh is spread rather than sent in one burst.
fn pass(
    m: &mut PinnedMaps,
    cfg: &SyncConfig,
    sent: &mut HashMap<FlowKey, Sent>,
    want_all: bool,
) -> Result<(Vec<Record>, Vec<Record>), String> {
    let flows = read::flows(m).map_err(|e| format!("{e:#}"))?;
    // Bindings by their exact key (the backend's reply: backend -> SNAT address).
    let nat: HashMap<FlowKey, NatEntry> = read::nat_bindings(m)
        .map_err(|e| format!("{e:#}"))?
        .into_iter()
        .collect();
    let backends: Vec<Backend> = {
        let arr: Array<&mut MapData, Backend> =
            typed(m, MAP_BACKENDS).map_err(|e| format!("{e:#}"))?;
        arr.iter()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("BACKENDS: {e}"))?
    };
    let now = now_tick();
    let instant = Instant::now();
    let life = |state: u8, seen: u32, expires: u32| Life {
        state,
        seen_age: now.wrapping_sub(seen),
        left: u32::try_from(-i64::from(past(now, expires))).unwrap_or(0),
    };
    // Unchanged flows due again: at most a thirtieth of the table (and 500) a pass.
    let mut resend_budget = (sent.len() / RESEND.as_secs().max(1) as usize).max(500);
    let mut changed = Vec::new();
    let mut all = Vec::new();
    let mut present = std::collections::HashSet::with_capacity(flows.len());
    for (k, e) in flows {
        present.insert(k);
        let s = sent.entry(k).or_insert(Sent {
            first_seen: instant,
            what: None,
            at: None,
        });
        let eligible = e.state != FLOW_TCP_SYN
            && instant.duration_since(s.first_seen) >= cfg.min_age
            && !expired(now, e.expires);
        let Some(b) = backends.get(e.backend as usize).filter(|b| b.family != 0) else {
            continue;
        };
        if !eligible {
            continue;
        }
        let backend_port = if b.port == 0 { k.dport } else { b.port };
        let binding = (e.snat_port != 0)
            .then(|| {
                nat.get(&FlowKey {
                    src: b.addr,
                    dst: e.snat_addr,
                    sport: backend_port,
                    dport: e.snat_port,
                    proto: k.proto,
                    family: k.family,
                    _pad: [0; 2],
                })
            })
            .flatten();
        let r = Record {
            key: k,
            backend: (b.addr, backend_port),
            snat: (e.snat_addr, e.snat_port),
            flow: life(e.state, e.seen, e.expires),
            nat: binding.map(|n| life(n.state, n.seen, n.expires)),
        };
        if want_all {
            all.push(r);
        }
        let what = (e.backend, e.snat_port, e.state);
        let due = s.at.is_none_or(|t| instant.duration_since(t) >= RESEND) && resend_budget > 0;
        if s.what != Some(what) || due {
            if s.what == Some(what) {
                resend_budget -= 1;
            }
            s.what = Some(what);
            s.at = Some(instant);
            changed.push(r);
        }
    }
    sent.retain(|k, _| present.contains(k));
    Ok((changed, all))
}
