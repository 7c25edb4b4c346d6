//! What the agent shows: one snapshot type behind the CLI tables, `--json`, the
//! control socket, `/metrics`, `/ready` and the status page. The daemon builds it
//! every second from its config, health checks and the maps; the CLI builds the same
//! from pinned maps when the daemon is down (health then "unknown").

use serde::{Deserialize, Serialize};

use crate::dataplane::Traffic;

/// The whole picture.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// "daemon" (live, from the control socket) or "pinned maps" (daemon down).
    pub source: String,
    pub version: String,
    pub config_file: String,
    /// Seconds since the agent started (0 from pinned maps).
    pub uptime_s: u64,
    /// Whether the agent re-adopted pinned maps at start.
    pub adopted: bool,
    pub interfaces: Vec<InterfaceStatus>,
    pub vips: Vec<VipStatus>,
    /// Global verdict/reason counters, with rates.
    pub counters: Vec<CounterStatus>,
    /// Flow sync with the other LB nodes, when configured.
    #[serde(default)]
    pub sync: Option<SyncStatus>,
    /// Last reload: when and how it went.
    pub last_reload: Option<ReloadStatus>,
    /// VRRP instances (empty from pinned maps: only the daemon knows).
    #[serde(default)]
    pub vrrp: Vec<crate::vrrp::InstanceStatus>,
    /// Why the data plane cannot forward now (a sysctl turned off, route lookups
    /// failing with nothing forwarded); empty when it can. `/ready` is 503 while not.
    #[serde(default)]
    pub dataplane_problems: Vec<String>,
    /// Socket-level balancing of this node's own connects, when on.
    #[serde(default)]
    pub sockets: Option<SocketLbStatus>,
    /// The flow table and NAT bindings as the last sweep found them, and the NAT
    /// capacity of the config (daemon only).
    #[serde(default)]
    pub flow_table: Option<FlowTableStatus>,
    /// The routed VIPs' listeners (the proxy path; daemon only).
    #[serde(default)]
    pub routed: Vec<RoutedStatus>,
    /// The last minutes of each backend and VRRP instance, for the status page's
    /// charts (daemon only; see `crate::history`).
    #[serde(default)]
    pub history: Option<crate::history::History>,
}

/// A routed VIP's listener: connections by outcome, and per pool.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoutedStatus {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// "sni" or "host".
    pub route_by: String,
    pub active: u64,
    /// Connections by outcome: accepted, no_match_reset, invalid, inspect_timeout,
    /// no_backend, connect_failed, over_limit.
    pub connections: std::collections::BTreeMap<String, u64>,
    /// Connections sent to each pool's backends, by pool name.
    pub pools: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FlowTableStatus {
    /// Entries of each table (`flow_table_size`).
    pub capacity: u32,
    pub flows: u64,
    pub bindings: u64,
    /// Expired NAT bindings still in the table: their ports are free (taken over
    /// by the next claim), the sweep deletes them an hour after they expired.
    #[serde(default)]
    pub bindings_expired: u64,
    /// Live entries by state (`syn`, `established`, ...).
    pub flows_by_state: std::collections::BTreeMap<String, u64>,
    pub bindings_by_state: std::collections::BTreeMap<String, u64>,
    /// Expired entries the sweeps removed since the agent started, by state.
    pub flows_removed: std::collections::BTreeMap<String, u64>,
    pub bindings_removed: std::collections::BTreeMap<String, u64>,
    /// Live NAT bindings per SNAT address and backend.
    pub in_use: Vec<BindingsInUse>,
    /// How long the last sweep took, and sweeps so far.
    pub sweep_seconds: f64,
    pub sweeps: u64,
    /// Each NAT VIP's capacity.
    pub nat: Vec<crate::config::capacity::NatCapacity>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BindingsInUse {
    pub snat: String,
    pub backend: String,
    pub bindings: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SocketLbStatus {
    /// The cgroup the socket programs are attached to.
    pub cgroup: String,
    /// "own" (this node's network namespace) or "all".
    pub namespaces: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// "native", "generic", or "replaced" (the pinned link of an earlier start).
    pub mode: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub at_unix: u64,
    pub ok: bool,
    pub message: String,
}

/// Per-second rates over the last refresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub packets_per_s: f64,
    pub bytes_per_s: f64,
    pub new_flows_per_s: f64,
}

impl Rates {
    /// Rates between two readings `secs` apart.
    pub fn between(old: &Traffic, new: &Traffic, secs: f64) -> Self {
        if secs <= 0.0 {
            return Self::default();
        }
        let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        Self {
            packets_per_s: d(old.packets, new.packets),
            bytes_per_s: d(old.bytes, new.bytes),
            new_flows_per_s: d(old.new_flows, new.new_flows),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VipStatus {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub protocol: String,
    pub forwarding: String,
    /// A loopback VIP, served to this node's own sockets only.
    #[serde(default)]
    pub node_local: bool,
    /// Check type ("tcp", "http", "https", "none").
    pub check: String,
    /// Backends taking new flows.
    pub up: usize,
    pub total: usize,
    pub traffic: Traffic,
    pub rates: Rates,
    pub backends: Vec<BackendStatus>,
    /// Live Maglev ring entries without a backend.
    pub empty_ring_slots: u32,
    pub ring_size: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BackendStatus {
    pub address: String,
    pub port: u16,
    pub weight: u32,
    /// The backend's address is this node's: served through the local stack.
    #[serde(default)]
    pub local: bool,
    /// Configured (or set by drain/enable): "enabled", "drain", "disabled".
    pub admin: String,
    /// Health: "up", "down", "unchecked" (type none) or "unknown" (daemon down).
    pub health: String,
    /// A backup (HAProxy's `backup`): takes new flows only while no other backend of
    /// its VIP can.
    #[serde(default)]
    pub backup: bool,
    /// What the data plane does: "up", "drain", "down", or "standby" (a backup that
    /// is up, held back while an active backend takes new flows).
    pub state: String,
    pub last_check: Option<CheckStatus>,
    /// When the health last changed (unix seconds; 0 = not since start).
    pub since_unix: u64,
    pub traffic: Traffic,
    pub rates: Rates,
    /// Entries of the live Maglev ring.
    pub ring_slots: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckStatus {
    pub ok: bool,
    pub reason: String,
    pub duration_ms: f64,
    pub at_unix: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CounterStatus {
    pub name: String,
    pub value: u64,
    pub per_s: f64,
}

impl Status {
    /// VIPs with no backend taking new flows.
    pub fn vips_without_backend(&self) -> Vec<&str> {
        self.vips
            .iter()
            .filter(|v| v.up == 0)
            .map(|v| v.name.as_str())
            .collect()
    }

    /// What `/ready` answers: `Ok(why ready)`, or `Err(why not)`.
    pub fn readiness(&self) -> Result<String, String> {
        if self.source == "daemon" && self.interfaces.is_empty() {
            return Err("the program is not attached yet".into());
        }
        if !self.dataplane_problems.is_empty() {
            return Err(format!(
                "the data plane cannot forward: {}",
                self.dataplane_problems.join("; ")
            ));
        }
        let missing = self.vips_without_backend();
        if !missing.is_empty() {
            return Err(format!("no healthy backend for VIP {}", missing.join(", ")));
        }
        Ok(format!("{} VIPs have a healthy backend", self.vips.len()))
    }

    pub fn vip(&self, name: &str) -> Option<&VipStatus> {
        self.vips.iter().find(|v| v.name == name)
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `addr:port`, IPv6 in brackets.
pub fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// 1234567 -> "1.2M" (tables, the status page).
pub fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Flow sync with the other LB nodes (`[agent.sync]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncStatus {
    pub peers: Vec<SyncPeerStatus>,
    pub messages_sent: u64,
    pub records_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub records_received: u64,
    /// Records written into this node's tables.
    pub records_learned: u64,
    /// Messages rejected, by reason (auth, replayed, stale, not_a_peer, ...).
    pub rejected: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncPeerStatus {
    pub address: String,
    /// Seconds since its last accepted message (`None`: never).
    pub heard_s_ago: Option<u64>,
}
