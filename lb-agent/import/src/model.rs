//! The config being built: what `emit` writes, with the comments that cite where
//! each part came from. Values read from the inputs stay as read (numbers as
//! `i64`, peers as text) so that our own config check reports what is out of range.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::proxy::Bind;

/// Comments for keys of one table: (key, comment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notes(pub Vec<(&'static str, String)>);

impl Notes {
    pub fn add(&mut self, key: &'static str, note: impl Into<String>) {
        self.0.push((key, note.into()));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| n.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckPlan {
    /// "tcp", "tls", "http", "https", "none".
    pub kind: &'static str,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<Vec<u16>>,
    pub interval: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub tls_verify: Option<bool>,
    pub ca_file: Option<String>,
    pub sni: Option<String>,
    /// Where the check came from (comment on the table header).
    pub origin: String,
    pub notes: Notes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendPlan {
    /// "haproxy.cfg:40 server cp1"
    pub origin: String,
    pub address: IpAddr,
    pub port: Option<u16>,
    pub weight: Option<i64>,
    /// "drain" / "disabled"; None = enabled.
    pub state: Option<&'static str>,
    /// HAProxy's `backup`.
    pub backup: bool,
    pub notes: Notes,
}

/// A service as an input describes it, before its address (a bind may have none)
/// and SNAT address are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Comment lines above the [[vip]] (where it came from).
    pub comments: Vec<String>,
    pub name: String,
    /// The input file and the section's line (for errors).
    pub file: String,
    pub line: usize,
    pub binds: Vec<Bind>,
    /// "tcp" / "udp".
    pub protocol: &'static str,
    /// "nat" / "dsr".
    pub forwarding: &'static str,
    /// HAProxy's `option allbackups`.
    pub all_backups: bool,
    pub notes: Notes,
    pub check: CheckPlan,
    pub backends: Vec<BackendPlan>,
    /// A routed VIP (by TLS server name or HTTP Host): its pools instead of
    /// `check` and `backends`.
    pub routing: Option<RoutingPlan>,
}

/// What a routed VIP adds: how it picks a pool, its timeouts, its pools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingPlan {
    /// "sni" / "host".
    pub by: &'static str,
    /// A pool's name, or None: reset.
    pub otherwise: Option<String>,
    pub inspect_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<i64>,
    pub notes: Notes,
    pub pools: Vec<PoolPlan>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolPlan {
    pub comments: Vec<String>,
    pub name: String,
    pub names: Vec<String>,
    /// "v1" / "v2".
    pub send_proxy: Option<&'static str>,
    pub notes: Notes,
    pub check: CheckPlan,
    pub backends: Vec<BackendPlan>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipPlan {
    pub comments: Vec<String>,
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: &'static str,
    pub forwarding: &'static str,
    pub snat_address: Option<IpAddr>,
    pub all_backups: bool,
    pub notes: Notes,
    pub check: CheckPlan,
    pub backends: Vec<BackendPlan>,
    pub routing: Option<RoutingPlan>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackPlan {
    /// "keepalived.conf:3 vrrp_script check_apiserver"
    pub origin: String,
    /// "script", "interface", "dataplane", "vip_healthy".
    pub kind: &'static str,
    pub command: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub name: Option<String>,
    pub weight: i64,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub notes: Notes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrrpPlan {
    pub comments: Vec<String>,
    pub name: String,
    pub interface: String,
    pub vrid: Option<i64>,
    pub priority: i64,
    pub advert_interval: Option<Duration>,
    pub version: i64,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<Duration>,
    pub unicast_src: Option<IpAddr>,
    pub unicast_peers: Vec<String>,
    pub auth_pass: Option<String>,
    /// "ADDR/PREFIX" as written to the config.
    pub addresses: Vec<String>,
    /// The addresses it holds, parsed (for binds without an address).
    pub held: Vec<IpAddr>,
    pub garp_repeat: Option<i64>,
    pub garp_interval: Option<Duration>,
    pub garp_refresh: Option<Duration>,
    pub notify: Option<Vec<String>>,
    pub tracks: Vec<TrackPlan>,
    /// The input file and the instance's line.
    pub file: String,
    pub line: usize,
    pub notes: Notes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentPlan {
    pub interfaces: Vec<String>,
    pub api_listen: Option<SocketAddr>,
    pub stats_auth: Option<(String, String)>,
    pub notes: Notes,
}

/// The whole config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The inputs, for the header comment.
    pub sources: Vec<String>,
    pub agent: AgentPlan,
    pub vips: Vec<VipPlan>,
    pub vrrp: Vec<VrrpPlan>,
}
