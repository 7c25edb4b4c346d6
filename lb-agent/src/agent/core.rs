//! The agent's state and the only code that writes the maps: the config, the health
//! of every backend, operator overrides (drain/enable), and applying their
//! combination to the data plane.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};

use super::{AgentError, error::chain};
use crate::{
    config::{AdminState, BackendConfig, CheckConfig, CheckKind, Config, VipConfig},
    dataplane::{BackendState, Dataplane, DownBackend, PinLayout, Traffic, close_balanced_sockets},
    health::{self, HealthState, Outcome, Report},
    status::{InterfaceStatus, ReloadStatus, SocketLbStatus, Status, host_port, unix_now},
    tasks::{CancelOnDrop, Tasks},
};

/// A backend of a VIP, as the agent keys its health checks, overrides and states.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub vip: String,
    pub address: IpAddr,
    pub port: u16,
}

/// A report tagged with the checker's generation (reports of a replaced checker are
/// ignored).
pub type Tagged = Report<(BackendKey, u64)>;

/// A running checker and what it found.
pub(super) struct Checked {
    /// What it was started for: a change restarts it.
    pub(super) what: (CheckConfig, BackendConfig),
    pub(super) generation: u64,
    pub(super) up: bool,
    pub(super) last: Option<(Outcome, u64)>,
    pub(super) since_unix: u64,
    /// Its checker's task: ends when this entry is replaced or removed.
    _checker: CancelOnDrop,
}

/// Everything the owner task holds.
pub struct Agent {
    pub(super) config: Config,
    pub(super) config_path: PathBuf,
    pub(super) dp: Dataplane,
    pub(super) checks: HashMap<BackendKey, Checked>,
    /// Admin states set with `drain`/`enable`, over the config's (kept across reloads
    /// while the backend exists).
    pub(super) overrides: HashMap<BackendKey, AdminState>,
    /// Health known before a restart (from the adopted maps), used once per backend.
    pub(super) known: HashMap<BackendKey, bool>,
    pub(super) reports: mpsc::UnboundedSender<Tagged>,
    /// The agent's tasks (health checkers and routed listeners start on children).
    pub(super) tasks: Tasks,
    next_generation: u64,
    pub(super) started: Instant,
    pub(super) adopted: bool,
    pub(super) interfaces: Vec<InterfaceStatus>,
    pub(super) last_reload: Option<ReloadStatus>,
    /// Last counter reading, for rates.
    pub(super) previous: Option<(Instant, HashMap<String, Traffic>, Vec<u64>)>,
    pub(super) status: watch::Sender<Arc<Status>>,
    /// VRRP instances' published states.
    pub(super) vrrp: Vec<watch::Receiver<crate::vrrp::InstanceStatus>>,
    /// Where the socket programs are attached, when they are.
    pub(super) sockets: Option<SocketLbStatus>,
    /// Where the maps are pinned (the socket closer opens `SOCK_REVNAT` there).
    pub(super) pins: PinLayout,
    /// Each backend's data plane state at the last apply: a change to down closes
    /// this node's sockets balanced to it.
    applied: HashMap<BackendKey, BackendState>,
    /// Local backends as last logged.
    local_logged: BTreeSet<IpAddr>,
    /// VRRP-managed VIPs this node did not hold at the last apply.
    standby: BTreeSet<IpAddr>,
    /// Addresses an instance is taking (it asked before adding them), with the
    /// instance's index and its transition count then: served until its status moves
    /// on (to MASTER, which serves them anyway, or elsewhere).
    taking: BTreeMap<IpAddr, (usize, u64)>,
    /// The sweep of expired flows and bindings, once started.
    pub(super) sweep: Option<super::sweep::SweepThread>,
    /// Flow sync with the other LB nodes, when configured.
    pub(super) sync: Option<crate::sync::FlowSync>,
    /// The routed VIPs' listeners, once started.
    pub(super) routed: Vec<super::routed::Listener>,
    /// The last minutes of each backend and VRRP instance (the status page's charts).
    pub(super) history: crate::history::Recorder,
}

/// Key of a backend of `vip`.
pub fn key(vip: &VipConfig, b: &BackendConfig) -> BackendKey {
    BackendKey {
        vip: vip.name.clone(),
        address: b.address,
        port: b.port,
    }
}

/// `vip/addr:port` as logs and messages show a backend.
pub fn label(k: &BackendKey) -> String {
    format!("{}/{}", k.vip, host_port(&k.address.to_string(), k.port))
}

pub(super) struct Parts {
    pub config: Config,
    pub config_path: PathBuf,
    pub dp: Dataplane,
    pub known: HashMap<BackendKey, bool>,
    pub reports: mpsc::UnboundedSender<Tagged>,
    pub tasks: Tasks,
    pub adopted: bool,
    pub interfaces: Vec<InterfaceStatus>,
    pub status: watch::Sender<Arc<Status>>,
    pub pins: PinLayout,
}

impl Agent {
    pub(super) fn new(p: Parts) -> Self {
        Self {
            config: p.config,
            config_path: p.config_path,
            dp: p.dp,
            checks: HashMap::new(),
            overrides: HashMap::new(),
            known: p.known,
            reports: p.reports,
            tasks: p.tasks,
            next_generation: 0,
            started: Instant::now(),
            adopted: p.adopted,
            interfaces: p.interfaces,
            last_reload: None,
            previous: None,
            status: p.status,
            vrrp: Vec::new(),
            sockets: None,
            pins: p.pins,
            applied: HashMap::new(),
            local_logged: BTreeSet::new(),
            standby: BTreeSet::new(),
            taking: BTreeMap::new(),
            sweep: None,
            sync: None,
            routed: Vec::new(),
            history: crate::history::Recorder::default(),
        }
    }

    /// The admin state in force for a backend.
    pub(super) fn admin(&self, vip: &VipConfig, b: &BackendConfig) -> AdminState {
        self.overrides.get(&key(vip, b)).copied().unwrap_or(b.state)
    }

    /// Health as the data plane should see it: checked backends by their checker,
    /// unchecked ones (type none, disabled) as up.
    pub(super) fn healthy(&self, vip: &VipConfig, b: &BackendConfig) -> bool {
        self.checks.get(&key(vip, b)).is_none_or(|c| c.up)
    }

    /// Writes config + health + overrides into the maps (all checked first). A
    /// backend that went down gets this node's sockets balanced to it closed.
    pub(super) fn apply(&mut self) -> Result<(), AgentError> {
        let standby = self.standby_vips();
        let mut specs = self.config.services_with(|v, b| self.effective(v, b));
        for s in &mut specs {
            s.standby = standby.contains(&s.vip);
        }
        // The proxy's pools follow health even should a map write fail.
        self.update_routed();
        self.dp.apply(&specs)?;
        self.standby = standby;
        self.log_local_backends();
        let mut states = HashMap::new();
        let mut down = Vec::new();
        for v in &self.config.vips {
            for (b, now) in v.backends.iter().zip(self.serving(v)) {
                let k = key(v, b);
                let before = self.applied.get(&k).copied();
                if now == BackendState::Down && before.is_some_and(|s| s != BackendState::Down) {
                    down.push(DownBackend {
                        addr: b.address,
                        port: b.port,
                        protocol: v.protocol,
                    });
                }
                if b.backup {
                    log_backup_change(&v.name, &k, before, now);
                }
                states.insert(k, now);
            }
        }
        self.applied = states;
        if self.sockets.is_some() && !down.is_empty() {
            let pins = self.pins.clone();
            tokio::task::spawn_blocking(move || match close_balanced_sockets(&pins, &down) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "closed {n} local sockets balanced to backends now down, so their \
                     owners reconnect"
                ),
                Err(e) => tracing::warn!(
                    "closing local sockets of down backends failed: {}",
                    chain(&e)
                ),
            });
        }
        Ok(())
    }

    /// VIPs of this agent's VRRP instances that are not master now (all of them
    /// before VRRP runs): their DSR services leave new flows to the local stack.
    fn standby_vips(&self) -> BTreeSet<IpAddr> {
        self.config
            .vrrp
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                self.vrrp
                    .get(*i)
                    .is_none_or(|w| w.borrow().state != "MASTER")
            })
            .flat_map(|(_, c)| c.addresses.iter().map(|(a, _)| *a))
            .filter(|a| !self.taking.contains_key(a))
            .collect()
    }

    /// An instance is about to add `addresses`: serve them first (DSR services
    /// leave standby), so the packets its gratuitous ARPs bring are forwarded.
    pub(super) fn taking(&mut self, instance: &str, addresses: &[IpAddr]) {
        let Some(i) = self.config.vrrp.iter().position(|c| c.name == instance) else {
            return;
        };
        let Some(st) = self.vrrp.get(i).map(|w| w.borrow().clone()) else {
            return;
        };
        // Already MASTER (a late request, or a resumed master): served by its state.
        if st.state == "MASTER" {
            return;
        }
        for a in addresses {
            self.taking.insert(*a, (i, st.transitions));
        }
        if self.standby_vips() != self.standby
            && let Err(e) = self.apply()
        {
            tracing::error!("serving the addresses VRRP takes failed: {}", chain(&e));
        }
    }

    /// Applies again when a VRRP instance became master or stopped being it. An
    /// address being taken is settled once its instance's state moves on.
    pub(super) fn follow_vrrp_roles(&mut self) {
        let vrrp = &self.vrrp;
        self.taking.retain(|_, (i, transitions)| {
            vrrp.get(*i)
                .is_some_and(|w| w.borrow().transitions == *transitions)
        });
        if self.standby_vips() != self.standby
            && let Err(e) = self.apply()
        {
            tracing::error!("applying a VRRP role change failed: {}", chain(&e));
        }
    }

    /// Applies again when a backend's address became this node's or stopped being
    /// (checked every refresh).
    pub(super) fn follow_local_addresses(&mut self) {
        let specs = self.config.services_with(|v, b| self.effective(v, b));
        match self.dp.local_backends_changed(&specs) {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = self.apply() {
                    tracing::error!("applying a change of local addresses failed: {}", chain(&e));
                }
            }
            Err(e) => tracing::warn!("reading this node's addresses failed: {}", chain(&e)),
        }
    }

    /// Logs backends that became local or stopped being so since the last call.
    fn log_local_backends(&mut self) {
        let now = self.dp.local_backends().clone();
        for a in now.difference(&self.local_logged) {
            tracing::info!(
                "backend address {a} is this node's: packets for it go through the local \
                 stack (NAT replies translated at TC egress)"
            );
        }
        for a in self.local_logged.difference(&now) {
            tracing::info!("backend address {a} is no longer this node's: routed again");
        }
        self.local_logged = now;
    }

    /// Health checkers to the config's backends, then the maps to the whole state: what
    /// a change of the config or of an override writes (and what going back writes).
    pub(super) fn apply_config(&mut self) -> Result<(), AgentError> {
        self.reconcile_checks()?;
        self.apply()
    }

    /// Starts, keeps or stops checkers so each checked backend of the config has
    /// exactly one, started for its current settings. A restarted checker keeps the
    /// health its predecessor found; a new backend starts from the health the maps
    /// had before a restart if known, else fresh (the first check decides).
    pub(super) fn reconcile_checks(&mut self) -> Result<(), AgentError> {
        let mut wanted: HashMap<BackendKey, (VipConfig, BackendConfig)> = HashMap::new();
        for v in &self.config.vips {
            for b in &v.backends {
                let admin = self.admin(v, b);
                if v.check.kind != CheckKind::None && admin != AdminState::Disabled {
                    wanted.insert(key(v, b), (v.clone(), b.clone()));
                }
            }
        }
        self.checks.retain(|k, c| {
            wanted
                .get(k)
                .is_some_and(|(v, b)| c.what == (v.check.clone(), b.clone()))
        });
        let mut tls_by_vip: HashMap<String, Arc<rustls::ClientConfig>> = HashMap::new();
        for (k, (v, b)) in wanted {
            if self.checks.contains_key(&k) {
                continue;
            }
            let tls = if v.check.kind.uses_tls() {
                if let Some(t) = tls_by_vip.get(&v.name) {
                    Some(t.clone())
                } else {
                    let t = health::client_config(v.check.tls_verify, v.check.ca_file.as_deref())
                        .map_err(|source| AgentError::Health {
                        vip: v.name.clone(),
                        source,
                    })?;
                    tls_by_vip.insert(v.name.clone(), t.clone());
                    Some(t)
                }
            } else {
                None
            };
            let Some(spec) =
                health::probe_spec(&v, &b, tls.as_ref()).map_err(|source| AgentError::Health {
                    vip: v.name.clone(),
                    source,
                })?
            else {
                continue;
            };
            let state = match self.known.remove(&k) {
                Some(up) => HealthState::known(up, v.check.rise, v.check.fall),
                None => HealthState::fresh(v.check.rise, v.check.fall),
            };
            self.next_generation += 1;
            let generation = self.next_generation;
            let checker = self.tasks.child();
            let seed = health::spread(
                u64::from(lb_common::hash::bytes_hash(label(&k).as_bytes(), 0)),
                v.check.interval,
            );
            health::spawn(
                &checker,
                (k.clone(), generation),
                spec,
                state,
                health::intervals(&v.check),
                seed,
                self.reports.clone(),
            );
            self.checks.insert(
                k,
                Checked {
                    what: (v.check.clone(), b.clone()),
                    generation,
                    up: state.is_up(),
                    last: None,
                    since_unix: 0,
                    _checker: CancelOnDrop(checker),
                },
            );
        }
        Ok(())
    }

    /// A check result. A state change is logged once, with its reason and how many
    /// backends of the VIP are up after it, and applied at once. Returns whether the
    /// state changed.
    pub(super) fn on_report(&mut self, r: Tagged) -> bool {
        let ((k, generation), outcome) = (r.key, r.outcome);
        let Some(c) = self.checks.get_mut(&k) else {
            return false;
        };
        if c.generation != generation {
            return false;
        }
        c.last = Some((outcome.clone(), unix_now()));
        let flipped = c.up != r.up;
        c.up = r.up;
        if !flipped {
            return false;
        }
        c.since_unix = unix_now();
        let (up, total) = self.count_up(&k.vip);
        let word = if r.up { "UP" } else { "DOWN" };
        let reason = describe(&outcome);
        let line = format!("backend {} {word}: {reason}, {up} of {total} up", label(&k));
        let backend = host_port(&k.address.to_string(), k.port);
        if r.up {
            tracing::info!(event = "backend_state", vip = %k.vip, backend, state = word, reason, up, total, "{line}");
        } else {
            tracing::warn!(event = "backend_state", vip = %k.vip, backend, state = word, reason, up, total, "{line}");
        }
        if let Err(e) = self.apply() {
            tracing::error!("applying the health change failed: {}", chain(&e));
        }
        true
    }

    /// Backends of VIP `name` taking new flows, and all its backends.
    pub(super) fn count_up(&self, name: &str) -> (usize, usize) {
        let Some(v) = self.config.vips.iter().find(|v| v.name == name) else {
            return (0, 0);
        };
        let up = self
            .serving(v)
            .into_iter()
            .filter(|s| *s == BackendState::Up)
            .count();
        (up, v.backends.len())
    }

    /// The effective data plane state of a backend.
    /// A backend's state by its admin state and health alone.
    pub(super) fn effective(&self, v: &VipConfig, b: &BackendConfig) -> BackendState {
        self.admin(v, b).effective(self.healthy(v, b))
    }

    /// The states the data plane gets for the backends of `v`, in config order:
    /// `effective` with backups held back while they are not needed.
    pub(super) fn serving(&self, v: &VipConfig) -> Vec<BackendState> {
        let own: Vec<BackendState> = v.backends.iter().map(|b| self.effective(v, b)).collect();
        crate::config::backup::serving(v, &own)
    }

    /// Starts a listener for each routed VIP (the proxy path), serving the pools'
    /// backends that are up now.
    pub(super) fn start_routed(&mut self) -> Result<(), AgentError> {
        for vip in &self.config.routed {
            let router = super::routed::router(&self.config, vip, |v| self.serving(v))
                .map_err(|why| AgentError::Refused(format!("routed VIP {}: {why}", vip.name)))?;
            self.routed
                .push(super::routed::listen(vip, router, &self.tasks)?);
            tracing::info!(
                "routed VIP {}: listening on {}:{}, routing by {:?} to {} pools",
                vip.name,
                vip.address,
                vip.port,
                vip.by,
                vip.pools.len()
            );
        }
        Ok(())
    }

    /// Sends each routed listener the pools' backends as they are now.
    fn update_routed(&self) {
        for l in &self.routed {
            let Some(vip) = self.config.routed.iter().find(|r| r.name == l.config.name) else {
                continue;
            };
            match super::routed::router(&self.config, vip, |v| self.serving(v)) {
                Ok(r) => l.update(r),
                Err(e) => tracing::error!("routed VIP {}: {e}", vip.name),
            }
        }
    }

    pub(super) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A backup starting or ceasing to take new flows, logged once.
fn log_backup_change(vip: &str, k: &BackendKey, before: Option<BackendState>, now: BackendState) {
    match (before, now) {
        (b, BackendState::Up) if b != Some(BackendState::Up) => tracing::warn!(
            "backup backend {} takes new flows: no active backend of VIP {vip} can",
            label(k)
        ),
        (Some(BackendState::Up), BackendState::Drain) => tracing::info!(
            "backup backend {} stands by again (its flows stay until they end): an active \
             backend of VIP {vip} takes new flows",
            label(k)
        ),
        _ => {}
    }
}

/// "L4 connection refused after 0 ms" / "L7 OK in 3 ms".
pub fn describe(o: &Outcome) -> String {
    let ms = o.elapsed.as_millis();
    if o.ok {
        format!("{} in {ms} ms", o.reason)
    } else {
        format!("{} after {ms} ms", o.reason)
    }
}
