//! The validated config: every value checked, every default filled in.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use crate::{
    service::{
        AttachMode, BackendSpec, BackendState, Forwarding, NoBackend, Protocol, ServiceSpec,
        SocketScope,
    },
    timeouts::FlowTimeouts,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub agent: AgentConfig,
    /// The services: the data plane's, and each pool of a routed VIP (`routed`
    /// set; checked and shown like the others, served by the proxy path).
    pub vips: Vec<VipConfig>,
    /// The routed VIPs' listeners (`route_by`).
    pub routed: Vec<super::routed::RoutedVip>,
    pub vrrp: Vec<super::vrrp::VrrpConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub interfaces: Vec<String>,
    pub xdp_mode: AttachMode,
    pub pin_path: PathBuf,
    pub api_listen: SocketAddr,
    pub control_socket: PathBuf,
    pub flow_table_size: u32,
    pub stats_auth: Option<StatsAuth>,
    /// Socket-level balancing of this node's own connects (`None`: off).
    pub socket_lb: Option<SocketLb>,
    /// Turn on per-interface forwarding at start (else only check it).
    pub manage_forwarding: bool,
    /// NAT source ports, per SNAT address and backend.
    pub snat_ports: std::ops::RangeInclusive<u16>,
    /// Flow lifetimes of every VIP that does not set its own.
    pub timeouts: FlowTimeouts,
    /// What SIGTERM means.
    pub on_sigterm: OnSigterm,
    /// Flow sync with the VRRP peers (`None`: off).
    pub sync: Option<SyncConfig>,
    /// How the agent writes its log (`--log-format` overrides it).
    pub log_format: LogFormat,
    /// The XDP and socket programs log their rare events into the agent's log.
    pub dataplane_log: bool,
}

/// The agent's log lines: text for people, JSON (one object per line) for log
/// shippers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// The names the config and `--log-format` take.
    pub const NAMES: [(&'static str, LogFormat); 2] =
        [("text", LogFormat::Text), ("json", LogFormat::Json)];

    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("got \"{s}\", expected \"text\" or \"json\""))
    }
}

/// `[agent.sync]`: this node's flows and NAT bindings sent to its peers, theirs
/// learned, so a new master carries the connections of the old one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub peers: Vec<IpAddr>,
    /// The pre-shared key (HMAC-SHA256 of every message).
    pub key: Vec<u8>,
    pub port: u16,
    /// Flows younger than this are not sent.
    pub min_age: Duration,
}

/// What SIGTERM means to the agent's VRRP instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSigterm {
    /// A stop: masters hand over (priority 0), unless systemd is restarting the
    /// unit, which is a restart.
    Handover,
    /// Always a restart: masters keep the VIP for the next agent (a static pod, whose
    /// container restarts are upgrades).
    Restart,
}

/// Where and for whom the socket programs balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketLb {
    /// The cgroup (v2) to attach to; `None`: the root of the hierarchy.
    pub cgroup: Option<PathBuf>,
    pub scope: SocketScope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsAuth {
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipConfig {
    pub name: String,
    pub address: IpAddr,
    /// 0 = every port.
    pub port: u16,
    pub protocol: Protocol,
    pub forwarding: Forwarding,
    /// NAT source addresses (`snat_address`, or `snat_addresses`); empty with DSR
    /// and for node-local VIPs.
    pub snat_addresses: Vec<IpAddr>,
    pub on_no_backend: NoBackend,
    /// With backup backends in use: all of them take new flows (HAProxy's
    /// `option allbackups`), else only the first that is up.
    pub all_backups: bool,
    /// `[agent.timeouts]` with the VIP's own `[vip.timeouts]` over it.
    pub timeouts: FlowTimeouts,
    pub check: CheckConfig,
    pub backends: Vec<BackendConfig>,
    /// A pool of a routed VIP (named `<vip>/<pool>`): not programmed into the data
    /// plane; the proxy path takes its backends that are up.
    pub routed: Option<super::routed::PoolOf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    Http,
    Https,
    /// A TLS handshake and nothing more (HAProxy's `ssl-hello-chk`, `check-ssl`
    /// without `httpchk`).
    Tls,
    /// No probing: enabled backends are up.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    /// None = the backend's port.
    pub port: Option<u16>,
    pub path: String,
    pub host: Option<String>,
    pub expect_status: Vec<u16>,
    pub interval: Duration,
    pub fastinter: Duration,
    pub downinter: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub tls_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub sni: Option<String>,
}

/// What the operator configured for a backend (health decides the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    Enabled,
    Drain,
    Disabled,
}

impl AdminState {
    /// What the data plane does with a backend in this state and of this health.
    pub fn effective(self, healthy: bool) -> BackendState {
        match self {
            AdminState::Disabled => BackendState::Down,
            AdminState::Drain => BackendState::Drain,
            AdminState::Enabled if healthy => BackendState::Up,
            AdminState::Enabled => BackendState::Down,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    pub address: IpAddr,
    /// 0 = the port the client connected to (any-port VIPs).
    pub port: u16,
    pub weight: u32,
    pub state: AdminState,
    /// Takes new flows only while no other backend of its VIP can (HAProxy's
    /// `backup`): see `backup::serving`.
    pub backup: bool,
}

impl VipConfig {
    /// A node-local VIP (a loopback address): served to this node's own sockets by
    /// the socket programs only.
    pub fn node_local(&self) -> bool {
        self.address.is_loopback()
    }

    /// Whether the check speaks TLS (so `tls_verify`, `ca_file` and `sni` apply).
    pub fn check_uses_tls(&self) -> bool {
        self.check.kind.uses_tls()
    }
}

impl CheckKind {
    /// The kinds that make a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, CheckKind::Https | CheckKind::Tls)
    }
}

impl Config {
    /// The services to program, each backend's state combining the configured state
    /// with `healthy(vip, backend)`.
    pub fn services(
        &self,
        healthy: impl Fn(&VipConfig, &BackendConfig) -> bool,
    ) -> Vec<ServiceSpec> {
        self.services_with(|v, b| b.state.effective(healthy(v, b)))
    }

    /// The services to program (routed pools are not), each backend in the state
    /// `state(vip, backend)`.
    pub fn services_with(
        &self,
        state: impl Fn(&VipConfig, &BackendConfig) -> BackendState,
    ) -> Vec<ServiceSpec> {
        self.vips
            .iter()
            .filter(|v| v.routed.is_none())
            .map(|v| ServiceSpec {
                name: v.name.clone(),
                vip: v.address,
                port: v.port,
                protocol: v.protocol,
                forwarding: v.forwarding,
                snat: v.snat_addresses.clone(),
                on_no_backend: v.on_no_backend,
                standby: false,
                timeouts: v.timeouts,
                backends: {
                    let own: Vec<BackendState> = v.backends.iter().map(|b| state(v, b)).collect();
                    let serving = super::backup::serving(v, &own);
                    v.backends
                        .iter()
                        .zip(serving)
                        .map(|(b, state)| BackendSpec {
                            addr: b.address,
                            port: b.port,
                            weight: b.weight,
                            state,
                        })
                        .collect()
                },
            })
            .collect()
    }
}
