//! Errors of the running agent.

use std::path::PathBuf;

use crate::{config::ConfigErrors, dataplane::DataplaneError, health::HealthError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("config has errors, nothing applied:\n{0}")]
    Config(ConfigErrors),
    #[error("data plane")]
    Dataplane(#[from] DataplaneError),
    #[error("routed VIP {vip}: {what} on {at} failed")]
    Routed {
        vip: String,
        what: &'static str,
        at: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("health checks of VIP {vip}")]
    Health {
        vip: String,
        #[source]
        source: HealthError,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sysctl {name}: {why}")]
    Sysctl { name: String, why: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}
