//! lb-agent: loads the XDP data plane, programs its maps, runs health checks and
//! the operator interfaces (control socket, metrics, status page).

pub mod agent;
// The config and its values, and the importer: crates of their own (lb-agent/config,
// lb-agent/import) that build without the eBPF toolchain.
pub use lb_config as config;
pub mod dataplane;
pub mod health;
pub mod history;
pub use lb_import as import;
#[cfg(feature = "lab")]
pub mod lab;
pub mod logging;
pub mod netlink;
pub mod proxy;
pub mod status;
pub mod sync;
pub mod tasks;
pub mod vrrp;
