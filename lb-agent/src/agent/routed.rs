//! The routed VIPs' listeners (the proxy path): bound at start, each serving with
//! the rules of its config and the pools' backends that are up, which the owner
//! task sends again whenever health, drain or a reload changes them. When the
//! agent stops, their connections are handed to a holder process (see
//! `proxy::handover`).

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use socket2::{Domain, Socket, Type};
use tokio::{sync::watch, task::JoinHandle};

use super::AgentError;
use crate::{
    config::{Config, routed::RoutedVip},
    dataplane::BackendState,
    proxy::{
        handover::{self, Handed, HandoverControl},
        names::Routes,
        serve::{Limits, Otherwise, Pool, RouteBy, Router, Stats, serve},
    },
    status::RoutedStatus,
    tasks::{CancelOnDrop, Tasks},
};

/// One routed VIP's listener.
pub struct Listener {
    pub config: RoutedVip,
    stats: Arc<Stats>,
    routes: watch::Sender<Arc<Router>>,
    /// The accept loop, on a group of its own: ended when the listener is dropped
    /// (a reload without it) or at a stop, before its connections are handed over.
    task: JoinHandle<()>,
    tasks: CancelOnDrop,
    handover: HandoverControl,
}

/// Binds `vip`'s address and port even before the address is this node's (a VRRP
/// backup: `IP_FREEBIND`), and serves it with `router` on a child of `tasks`.
pub fn listen(vip: &RoutedVip, router: Router, tasks: &Tasks) -> Result<Listener, AgentError> {
    let at = SocketAddr::new(vip.address, vip.port);
    let err = |what: &'static str| {
        let name = vip.name.clone();
        move |source: std::io::Error| AgentError::Routed {
            vip: name,
            what,
            at,
            source,
        }
    };
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, None).map_err(err("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(err("SO_REUSEADDR"))?;
    if at.is_ipv4() {
        socket.set_freebind_v4(true).map_err(err("IP_FREEBIND"))?;
    } else {
        socket.set_freebind_v6(true).map_err(err("IPV6_FREEBIND"))?;
    }
    socket.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
    socket.bind(&at.into()).map_err(err("bind"))?;
    socket.listen(1024).map_err(err("listen"))?;
    let listener = tokio::net::TcpListener::from_std(socket.into())
        .map_err(err("registering with the runtime"))?;
    let stats = Arc::new(Stats::new(vip.pools.len()));
    let (routes, rx) = watch::channel(Arc::new(router));
    let limits = Limits {
        inspect: vip.inspect_timeout,
        connect: vip.connect_timeout,
        idle: vip.idle_timeout,
        first_bytes: crate::config::defaults::ROUTED_FIRST_BYTES,
        max_connections: vip.max_connections as usize,
    };
    let (handover, connections) = handover::channel();
    let tasks = tasks.child();
    let task = tasks.spawn(
        "routed listener",
        serve(listener, rx, limits, stats.clone(), Some(connections)),
    );
    Ok(Listener {
        config: vip.clone(),
        stats,
        routes,
        task,
        tasks: CancelOnDrop(tasks),
        handover,
    })
}

/// The router of `vip` for backend states `state(service, backend index)` (the
/// states the data plane would get: health, drain, backups).
pub fn router(
    config: &Config,
    vip: &RoutedVip,
    serving: impl Fn(&crate::config::VipConfig) -> Vec<BackendState>,
) -> Result<Router, String> {
    let mut pools = Vec::new();
    for pool in &vip.pools {
        let service = config
            .vips
            .iter()
            .find(|v| v.name == pool.service)
            .ok_or_else(|| format!("pool {} has no service", pool.service))?;
        let up: Vec<(SocketAddr, u32)> = service
            .backends
            .iter()
            .zip(serving(service))
            .filter(|(_, s)| *s == BackendState::Up)
            .map(|(b, _)| (SocketAddr::new(b.address, b.port), b.weight))
            .collect();
        pools.push(Pool::new(&pool.name, up, pool.send_proxy)?);
    }
    let rules = vip
        .pools
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.names.iter().map(move |n| (n.clone(), i)));
    Ok(Router {
        by: vip.by,
        routes: Routes::new(rules)?,
        otherwise: vip.otherwise.map_or(Otherwise::Reset, Otherwise::Pool),
        pools,
    })
}

impl Listener {
    /// Serves later connections with `router`.
    pub fn update(&self, router: Router) {
        self.routes.send_replace(Arc::new(router));
    }

    /// What `lb-agent status` and `/metrics` show of it.
    pub fn status(&self) -> RoutedStatus {
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        RoutedStatus {
            name: self.config.name.clone(),
            address: self.config.address.to_string(),
            port: self.config.port,
            route_by: match self.config.by {
                RouteBy::Sni => "sni",
                RouteBy::Host => "host",
            }
            .into(),
            active: n(&s.active),
            connections: [
                ("accepted", n(&s.accepted)),
                ("no_match_reset", n(&s.no_match_reset)),
                ("invalid", n(&s.invalid)),
                ("inspect_timeout", n(&s.inspect_timeout)),
                ("no_backend", n(&s.no_backend)),
                ("connect_failed", n(&s.connect_failed)),
                ("over_limit", n(&s.over_limit)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            pools: self
                .config
                .pools
                .iter()
                .zip(&s.routed)
                .map(|(p, c)| (p.name.clone(), n(c)))
                .collect(),
        }
    }
}

/// How long connections still reading their first bytes (or connecting) at a
/// stop are waited for before the handover goes without them.
const HANDOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Stops accepting (the listening sockets close, for the next agent to bind) and
/// takes every relaying connection out of its relay: what a holder process goes on
/// with. A connection still inspecting or connecting is waited for up to
/// `HANDOVER_GRACE`, then left to close with this process.
pub async fn hand_over(listeners: Vec<Listener>) -> Vec<Handed> {
    let mut out = Vec::new();
    let mut listeners = listeners;
    for l in &mut listeners {
        l.tasks.0.cancel();
        let _ = (&mut l.task).await;
        l.handover.request();
    }
    let deadline = tokio::time::Instant::now() + HANDOVER_GRACE;
    loop {
        for l in &mut listeners {
            while let Ok(h) = l.handover.handed.try_recv() {
                out.push(h);
            }
        }
        let busy = listeners
            .iter()
            .any(|l| l.stats.active.load(Ordering::Relaxed) > 0);
        if !busy || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for l in &mut listeners {
        while let Ok(h) = l.handover.handed.try_recv() {
            out.push(h);
        }
    }
    out
}
