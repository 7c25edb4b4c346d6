//! Flow sync between LB nodes (`[agent.sync]`): each node sends its established
//! flows and their NAT bindings to its peers, and learns theirs, so the node that
//! becomes VRRP master carries the old master's connections (NAT ones too, when the
//! SNAT address floats with the VIP). Off the packet path: a thread reads the
//! pinned maps once a second and sends what is new or changed (or everything, to a
//! peer that asks at its start); another receives, checks and writes. Messages are
//! authenticated with HMAC-SHA256 under a pre-shared key; forged, replayed or stale
//! ones are rejected and counted. Memory: one entry per flow of this node's table;
//! bandwidth: 93 bytes per new or changed flow, and per flow every `RESEND`.

mod learn;
mod send;
pub mod wire;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    config::SyncConfig,
    dataplane::PinLayout,
    status::{SyncPeerStatus, SyncStatus, unix_now},
};

/// How often the sender reads the flow table.
pub const PASS: Duration = Duration::from_secs(1);
/// A flow unchanged this long is sent again (its peers' copy would expire).
pub const RESEND: Duration = Duration::from_secs(30);
/// Messages whose timestamp is further than this from ours are rejected.
pub const MAX_SKEW_MS: u64 = 30_000;
/// Datagrams sent back to back at most; then a pause of `PACE` (about 16 MB/s, so
/// a whole table's answer does not overflow the peer's socket).
pub const BURST: usize = 64;
pub const PACE: Duration = Duration::from_millis(5);
/// A learned lifetime is at most this many ticks (about 2 days): a peer cannot pin
/// entries the sweep would never remove.
pub const MAX_LEFT: u32 = 1 << 17;
/// The receive buffer asked for (the kernel caps it at net.core.rmem_max).
const RCVBUF: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("flow sync socket on port {port}: {source}")]
    Socket {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("flow sync: starting its threads: {0}")]
    Thread(#[source] std::io::Error),
}

/// Counters shared by the threads and read into the status.
#[derive(Debug, Default)]
pub struct Stats {
    pub messages_sent: AtomicU64,
    pub records_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub records_received: AtomicU64,
    pub records_learned: AtomicU64,
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Unix seconds each peer was last heard from.
    pub heard: Mutex<BTreeMap<IpAddr, u64>>,
}

impl Stats {
    fn add(n: &AtomicU64, v: u64) {
        n.fetch_add(v, Ordering::Relaxed);
    }

    fn reject(&self, why: wire::Reject) {
        if let Ok(mut r) = self.rejected.lock() {
            *r.entry(why.label()).or_default() += 1;
        }
    }
}

/// The running sync: stops (and joins its threads) on drop.
pub struct FlowSync {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<Stats>,
    peers: Vec<IpAddr>,
}

impl FlowSync {
    /// Binds the port and starts the sender and the receiver over the maps pinned
    /// under `pins`; the receiver asks every peer for its flows at once.
    pub fn start(cfg: &SyncConfig, pins: &PinLayout) -> Result<Self, SyncError> {
        let v6 = cfg.peers.first().is_some_and(IpAddr::is_ipv6);
        let any: IpAddr = if v6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        let socket = UdpSocket::bind(SocketAddr::new(any, cfg.port)).map_err(|source| {
            SyncError::Socket {
                port: cfg.port,
                source,
            }
        })?;
        // A larger receive buffer for a peer's whole-table answer (best effort).
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RCVBUF);
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .and_then(|()| socket.try_clone())
            .map_err(|source| SyncError::Socket {
                port: cfg.port,
                source,
            })
            .and_then(|send_socket| {
                let stop = Arc::new(AtomicBool::new(false));
                let stats = Arc::new(Stats::default());
                let (resync_tx, resync_rx) = mpsc::channel::<SocketAddr>();
                let boot = boot_id();
                // One sequence for both threads' messages (one boot id).
                let seq = Arc::new(AtomicU64::new(0));
                let sender = {
                    let (cfg, pins, stop, stats, seq) = (
                        cfg.clone(),
                        pins.clone(),
                        stop.clone(),
                        stats.clone(),
                        seq.clone(),
                    );
                    let out = Out {
                        socket: send_socket,
                        boot,
                        seq,
                        key: wire::key(&cfg.key),
                    };
                    std::thread::Builder::new()
                        .name("lb-sync-send".into())
                        .spawn(move || send::run(&cfg, &pins, &out, &stats, &stop, &resync_rx))
                        .map_err(SyncError::Thread)?
                };
                let receiver = {
                    let (cfg, pins, stop, stats) =
                        (cfg.clone(), pins.clone(), stop.clone(), stats.clone());
                    let out = Out {
                        socket: socket.try_clone().map_err(|source| SyncError::Socket {
                            port: cfg.port,
                            source,
                        })?,
                        boot,
                        seq,
                        key: wire::key(&cfg.key),
                    };
                    std::thread::Builder::new()
                        .name("lb-sync-learn".into())
                        .spawn(move || {
                            learn::run(&cfg, &pins, &socket, &out, &stats, &stop, &resync_tx);
                        })
                        .map_err(SyncError::Thread)?
                };
                Ok(Self {
                    stop,
                    threads: vec![sender, receiver],
                    stats,
                    peers: cfg.peers.clone(),
                })
            })
    }

    /// What `lb-agent vrrp`, the status and `/metrics` show.
    pub fn status(&self) -> SyncStatus {
        let s = &self.stats;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let heard = s.heard.lock().map(|h| h.clone()).unwrap_or_default();
        let now = unix_now();
        SyncStatus {
            peers: self
                .peers
                .iter()
                .map(|p| SyncPeerStatus {
                    address: p.to_string(),
                    heard_s_ago: heard.get(p).map(|t| now.saturating_sub(*t)),
                })
                .collect(),
            messages_sent: get(&s.messages_sent),
            records_sent: get(&s.records_sent),
            bytes_sent: get(&s.bytes_sent),
            messages_received: get(&s.messages_received),
            records_received: get(&s.records_received),
            records_learned: get(&s.records_learned),
            rejected: s
                .rejected
                .lock()
                .map(|r| r.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
        }
    }
}

impl Drop for FlowSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Where and how a thread sends: the socket, this run's id, the shared sequence
/// and the key.
pub(crate) struct Out {
    socket: UdpSocket,
    boot: u64,
    seq: Arc<AtomicU64>,
    key: ring::hmac::Key,
}

impl Out {
    /// Sends one message (records or a request) to `to`.
    fn send(&self, to: SocketAddr, kind: wire::Kind, records: &[wire::Record], stats: &Stats) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let msg = wire::encode(
            &wire::Header {
                kind,
                boot: self.boot,
                seq,
                unix_ms: now_ms(),
            },
            records,
            &self.key,
        );
        match self.socket.send_to(&msg, to) {
            Ok(n) => {
                Stats::add(&stats.messages_sent, 1);
                Stats::add(&stats.records_sent, records.len() as u64);
                Stats::add(&stats.bytes_sent, n as u64);
            }
            Err(e) => tracing::warn!("flow sync: sending to {to}: {e}"),
        }
    }

    /// Sends `records` to `to` in datagrams, paced (`BURST`, `PACE`).
    fn send_all(&self, to: SocketAddr, records: &[wire::Record], stats: &Stats) {
        for (i, chunk) in records.chunks(wire::MAX_RECORDS).enumerate() {
            if i > 0 && i % BURST == 0 {
                std::thread::sleep(PACE);
            }
            self.send(to, wire::Kind::Flows, chunk, stats);
        }
    }
}

/// A random id for this agent's run (sequence numbers count within it).
fn boot_id() -> u64 {
    let mut b = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        // No randomness: the clock still differs from the last run's.
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    u64::from_be_bytes(b)
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
