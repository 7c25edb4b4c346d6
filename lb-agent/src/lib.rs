//! lb-agent: loads the XDP data plane, programs its maps, runs health checks and
//! the operator interfaces (control socket, metrics, status page).

pub mod agent;
pub mod config;
pub mod dataplane;
pub mod health;
pub mod import;
pub mod lab;
pub mod proxy;
pub mod status;
pub mod sync;
pub mod tasks;
pub mod vrrp;
