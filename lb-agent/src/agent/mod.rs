//! `lb-agent run`: the daemon. One owner task holds the config, the data plane and
//! the health of every backend, and is the only writer of the maps; health checkers,
//! the control socket, the HTTP endpoints and signals talk to it over channels.
//!
//! Start: load the program with every map pinned under `pin_path` (re-adopting maps
//! an earlier agent left, and the health they recorded), apply the config, then
//! attach through pinned links (an earlier link gets the new program atomically).
//! Stop (SIGTERM, SIGINT, a crash, `kill -9`): the pins stay and forwarding goes on.
//! A restart (`systemctl restart`, `lb-agent restart`) keeps the VIP: the next
//! agent resumes as VRRP master before any backup notices (`leave.rs`).
//! SIGHUP or `lb-agent reload`: the config is re-read, checked, and applied whole or
//! not at all.

pub(crate) mod backoff;
mod chart;
mod control;
mod core;
mod error;
mod forwarding;
mod http;
mod leave;
mod metrics;
mod page;
pub mod protocol;
mod reload;
mod routed;
pub mod snapshot;
mod sweep;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use control::ask;
pub use error::{AdminError, AgentError, ReloadError, chain};
use leave::Leave;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};

use self::{
    core::{Agent, Parts, label},
    protocol::{Request, Response},
};
use crate::{
    config::{self, AdminState, Config, LogFormat},
    dataplane::{
        AdoptedBackend, Attached, BackendState, Capacities, Dataplane, PinLayout, PinnedMaps,
        SocketScope, cgroup2_root, detach_others, detach_sockets,
    },
    logging,
    status::{InterfaceStatus, SocketLbStatus, Status},
    tasks::Tasks,
    vrrp::{Record, Taking, Vrrp, resume},
};

/// A request from the control socket, with where to send the answer.
pub(crate) type Ask = (Request, oneshot::Sender<Response>);

/// How often counters, rates and the published status are refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the stop waits for the agent's tasks once they are cancelled (they end at
/// their next await; a check or a control session in a blocking section may take
/// longer).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config_path: &Path, log_format: Option<LogFormat>) -> Result<(), AgentError> {
    let config = config::load(config_path).map_err(AgentError::Config)?;
    // The log as the command line (which wins) or the config asks; a no-op where the
    // caller installed one already.
    logging::init(
        log_format.unwrap_or(config.agent.log_format),
        log_format.is_some(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| AgentError::Io {
            what: "starting the runtime",
            path: config_path.to_path_buf(),
            source,
        })?;
    runtime.block_on(serve(config, config_path))
}

async fn serve(config: Config, config_path: &Path) -> Result<(), AgentError> {
    // Before touching any map: another agent of this config must not be running.
    control::ensure_free(&config.agent.control_socket).await?;
    let caps = Capacities {
        flow_table_size: config.agent.flow_table_size,
        snat_ports: config.agent.snat_ports.clone(),
        ..Capacities::default()
    };
    // NAT source ports beside the node's own: they must not meet.
    if let Some(why) = config::capacity::snat_conflict(&config) {
        return Err(AgentError::Refused(why));
    }
    // A stock host does not forward: turn it on where the data plane needs it.
    for change in forwarding::prepare(
        &config.agent.interfaces,
        forwarding::Families::of(&config),
        config.agent.manage_forwarding,
    )? {
        tracing::info!("sysctl {change}");
    }
    // Where the socket programs go, before anything is loaded: a cgroup that cannot
    // work stops the start with nothing changed.
    let socket_cgroup = match &config.agent.socket_lb {
        Some(s) => Some(match &s.cgroup {
            Some(c) => c.clone(),
            None => cgroup2_root()?,
        }),
        None => None,
    };
    let pins = PinLayout::new(&config.agent.pin_path);
    let scope = config.agent.socket_lb.as_ref().map(|s| s.scope);
    // A restart's record: an instance that was master a moment ago resumes now,
    // before the data plane is loaded (the pinned one forwards meanwhile), so the
    // backups hear its adverts within their Master_Down_Interval.
    let (status_tx, status_rx) = watch::channel(Arc::new(Status::default()));
    let restart_record = resume::path(&config.agent.control_socket);
    let record = Record::take(&restart_record);
    let resuming = record.as_ref().is_some_and(|r| {
        config
            .vrrp
            .iter()
            .any(|c| r.resumable(c).is_some_and(resume::Left::was_master))
    });
    if let Some(r) = &record {
        tracing::info!(
            "restart record of {} ms ago: {}",
            r.age().map_or(-1, |a| a.as_millis() as i64),
            if resuming {
                "resuming as master without a VRRP state change"
            } else {
                "too old, or nothing was master: starting as after a stop"
            }
        );
    }
    // Signals from here on: a SIGTERM while the data plane loads ends the start
    // in order (a resumed master hands over) rather than by the default action.
    let sig = |kind| {
        signal(kind).map_err(|source| AgentError::Io {
            what: "installing a signal handler",
            path: config_path.to_path_buf(),
            source,
        })
    };
    let (mut term, mut int, mut hup) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
    );
    // Every task of the agent, ended together at the stop (`Tasks::shutdown`).
    let tasks = Tasks::new();
    // Instances about to take their addresses ask the owner to serve them first.
    let (taking_tx, mut taking) = mpsc::channel::<Taking>(8);
    let mut running = resuming.then(|| {
        Vrrp::start(
            &config.vrrp,
            status_rx.clone(),
            record.as_ref(),
            taking_tx.clone(),
            &tasks,
        )
    });
    // From here, a start that fails hands over what VRRP took (a resumed master)
    // instead of leaving its addresses behind.
    macro_rules! started {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    if let Some(v) = running.take() {
                        tracing::error!("the start failed with VRRP running: leaving VRRP first");
                        v.stop().await;
                    }
                    return Err(e.into());
                }
            }
        };
    }
    // Loading (the verifier) and adopting take seconds in a debug build: off the
    // runtime's worker, so a resumed master's adverts (a task on the same worker,
    // possibly in its not-stealable next slot) keep their 100 ms pace meanwhile.
    let (dp, adopted) = started!(tokio::task::block_in_place(|| {
        Dataplane::load_pinned(caps, &pins, scope, &config.agent.timeouts)
    }));
    let known = if let Some(backends) = &adopted {
        let known = known_health(backends, &config);
        tracing::info!(
            "adopted the maps pinned under {} (flows, NAT bindings and counters kept; \
             health of {} backends taken from them)",
            pins.dir.display(),
            known.len()
        );
        known
    } else {
        tracing::info!("pinned new maps under {}", pins.dir.display());
        HashMap::new()
    };
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let mut agent = Agent::new(Parts {
        config: config.clone(),
        config_path: config_path.to_path_buf(),
        dp,
        known,
        reports: report_tx,
        tasks: tasks.clone(),
        adopted: adopted.is_some(),
        interfaces: Vec::new(),
        status: status_tx,
        pins: pins.clone(),
    });
    if let Some(v) = &running {
        agent.vrrp = v.watchers();
    }
    agent.sweep = Some(started!(sweep::SweepThread::start(&pins)));
    for c in config::capacity::nat(&config) {
        tracing::info!("capacity of VIP {}", c.describe());
    }
    // The programs' own log lines: forwarded from now on, on or off as the config says.
    match agent.dp.take_log() {
        Ok(log) => {
            tasks.spawn("dataplane log", log.forward());
        }
        Err(e) => tracing::warn!("the programs' log lines cannot be read: {}", chain(&e)),
    }
    started!(agent.dp.set_log(config.agent.dataplane_log));
    started!(agent.reconcile_checks());
    // Services before the program sees traffic (on a restart: the same content, so
    // nothing is rewritten).
    started!(tokio::task::block_in_place(|| agent.apply()));
    for iface in &config.agent.interfaces {
        let attached = tokio::task::block_in_place(|| {
            agent.dp.attach_pinned(iface, config.agent.xdp_mode, &pins)
        });
        let mode = match started!(attached) {
            Attached::New(m) => {
                let m = format!("{m:?}").to_lowercase();
                tracing::info!("{iface}: XDP attached in {m} mode, links pinned");
                m
            }
            Attached::Replaced => {
                tracing::info!(
                    "{iface}: pinned link now runs the new program (replaced atomically)"
                );
                "replaced".to_string()
            }
        };
        agent.interfaces.push(InterfaceStatus {
            name: iface.clone(),
            mode,
        });
    }
    // The proxy path's listeners, with the data plane's health.
    started!(agent.start_routed());
    for gone in started!(detach_others(&pins, &config.agent.interfaces)) {
        tracing::info!("{gone}: no longer configured, detached");
    }
    // Flow sync before VRRP: a node learns its peers' flows before it can become
    // master (it asks them for everything at once).
    if let Some(s) = &config.agent.sync {
        agent.sync = Some(started!(crate::sync::FlowSync::start(s, &pins)));
        tracing::info!(
            "flow sync on UDP port {} with {}",
            s.port,
            s.peers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    agent.sockets = started!(tokio::task::block_in_place(|| {
        attach_sockets(&mut agent.dp, &config, socket_cgroup, &pins)
    }));
    // Every link runs the new program: an upgrade of the pinned maps completes.
    match tokio::task::block_in_place(|| agent.dp.finish_upgrade()) {
        Some(Ok(summary)) => tracing::info!("{summary}"),
        Some(Err(e)) => tracing::warn!(
            "finishing the upgrade of the pinned maps: {} (the next start finishes it)",
            chain(&e)
        ),
        None => {}
    }
    agent.publish();

    // VRRP after the data plane: a node takes the VIP only once it can serve it.
    if running.is_none() {
        running = Some(Vrrp::start(
            &config.vrrp,
            status_rx.clone(),
            None,
            taking_tx.clone(),
            &tasks,
        ));
    }
    agent.vrrp = running.as_ref().map(Vrrp::watchers).unwrap_or_default();
    let mut roles = role_changes(&agent.vrrp, &tasks);

    let (ask_tx, mut asks) = mpsc::channel::<Ask>(16);
    started!(control::serve(&config.agent.control_socket, ask_tx, &tasks).await);
    started!(
        http::serve(
            config.agent.api_listen,
            config.agent.stats_auth.clone(),
            status_rx,
            &tasks,
        )
        .await
    );
    let Some(vrrp) = running.take() else {
        return Err(AgentError::Refused("VRRP did not start".into()));
    };
    let mut tick = tokio::time::interval(REFRESH);
    let leaving: Leave;
    // Role changes between the first apply and the watchers above.
    agent.follow_vrrp_roles();
    tracing::info!(
        "running: {} services, control socket {}, http {}",
        config.vips.len(),
        config.agent.control_socket.display(),
        config.agent.api_listen
    );
    loop {
        tokio::select! {
            // A health change is published at once (`/ready` follows it).
            Some(r) = reports.recv() => {
                if agent.on_report(r) {
                    agent.publish();
                }
            }
            Some((req, reply)) = asks.recv() => {
                match req {
                    Request::Restart => {
                        let _ = reply.send(Response::Done {
                            message: "leaving for a restart: VRRP masters keep the VIP for the next agent".into(),
                        });
                        tracing::info!("lb-agent restart: leaving for a restart");
                        // Let the control session write the answer before we go.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        leaving = Leave::Restart;
                        break;
                    }
                    // A full read of the flow table: on a thread of its own, over
                    // the pinned maps, so the owner task stays free.
                    Request::Flows { vip, backend, limit } => {
                        let (pins, config) = (pins.clone(), agent.config.clone());
                        tokio::task::spawn_blocking(move || {
                            let answer = PinnedMaps::open(&pins)
                                .map_err(|e| chain(&e))
                                .and_then(|mut maps| {
                                    snapshot::flow_list(
                                        &mut maps,
                                        Some(&config),
                                        vip.as_deref(),
                                        backend.as_deref(),
                                        limit,
                                    )
                                });
                            let _ = reply.send(match answer {
                                Ok(flows) => Response::Flows { flows },
                                Err(message) => Response::Error { message },
                            });
                        });
                        continue;
                    }
                    Request::Handover { undo } => {
                        vrrp.hold(!undo).await;
                        let message = if config.vrrp.is_empty() {
                            "no VRRP instance to hand over".to_string()
                        } else if undo {
                            "back in the VRRP election".to_string()
                        } else {
                            "handed over: masters sent priority 0; held out of the election until `lb-agent handover --undo` or a restart".to_string()
                        };
                        let _ = reply.send(Response::Done { message });
                        continue;
                    }
                    _ => {}
                }
                let changes = !matches!(req, Request::Status | Request::Flows { .. });
                let answer = agent.handle(req);
                if changes {
                    agent.publish();
                }
                let _ = reply.send(answer);
            }
            // An instance about to take its addresses: its DSR services leave
            // standby first.
            Some(t) = taking.recv() => {
                agent.taking(&t.instance, &t.addresses);
                let _ = t.done.send(());
            }
            // A VRRP state change too: DSR services follow it, and /metrics, /stats
            // and the trackers see it without waiting for the tick.
            Some(()) = roles.recv() => {
                agent.follow_vrrp_roles();
                agent.publish();
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading {}", config_path.display());
                let _ = agent.reload();
                agent.publish();
            }
            _ = tick.tick() => {
                agent.follow_local_addresses();
                agent.publish_refresh();
            }
            _ = term.recv() => {
                let (how, why) = leave::on_sigterm(&config.agent);
                tracing::info!("{why}: {}", match how {
                    Leave::Restart => "a restart",
                    Leave::Handover => "a stop",
                });
                leaving = how;
                break;
            }
            _ = int.recv() => {
                leaving = Leave::Handover;
                break;
            }
        }
    }
    match leaving {
        Leave::Handover => {
            if !config.vrrp.is_empty() {
                tracing::info!(
                    "leaving VRRP: masters hand over (priority 0) and remove their addresses"
                );
            }
            vrrp.stop().await;
        }
        Leave::Restart => {
            let record = vrrp.leave().await;
            if !config.vrrp.is_empty() {
                match record.write(&restart_record) {
                    Ok(()) => tracing::info!(
                        "leaving VRRP for a restart: masters advertised once more (no priority 0) and removed their addresses; the next agent resumes within the backups' Master_Down_Interval ({})",
                        restart_record.display()
                    ),
                    Err(e) => tracing::error!("{e}: the next agent starts as after a stop"),
                }
            }
        }
    }
    // Proxied connections go on in a process of their own until they end.
    let handed = routed::hand_over(std::mem::take(&mut agent.routed)).await;
    if !handed.is_empty() {
        let n = handed.len();
        match crate::proxy::handover::spawn_holder(handed) {
            Ok(pid) => tracing::info!(
                "{n} proxied connection(s) go on in process {pid} (lb-agent hold-connections) until they end"
            ),
            Err(e) => {
                tracing::error!("{n} proxied connection(s) could not be handed over, closed: {e}");
            }
        }
    }
    agent.sweep = None;
    // Everything else (control socket, HTTP, health checkers, trackers) ends here.
    if let Err(n) = tasks.shutdown(SHUTDOWN_DEADLINE).await {
        tracing::warn!(
            "{n} task(s) still running {} s into the stop: leaving them to the exit",
            SHUTDOWN_DEADLINE.as_secs()
        );
    }
    let _ = std::fs::remove_file(&config.agent.control_socket);
    tracing::info!(
        "stopping; the data plane keeps forwarding from the objects pinned under {}",
        pins.dir.display()
    );
    Ok(())
}

/// A message whenever a VRRP instance changes state (DSR services follow whether
/// this node holds their VIP).
fn role_changes(
    watchers: &[watch::Receiver<crate::vrrp::InstanceStatus>],
    tasks: &Tasks,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(8);
    for w in watchers {
        let (mut w, tx) = (w.clone(), tx.clone());
        tasks.spawn("vrrp role changes", async move {
            let mut last = w.borrow().state.clone();
            while w.changed().await.is_ok() {
                let now = w.borrow().state.clone();
                if now != last {
                    last = now;
                    if tx.send(()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    rx
}

/// Attaches the socket programs where the config says (the cgroup v2 root by
/// default), or detaches them when `socket_lb = false`.
fn attach_sockets(
    dp: &mut Dataplane,
    config: &Config,
    cgroup: Option<PathBuf>,
    pins: &PinLayout,
) -> Result<Option<SocketLbStatus>, AgentError> {
    let (Some(s), Some(cgroup)) = (&config.agent.socket_lb, cgroup) else {
        if detach_sockets(pins)? {
            tracing::info!("socket_lb = false: socket programs detached");
        }
        return Ok(None);
    };
    dp.attach_sockets_pinned(&cgroup, pins)?;
    let namespaces = match s.scope {
        SocketScope::ThisNamespace => "own",
        SocketScope::Every => "all",
    };
    tracing::info!(
        "socket programs attached to cgroup {} (connects to a VIP from this node's {} \
         sockets are balanced)",
        cgroup.display(),
        match s.scope {
            SocketScope::ThisNamespace => "network namespace's",
            SocketScope::Every => "every network namespace's",
        }
    );
    Ok(Some(SocketLbStatus {
        cgroup: cgroup.display().to_string(),
        namespaces: namespaces.into(),
    }))
}

/// Health recorded in adopted maps, for backends the config still has: up if the
/// data plane had them up; down if it had them down while the config enables them.
fn known_health(backends: &[AdoptedBackend], config: &Config) -> HashMap<core::BackendKey, bool> {
    let mut known = HashMap::new();
    for b in backends {
        let Some(v) = config
            .vips
            .iter()
            .find(|v| v.address == b.vip && v.port == b.port && v.protocol == b.protocol)
        else {
            continue;
        };
        let Some(c) = v
            .backends
            .iter()
            .find(|c| c.address == b.addr && c.port == b.backend_port)
        else {
            continue;
        };
        let up = match (b.state, c.state) {
            (BackendState::Up, _) => true,
            (BackendState::Down, AdminState::Enabled) => false,
            _ => continue,
        };
        known.insert(core::key(v, c), up);
    }
    known
}

impl Agent {
    /// Refreshes counters and rates and publishes the picture (on a change).
    fn publish(&mut self) {
        self.publish_with(false);
    }

    /// The once-a-second refresh: publishes, and samples the history when due.
    fn publish_refresh(&mut self) {
        self.publish_with(true);
    }

    fn publish_with(&mut self, refresh: bool) {
        match self.snapshot(true) {
            Ok(mut s) => {
                let now = std::time::Instant::now();
                if refresh && self.history.due(now) {
                    self.history.sample(&s, now);
                } else {
                    self.history.observe(&s);
                }
                s.history = Some(self.history.view(&s));
                let _ = self.status.send(Arc::new(s));
            }
            Err(e) => tracing::error!("reading the maps failed: {}", chain(&e)),
        }
    }

    fn handle(&mut self, req: Request) -> Response {
        let result = match req {
            Request::Status => match self.snapshot(false) {
                Ok(mut s) => {
                    s.history = Some(self.history.view(&s));
                    return Response::Status {
                        status: Box::new(s),
                    };
                }
                Err(e) => Err(chain(&e)),
            },
            Request::Drain { vip, backend } => self
                .set_admin(&vip, &backend, AdminState::Drain)
                .map_err(|e| e.to_string()),
            Request::Enable { vip, backend } => self
                .set_admin(&vip, &backend, AdminState::Enabled)
                .map_err(|e| e.to_string()),
            Request::Reload => self
                .reload()
                .map(|a| a.to_string())
                .map_err(|e| e.to_string()),
            // Answered by the serve loop: it owns the VRRP instances, and reads the
            // flow table off this task.
            Request::Restart | Request::Handover { .. } | Request::Flows { .. } => {
                Err("handled by the serve loop".into())
            }
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(message) => Response::Error { message },
        }
    }

    /// `drain` / `enable` of a backend (`ADDR` or `ADDR:PORT`) of VIP `vip`.
    fn set_admin(
        &mut self,
        vip: &str,
        backend: &str,
        state: AdminState,
    ) -> Result<String, AdminError> {
        let v = self
            .config
            .vips
            .iter()
            .find(|v| v.name == vip)
            .ok_or_else(|| AdminError::NoVip {
                vip: vip.to_string(),
                known: self.config.vips.iter().map(|v| v.name.clone()).collect(),
            })?;
        let matches: Vec<_> = v
            .backends
            .iter()
            .filter(|b| {
                let full = crate::status::host_port(&b.address.to_string(), b.port);
                backend == full || backend == b.address.to_string()
            })
            .collect();
        let b = match matches.as_slice() {
            [b] => (*b).clone(),
            [] => {
                return Err(AdminError::NoBackend {
                    vip: vip.to_string(),
                    backend: backend.to_string(),
                    has: v
                        .backends
                        .iter()
                        .map(|b| crate::status::host_port(&b.address.to_string(), b.port))
                        .collect(),
                });
            }
            _ => {
                return Err(AdminError::Ambiguous {
                    vip: vip.to_string(),
                    backend: backend.to_string(),
                });
            }
        };
        let k = core::key(v, &b);
        let previous = self.overrides.insert(k.clone(), state);
        if let Err(source) = self.apply_config() {
            match previous {
                Some(p) => self.overrides.insert(k, p),
                None => self.overrides.remove(&k),
            };
            let rollback = self.apply_config().err().map(Box::new);
            return Err(AdminError::Apply {
                source: Box::new(source),
                rollback,
            });
        }
        let word = match state {
            AdminState::Drain => "draining (keeps its flows, gets no new ones)",
            _ => "enabled",
        };
        tracing::info!("backend {}: {word} by the operator", label(&k));
        Ok(format!("backend {}: {word}", label(&k)))
    }
}
