//! The receiver: asks every peer for its flows at start (again every pass until it
//! answers), then checks each message (from a peer, authentic, newer than the last
//! of the sender's run, timestamp within `MAX_SKEW_MS`) and writes its flows and
//! NAT bindings into this node's tables with this node's slots and clock, marked
//! learned. An entry here is replaced only by a copy seen later (the node serving
//! the flow now) or once it expired; lifetimes are capped at `MAX_LEFT`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use lb_common::{
    Backend, FLOW_F_LEARNED, FlowEntry, FlowKey, MAP_BACKENDS, MAP_FLOWS, MAP_NAT, MAP_VIPS,
    NatEntry, VIP_F_STANDBY, VipKey, VipMeta,
};

use super::{
    MAX_LEFT, MAX_SKEW_MS, Out, PASS, Stats,
    wire::{self, Kind, Record, Reject},
};
use crate::{
    config::SyncConfig,
    dataplane::{PinLayout, PinnedMaps, now_tick, typed},
};

/// How often the slot index is read again.
const SLOTS_EVERY: Duration = Duration::from_secs(1);

/// The last message accepted from a peer.
struct Last {
    boot: u64,
    seq: u64,
    unix_ms: u64,
}

/// (VIP slot, backend address, backend port) -> (slot, generation).
type Slots = HashMap<(u32, [u32; 4], u16), (u32, u32)>;

pub fn run(
    cfg: &SyncConfig,
    pins: &PinLayout,
    socket: &UdpSocket,
    out: &Out,
    stats: &Stats,
    stop: &AtomicBool,
    resync: &mpsc::Sender<SocketAddr>,
) {
    let key = wire::key(&cfg.key);
    // A starting node asks its peers for everything they have, again every pass
    // until each has sent flows (a request may be lost, or sent before the route).
    let mut unanswered: Vec<IpAddr> = cfg.peers.clone();
    let mut asked_at: Option<Instant> = None;
    let mut last: HashMap<IpAddr, Last> = HashMap::new();
    let mut maps: Option<(PinnedMaps, Slots, Instant)> = None;
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if !unanswered.is_empty() && asked_at.is_none_or(|t| t.elapsed() >= PASS) {
            for p in &unanswered {
                out.send(SocketAddr::new(*p, cfg.port), Kind::Resync, &[], stats);
            }
            asked_at = Some(Instant::now());
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!("flow sync: receiving: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let peer = canonical(from.ip());
        if !cfg.peers.contains(&peer) {
            stats.reject(Reject::NotAPeer);
            continue;
        }
        let (h, records) = match wire::decode(&buf[..n], &key) {
            Ok(x) => x,
            Err(why) => {
                stats.reject(why);
                tracing::debug!("flow sync: a message from {peer} rejected: {why}");
                continue;
            }
        };
        let now_ms = super::now_ms();
        if h.unix_ms.abs_diff(now_ms) > MAX_SKEW_MS {
            stats.reject(Reject::Stale);
            continue;
        }
        match last.get(&peer) {
            Some(l) if l.boot == h.boot && h.seq <= l.seq => {
                stats.reject(Reject::Replayed);
                continue;
            }
            // Another run of the peer: only a newer one.
            Some(l) if l.boot != h.boot && h.unix_ms <= l.unix_ms => {
                stats.reject(Reject::Replayed);
                continue;
            }
            _ => {}
        }
        last.insert(
            peer,
            Last {
                boot: h.boot,
                seq: h.seq,
                unix_ms: h.unix_ms,
            },
        );
        Stats::add(&stats.messages_received, 1);
        if let Ok(mut heard) = stats.heard.lock() {
            heard.insert(peer, crate::status::unix_now());
        }
        match h.kind {
            Kind::Resync => {
                let _ = resync.send(SocketAddr::new(peer, cfg.port));
            }
            Kind::Flows => {
                unanswered.retain(|p| *p != peer);
                Stats::add(&stats.records_received, records.len() as u64);
                let fresh = maps
                    .as_ref()
                    .is_some_and(|(_, _, at)| at.elapsed() < SLOTS_EVERY);
                if !fresh {
                    maps = match PinnedMaps::open(pins)
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|mut m| {
                            let s = slots(&mut m)?;
                            Ok((m, s, Instant::now()))
                        }) {
                        Ok(x) => Some(x),
                        Err(e) => {
                            tracing::warn!("flow sync: opening the pinned maps: {e}");
                            None
                        }
                    };
                }
                let Some((m, s, _)) = maps.as_mut() else {
                    continue;
                };
                match learn(m, s, &records) {
                    Ok(n) => Stats::add(&stats.records_learned, n),
                    Err(e) => {
                        tracing::warn!("flow sync: writing learned flows: {e}");
                        maps = None;
                    }
                }
            }
        }
    }
}

/// Whether a peer's copy last seen at `theirs` replaces ours, last seen at `ours`
/// and expiring at `expires` (all this node's ticks).
fn fresher(theirs: u32, ours: u32, now: u32, expires: u32) -> bool {
    lb_common::ticks::expired(now, expires) || (theirs.wrapping_sub(ours) as i32) > 0
}

/// An IPv4 peer reached over an IPv6 socket shows as `::ffff:a.b.c.d`.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Every backend slot in use, by its VIP slot and address.
fn slots(m: &mut PinnedMaps) -> Result<Slots, String> {
    let arr: Array<&mut MapData, Backend> = typed(m, MAP_BACKENDS).map_err(|e| format!("{e:#}"))?;
    let all: Vec<Backend> = arr
        .iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("BACKENDS: {e}"))?;
    Ok(all
        .iter()
        .enumerate()
        .filter(|(_, b)| b.family != 0)
        .map(|(i, b)| ((b.vip_id, b.addr, b.port), (i as u32, b.generation)))
        .collect())
}

/// Writes `records` (those this node serves); how many were written.
fn learn(m: &mut PinnedMaps, slots: &Slots, records: &[Record]) -> Result<u64, String> {
    let now = now_tick();
    let mut written = 0;
    for r in records {
        let k = &r.key;
        let vip = {
            let vips: BpfHashMap<&mut MapData, VipKey, VipMeta> =
                typed(m, MAP_VIPS).map_err(|e| format!("{e:#}"))?;
            let exact = VipKey {
                addr: k.dst,
                port: k.dport,
                proto: k.proto,
                family: k.family,
            };
            let any = VipKey { port: 0, ..exact };
            vips.get(&exact, 0).or_else(|_| vips.get(&any, 0)).ok()
        };
        let Some(meta) = vip else { continue };
        // A backend without a port keeps the client's: its slot has port 0.
        let slot = slots
            .get(&(meta.id, r.backend.0, r.backend.1))
            .or_else(|| slots.get(&(meta.id, r.backend.0, 0)));
        let Some(&(slot, generation)) = slot else {
            continue;
        };
        let when = |l: &wire::Life| {
            (
                now.wrapping_sub(l.seen_age),
                now.wrapping_add(l.left.min(MAX_LEFT)),
            )
        };
        let (seen, expires) = when(&r.flow);
        {
            let mut flows: BpfHashMap<&mut MapData, FlowKey, FlowEntry> =
                typed(m, MAP_FLOWS).map_err(|e| format!("{e:#}"))?;
            // What this node has is kept unless the peer saw the flow later (the
            // peer serving it now) or it expired here.
            if flows
                .get(k, 0)
                .is_ok_and(|e| !fresher(seen, e.seen, now, e.expires))
            {
                continue;
            }
            let e = FlowEntry {
                backend: slot,
                generation,
                vip_id: meta.id,
                vip_generation: meta.generation,
                // Not the standby of a backup: the flow is written for when this
                // node serves it.
                vip_flags: meta.flags & !VIP_F_STANDBY,
                snat_addr: r.snat.0,
                snat_port: r.snat.1,
                state: r.flow.state,
                _pad: FLOW_F_LEARNED,
                seen,
                expires,
            };
            flows.insert(k, e, 0).map_err(|e| format!("FLOWS: {e}"))?;
        }
        if let Some(nat) = &r.nat {
            let mut bindings: BpfHashMap<&mut MapData, FlowKey, NatEntry> =
                typed(m, MAP_NAT).map_err(|e| format!("{e:#}"))?;
            let nk = FlowKey {
                src: r.backend.0,
                dst: r.snat.0,
                sport: r.backend.1,
                dport: r.snat.1,
                proto: k.proto,
                family: k.family,
                _pad: [0; 2],
            };
            let (nat_seen, nat_expires) = when(nat);
            if !bindings
                .get(&nk, 0)
                .is_ok_and(|e| !fresher(nat_seen, e.seen, now, e.expires))
            {
                let (seen, expires) = (nat_seen, nat_expires);
                let e = NatEntry {
                    client: k.src,
                    vip: k.dst,
                    client_port: k.sport,
                    vip_port: k.dport,
                    vip_id: meta.id,
                    backend: slot,
                    state: nat.state,
                    _pad: [FLOW_F_LEARNED, 0, 0],
                    seen,
                    expires,
                    nh: Default::default(),
                };
                bindings.insert(nk, e, 0).map_err(|e| format!("NAT: {e}"))?;
            }
        }
        written += 1;
    }
    Ok(written)
}
