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

/// Why a reload applied nothing, or (rarely) what it had to undo.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("VIP {vip}: health checks: {}", chain(.source))]
    HealthTls { vip: String, source: HealthError },
    #[error("{}", chain(.0))]
    Services(DataplaneError),
    #[error("{0}; nothing applied")]
    SnatConflict(String),
    #[error(
        "routed VIPs added, removed, or with another address, port, route_by, timeout, \
         max_connections or set of pools: their listeners change at the next start \
         (restart the agent); nothing applied"
    )]
    RoutedListeners,
    /// Writing the checked config failed half way (a map write): the previous config
    /// was written back, and whether that worked too.
    #[error("{}{}", chain(.source.as_ref()), undone(.rollback.as_deref()))]
    Apply {
        source: Box<AgentError>,
        rollback: Option<Box<AgentError>>,
    },
}

/// Why `drain` or `enable` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no VIP named {vip:?} (known: {})", .known.join(", "))]
    NoVip { vip: String, known: Vec<String> },
    #[error("VIP {vip} has no backend {backend:?} (it has: {})", .has.join(", "))]
    NoBackend {
        vip: String,
        backend: String,
        has: Vec<String>,
    },
    #[error("{backend:?} matches several backends of {vip}: give ADDR:PORT")]
    Ambiguous { vip: String, backend: String },
    /// Writing the change failed (a map write): the previous state was written back,
    /// and whether that worked too.
    #[error("{}{}", chain(.source.as_ref()), undone(.rollback.as_deref()))]
    Apply {
        source: Box<AgentError>,
        rollback: Option<Box<AgentError>>,
    },
}

/// What became of the previous state after a write failed half way.
fn undone(rollback: Option<&AgentError>) -> String {
    match rollback {
        None => "; the previous state is written back".to_string(),
        Some(e) => format!("; writing the previous state back failed too: {}", chain(e)),
    }
}

/// An error and its sources on one line ("a: b: c"), for logs and answers.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
