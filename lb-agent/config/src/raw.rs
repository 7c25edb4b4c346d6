//! The file's shape, as serde reads it: every table rejects unknown keys, every value
//! with a default is optional. `validate` turns it into `model::Config`.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub agent: Option<Agent>,
    #[serde(default)]
    pub vip: Vec<Vip>,
    #[serde(default)]
    pub vrrp: Vec<Vrrp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub interfaces: Option<Vec<String>>,
    pub xdp_mode: Option<String>,
    pub pin_path: Option<String>,
    pub api_listen: Option<String>,
    pub control_socket: Option<String>,
    pub flow_table_size: Option<i64>,
    pub stats_auth: Option<StatsAuth>,
    pub socket_lb: Option<bool>,
    pub socket_lb_cgroup: Option<String>,
    pub socket_lb_namespaces: Option<String>,
    pub manage_forwarding: Option<bool>,
    pub snat_port_range: Option<String>,
    pub on_sigterm: Option<String>,
    pub log_format: Option<String>,
    pub dataplane_log: Option<bool>,
    pub timeouts: Option<Timeouts>,
    pub sync: Option<Sync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    pub peers: Option<Vec<String>>,
    pub key: Option<String>,
    pub port: Option<i64>,
    pub min_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub tcp_syn: Option<String>,
    pub tcp_established: Option<String>,
    pub tcp_closing: Option<String>,
    pub tcp_time_wait: Option<String>,
    pub tcp_reset: Option<String>,
    pub udp: Option<String>,
    pub udp_replied: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsAuth {
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    pub name: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub forwarding: Option<String>,
    pub snat_address: Option<String>,
    pub snat_addresses: Option<Vec<String>>,
    pub on_no_backend: Option<String>,
    pub all_backups: Option<bool>,
    pub timeouts: Option<Timeouts>,
    pub check: Option<Check>,
    #[serde(default)]
    pub backend: Vec<Backend>,
    /// A routed VIP (`"sni"` or `"host"`): served by the proxy path, its `pool`s.
    pub route_by: Option<String>,
    pub otherwise: Option<String>,
    pub inspect_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
    #[serde(default)]
    pub pool: Vec<Pool>,
}

/// A backend pool of a routed VIP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub send_proxy: Option<String>,
    pub check: Option<Check>,
    #[serde(default)]
    pub backend: Vec<Backend>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<Vec<i64>>,
    pub interval: Option<String>,
    pub fastinter: Option<String>,
    pub downinter: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub tls_verify: Option<bool>,
    pub ca_file: Option<String>,
    pub sni: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub address: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub state: Option<String>,
    pub backup: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vrrp {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<i64>,
    pub priority: Option<i64>,
    pub advert_interval: Option<String>,
    pub version: Option<i64>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    pub unicast_src: Option<String>,
    #[serde(default)]
    pub unicast_peers: Vec<String>,
    pub auth_pass: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub garp_repeat: Option<i64>,
    pub garp_interval: Option<String>,
    pub garp_refresh: Option<String>,
    pub v3_checksum: Option<String>,
    pub notify: Option<Vec<String>>,
    #[serde(default)]
    pub track: Vec<Track>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    pub kind: Option<String>,
    pub vip: Option<String>,
    pub command: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub name: Option<String>,
    pub weight: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}
