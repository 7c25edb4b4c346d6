//! The file's shape, as serde reads it: every table rejects unknown keys, every value
//! with a default is optional. `validate` turns it into `model::Config`.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub agent: Option<Agent>,
    #[serde(default)]
    pub vip: Vec<Vip>,
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
    pub on_no_backend: Option<String>,
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
}
