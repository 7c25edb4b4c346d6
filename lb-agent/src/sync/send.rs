//! The sender: once a second, this node's flows (past `min_age`, past their SYN)
//! with their NAT bindings, as addresses; a flow goes out when first eligible, when
//! its backend, port or state changes, and every `RESEND`; all of them to a peer
//! that asks (its start).

use std::{
    collections::HashMap,
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Instant,
};

use aya::maps::{Array, MapData};
use lb_common::{
    Backend, FLOW_F_LEARNED, FLOW_TCP_SYN, FlowEntry, FlowKey, MAP_BACKENDS, NatEntry,
    ticks::{expired, past},
};

use super::{
    PASS, RESEND, Stats,
    wire::{self, Header, Kind, Life, Record},
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
    socket: &UdpSocket,
    boot: u64,
    stats: &Stats,
    stop: &AtomicBool,
    resync: &mpsc::Receiver<SocketAddr>,
) {
    let key = wire::key(&cfg.key);
    let mut seq: u64 = 0;
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
                    log::warn!("flow sync: opening the pinned maps: {e}");
                    continue;
                }
            };
        }
        let Some(m) = maps.as_mut() else { continue };
        let records = match pass(m, cfg, &mut sent) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("flow sync: reading the flow table: {e}");
                maps = None;
                continue;
            }
        };
        let (changed, all) = records;
        let peers: Vec<SocketAddr> = cfg
            .peers
            .iter()
            .map(|p| SocketAddr::new(*p, cfg.port))
            .collect();
        for chunk in changed.chunks(wire::MAX_RECORDS) {
            for p in &peers {
                send(socket, *p, Kind::Flows, chunk, boot, &mut seq, &key, stats);
            }
        }
        for p in asked {
            log::info!(
                "flow sync: {} asked for every flow: sending {}",
                p.ip(),
                all.len()
            );
            for chunk in all.chunks(wire::MAX_RECORDS) {
                send(socket, p, Kind::Flows, chunk, boot, &mut seq, &key, stats);
            }
        }
    }
}

/// Sends one message (records or a request) to `to`.
#[allow(clippy::too_many_arguments)]
pub(super) fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    kind: Kind,
    records: &[Record],
    boot: u64,
    seq: &mut u64,
    key: &ring::hmac::Key,
    stats: &Stats,
) {
    *seq += 1;
    let msg = wire::encode(
        &Header {
            kind,
            boot,
            seq: *seq,
            unix_ms: super::now_ms(),
        },
        records,
        key,
    );
    match socket.send_to(&msg, to) {
        Ok(n) => {
            Stats::add(&stats.messages_sent, 1);
            Stats::add(&stats.records_sent, records.len() as u64);
            Stats::add(&stats.bytes_sent, n as u64);
        }
        Err(e) => log::debug!("flow sync: sending to {to}: {e}"),
    }
}

/// One read of the tables: (the records to send now, every eligible record).
fn pass(
    m: &mut PinnedMaps,
    cfg: &SyncConfig,
    sent: &mut HashMap<FlowKey, Sent>,
) -> Result<(Vec<Record>, Vec<Record>), String> {
    let flows = read::flows(m).map_err(|e| format!("{e:#}"))?;
    let nat: HashMap<(FlowKey, u16), NatEntry> = read::nat_bindings(m)
        .map_err(|e| format!("{e:#}"))?
        .into_iter()
        .map(|(k, e)| {
            // The client's side of the binding: its flow key, and the NAT port.
            let flow = FlowKey {
                src: e.client,
                dst: e.vip,
                sport: e.client_port,
                dport: e.vip_port,
                proto: k.proto,
                family: k.family,
                _pad: [0; 2],
            };
            ((flow, k.dport), e)
        })
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
        left: u32::try_from(-past(now, expires)).unwrap_or(0),
    };
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
        let binding = (e.snat_port != 0)
            .then(|| nat.get(&(k, e.snat_port)))
            .flatten();
        let r = Record {
            key: k,
            backend: (b.addr, if b.port == 0 { k.dport } else { b.port }),
            snat: (e.snat_addr, e.snat_port),
            flow: life(e.state, e.seen, e.expires),
            nat: binding.map(|n| life(n.state, n.seen, n.expires)),
        };
        all.push(r);
        let what = (e.backend, e.snat_port, e.state);
        let stale = s.at.is_none_or(|t| instant.duration_since(t) >= RESEND);
        // Flows learned from a peer are sent on when they change (or to a peer that
        // asks), not every RESEND: the peer that taught them has them.
        let learned = learned(&e) && s.what.is_some();
        if s.what != Some(what) || (stale && !learned) {
            s.what = Some(what);
            s.at = Some(instant);
            changed.push(r);
        }
    }
    sent.retain(|k, _| present.contains(k));
    Ok((changed, all))
}

fn learned(e: &FlowEntry) -> bool {
    e._pad == FLOW_F_LEARNED
}
