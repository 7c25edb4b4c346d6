//! One routed listener: each connection's first bytes (a ClientHello's server name
//! or an HTTP request's host) pick a pool, Maglev over the pool's backends picks
//! one by the client's address and port, and the connection to it starts with the
//! pool's PROXY header and the bytes read so far; then bytes flow both ways with
//! half-close, one idle timeout for both directions, backpressure (a side is read
//! only as fast as the other takes it) and a reset passed on as a reset. The bytes
//! cross in the kernel (`splice` through a pipe per direction).
//! Bounded everywhere: the first bytes by size and time, connects by time, the
//! connections at once by a limit (beyond it a new one is closed at once).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use lb_common::{
    NO_BACKEND,
    maglev::{self, MaglevBackend},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};

use super::{
    client_hello::{self, Hello},
    handover::{Handed, Handover},
    http_host::{self, Head},
    names::Routes,
    proxy_header::{self, Version},
    splice::Pipe,
};

/// Ring entries per pool (the data plane's: any pool size the config allows).
const POOL_RING: u32 = lb_common::DEFAULT_RING_SIZE;

pub use lb_config::proxy::RouteBy;

/// A backend pool of a routed listener.
#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    /// The backends taking connections now (healthy, not drained), with weights.
    pub backends: Vec<(SocketAddr, u32)>,
    /// The PROXY header to start each connection with.
    pub send_proxy: Option<Version>,
    ring: Vec<u32>,
}

impl Pool {
    pub fn new(
        name: &str,
        backends: Vec<(SocketAddr, u32)>,
        send_proxy: Option<Version>,
    ) -> Result<Self, String> {
        let keys: Vec<String> = backends.iter().map(|(a, _)| a.to_string()).collect();
        let input: Vec<MaglevBackend<'_>> = keys
            .iter()
            .zip(&backends)
            .map(|(k, (_, w))| MaglevBackend {
                key: k.as_bytes(),
                weight: *w,
            })
            .collect();
        let ring = maglev::build(&input, POOL_RING).map_err(|e| format!("pool {name}: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            backends,
            send_proxy,
            ring,
        })
    }

    /// The backend for a client, by its address and port; `None` when no backend
    /// takes connections.
    pub fn pick(&self, client: SocketAddr) -> Option<SocketAddr> {
        let key = client.to_string();
        let h = lb_common::hash::bytes_hash(key.as_bytes(), 0x5eed);
        match self.ring.get((h % POOL_RING) as usize) {
            Some(&i) if i != NO_BACKEND => self.backends.get(i as usize).map(|b| b.0),
            _ => None,
        }
    }
}

/// When no rule matches (or the client names nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Otherwise {
    /// Closed with a reset.
    Reset,
    /// This pool.
    Pool(usize),
}

/// A routed listener's rules.
#[derive(Clone, Debug)]
pub struct Router {
    pub by: RouteBy,
    pub routes: Routes<usize>,
    pub otherwise: Otherwise,
    pub pools: Vec<Pool>,
}

/// Bounds, as HAProxy's `tcp-request inspect-delay` and `timeout connect`,
/// `timeout client`/`server`/`tunnel` (one idle timeout both ways) and `maxconn`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub inspect: Duration,
    pub connect: Duration,
    pub idle: Duration,
    /// The first bytes at most (the ClientHello or request head).
    pub first_bytes: usize,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            inspect: Duration::from_secs(5),
            connect: Duration::from_secs(5),
            idle: Duration::from_secs(3600),
            first_bytes: 16 * 1024,
            max_connections: 10_000,
        }
    }
}

/// Counters of a routed listener.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    /// Sent to a pool's backend (per pool).
    pub routed: Vec<AtomicU64>,
    pub no_match_reset: AtomicU64,
    /// First bytes that were not a ClientHello / HTTP request, or too large.
    pub invalid: AtomicU64,
    pub inspect_timeout: AtomicU64,
    pub no_backend: AtomicU64,
    pub connect_failed: AtomicU64,
    pub over_limit: AtomicU64,
    pub active: AtomicU64,
}

impl Stats {
    pub fn new(pools: usize) -> Self {
        Self {
            routed: (0..pools).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves `listener` with the router `routes` holds until the task is aborted. Each connection is its
/// own task; an accept error waits a moment (out of descriptors) and goes on. With
/// `handover`, a relaying connection stops and is sent there when asked (the agent
/// is stopping: see `handover`).
pub async fn serve(
    listener: TcpListener,
    routes: watch::Receiver<Arc<Router>>,
    limits: Limits,
    stats: Arc<Stats>,
    handover: Option<Handover>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = crate::agent::backoff::Backoff::default();
    loop {
        let (conn, client) = match listener.accept().await {
            Ok(c) => {
                backoff.succeeded();
                c
            }
            Err(e) => {
                backoff.failed("routed listener", &e).await;
                continue;
            }
        };
        bump(&stats.accepted);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            bump(&stats.over_limit);
            reset(conn);
            continue;
        };
        // The rules and healthy backends as they are now; a later change applies
        // to later connections.
        let router = routes.borrow().clone();
        let stats = stats.clone();
        let handover = handover.clone();
        tokio::spawn(async move {
            stats.active.fetch_add(1, Ordering::Relaxed);
            handle(conn, client, &router, &limits, &stats, handover).await;
            stats.active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Closes with a RST (SO_LINGER 0), as HAProxy's `tcp-request content reject`.
fn reset(conn: TcpStream) {
    let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
    drop(conn);
}

/// What the first bytes named.
enum Named {
    Name(String),
    Nothing,
}

async fn handle(
    mut conn: TcpStream,
    client: SocketAddr,
    router: &Router,
    limits: &Limits,
    stats: &Stats,
    handover: Option<Handover>,
) {
    let mut buf = Vec::with_capacity(2048);
    // Parsed again only when it can say more: a ClientHello once the length it
    // needs has arrived, a request head once a line has ended (a client sending a
    // byte a segment costs one pass over the buffer, not one per byte).
    let mut need = 1usize;
    let mut new_line = false;
    let inspect = tokio::time::timeout(limits.inspect, async {
        loop {
            let seen = match router.by {
                RouteBy::Sni if buf.len() >= need => {
                    match client_hello::parse(&buf, limits.first_bytes) {
                        Hello::NeedMore(n) => {
                            need = n;
                            None
                        }
                        Hello::Sni(n) => Some(Ok(Named::Name(n))),
                        Hello::NoSni => Some(Ok(Named::Nothing)),
                        Hello::NotTls | Hello::Invalid(_) => Some(Err(())),
                    }
                }
                RouteBy::Host if new_line || buf.len() > limits.first_bytes => {
                    new_line = false;
                    match http_host::parse(&buf, limits.first_bytes) {
                        Head::NeedMore => None,
                        Head::Host(h) => Some(Ok(Named::Name(h))),
                        Head::NoHost => Some(Ok(Named::Nothing)),
                        Head::Invalid(_) => Some(Err(())),
                    }
                }
                _ => None,
            };
            if let Some(s) = seen {
                return Some(s);
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    new_line |= chunk[..n].contains(&b'\n');
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    })
    .await;
    let named = match inspect {
        Err(_) => {
            bump(&stats.inspect_timeout);
            return reset(conn);
        }
        // The client closed before saying enough.
        Ok(None) => return,
        Ok(Some(Err(()))) => {
            bump(&stats.invalid);
            return reset(conn);
        }
        Ok(Some(Ok(n))) => n,
    };
    let (pool_index, authority) = match &named {
        Named::Name(n) => (router.routes.get(n).copied(), Some(n.as_str())),
        Named::Nothing => (None, None),
    };
    let pool_index = match (pool_index, router.otherwise) {
        (Some(p), _) | (None, Otherwise::Pool(p)) => p,
        (None, Otherwise::Reset) => {
            bump(&stats.no_match_reset);
            return reset(conn);
        }
    };
    let Some(pool) = router.pools.get(pool_index) else {
        bump(&stats.no_backend);
        return reset(conn);
    };
    let Some(backend) = pool.pick(client) else {
        bump(&stats.no_backend);
        return reset(conn);
    };
    let to = conn.local_addr().unwrap_or(client);
    let upstream = tokio::time::timeout(limits.connect, TcpStream::connect(backend)).await;
    let Ok(Ok(mut upstream)) = upstream else {
        bump(&stats.connect_failed);
        return reset(conn);
    };
    if let Some(v) = pool.send_proxy {
        buf.splice(0..0, proxy_header::header(v, client, to, authority));
    }
    let sent = tokio::time::timeout(limits.connect, upstream.write_all(&buf)).await;
    if !matches!(sent, Ok(Ok(()))) {
        bump(&stats.connect_failed);
        return reset(conn);
    }
    drop(buf);
    if let Some(c) = stats.routed.get(pool_index) {
        bump(c);
    }
    let _ = upstream.set_nodelay(true);
    let _ = conn.set_nodelay(true);
    relay(conn, upstream, limits.idle, handover).await;
}

/// Moves bytes both ways until both sides are done (each half-close passed on),
/// nothing moved either way for `idle`, or one side failed (then both are reset,
/// so a backend's RST reaches the client as one). The bytes go through a pipe
/// inside the kernel (`splice`); copied through a buffer only when no pipe can be
/// had (out of descriptors), and then not handed over at a stop.
async fn relay(mut a: TcpStream, mut b: TcpStream, idle: Duration, handover: Option<Handover>) {
    let (Ok(p), Ok(q)) = (Pipe::new(), Pipe::new()) else {
        let start = Instant::now();
        let last = AtomicU64::new(0);
        let (mut ar, mut aw) = a.split();
        let (mut br, mut bw) = b.split();
        let failed = both(
            copied(&mut ar, &mut bw, idle, start, &last),
            copied(&mut br, &mut aw, idle, start, &last),
        )
        .await;
        if failed {
            reset(a);
            reset(b);
        }
        return;
    };
    let Some(mut handover) = handover else {
        return spliced_both(a, b, p, q, (0, 0), idle).await;
    };
    let stopped = {
        let start = Instant::now();
        let last = AtomicU64::new(0);
        let work = both(
            spliced(&a, &b, &p, 0, idle, start, &last),
            spliced(&b, &a, &q, 0, idle, start, &last),
        );
        tokio::select! {
            failed = work => Err(failed),
            () = handover.requested() => Ok(()),
        }
    };
    match stopped {
        Err(failed) => {
            if failed {
                reset(a);
                reset(b);
            }
        }
        // Stopped between two moves: whatever is in flight is in the sockets'
        // buffers or the pipes, and all four go.
        Ok(()) => match (a.into_std(), b.into_std()) {
            (Ok(client), Ok(backend)) => handover.send(Handed {
                client,
                backend,
                up: p,
                down: q,
                idle,
            }),
            _ => tracing::warn!("a routed connection could not be handed over: closed"),
        },
    }
}

/// A connection handed over by a stopping agent, relayed to its end.
pub async fn resume(h: Handed) {
    let pending = (h.up.pending().unwrap_or(0), h.down.pending().unwrap_or(0));
    let (Ok(a), Ok(b)) = (
        TcpStream::from_std(h.client),
        TcpStream::from_std(h.backend),
    ) else {
        tracing::warn!("a handed-over connection could not be registered: closed");
        return;
    };
    spliced_both(a, b, h.up, h.down, pending, h.idle).await;
}

/// Both directions by `splice`, each starting with the bytes already in its pipe.
async fn spliced_both(
    a: TcpStream,
    b: TcpStream,
    p: Pipe,
    q: Pipe,
    pending: (usize, usize),
    idle: Duration,
) {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let failed = both(
        spliced(&a, &b, &p, pending.0, idle, start, &last),
        spliced(&b, &a, &q, pending.1, idle, start, &last),
    )
    .await;
    if failed {
        reset(a);
        reset(b);
    }
}

/// Runs both directions to their end; whether one failed (the other is dropped then).
async fn both(
    up: impl Future<Output = std::io::Result<()>>,
    down: impl Future<Output = std::io::Result<()>>,
) -> bool {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        tokio::select! {
            r = &mut up, if !up_done => {
                if r.is_err() {
                    return true;
                }
                up_done = true;
            }
            r = &mut down, if !down_done => {
                if r.is_err() {
                    return true;
                }
                down_done = true;
            }
        }
        if up_done && down_done {
            return false;
        }
    }
}

/// How long a read may still wait: until `idle` has passed with nothing moved
/// either way; `None` when it has.
fn read_wait(idle_ms: u64, start: Instant, last: &AtomicU64) -> Option<Duration> {
    let quiet = since(start).saturating_sub(last.load(Ordering::Relaxed));
    (quiet < idle_ms).then(|| Duration::from_millis((idle_ms - quiet).max(1)))
}

fn timed_out() -> std::io::Error {
    std::io::ErrorKind::TimedOut.into()
}

/// `from` into `to` through `pipe` (holding `held` bytes already) until `from`'s
/// end (then `to` is shut down for writing) or an error. `last` is the time of the
/// last bytes either way: a read waits as long as one direction or the other
/// moved within `idle`; a write may wait `idle` for room. Stopped (dropped) at an
/// await, nothing is lost: unread bytes are in `from`, unsent ones in the pipe.
async fn spliced(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    mut held: usize,
    idle: Duration,
    start: Instant,
    last: &AtomicU64,
) -> std::io::Result<()> {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        while held > 0 {
            match tokio::time::timeout(idle, to.writable()).await {
                Ok(r) => r?,
                Err(_) => return Err(timed_out()),
            }
            match to.try_io(Interest::WRITABLE, || pipe.drain(to, held)) {
                Ok(m) => held -= m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            last.store(since(start), Ordering::Relaxed);
        }
        let left = read_wait(idle_ms, start, last).ok_or_else(timed_out)?;
        match tokio::time::timeout(left, from.readable()).await {
            Ok(r) => r?,
            // The other direction may have moved meanwhile: looked at again above.
            Err(_) => continue,
        }
        let n = match from.try_io(Interest::READABLE, || pipe.fill(from)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        last.store(since(start), Ordering::Relaxed);
        if n == 0 {
            // Already shut down before a handover: not an error.
            return match socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
                r => r,
            };
        }
        held = n;
    }
}

/// Milliseconds since `start`.
fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Copies `from` into `to` until EOF (then shuts `to` down for writing) or an
/// error. `last` is the time of the last bytes either way: a read waits as long as
/// one direction or the other moved within `idle`; a write may wait `idle`.
async fn copied(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    idle: Duration,
    start: Instant,
    last: &AtomicU64,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 16 * 1024];
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let left = read_wait(idle_ms, start, last).ok_or_else(timed_out)?;
        let n = match tokio::time::timeout(left, from.read(&mut chunk)).await {
            Ok(r) => r?,
            // The other direction may have moved meanwhile: looked at again above.
            Err(_) => continue,
        };
        last.store(since(start), Ordering::Relaxed);
        if n == 0 {
            return to.shutdown().await;
        }
        match tokio::time::timeout(idle, to.write_all(&chunk[..n])).await {
            Ok(r) => r?,
            Err(_) => return Err(timed_out()),
        }
        last.store(since(start), Ordering::Relaxed);
    }
}
