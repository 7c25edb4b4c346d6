//! Health checks: tcp connect, a TLS handshake, http and https GET (TLS verified
//! against the system roots or `ca_file`, or not verified), with HAProxy's rise/fall,
//! interval, fastinter and downinter.

mod checker;
mod probe;
mod state;
#[cfg(test)]
mod tests;
mod tls;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

pub use checker::{Report, spawn, spread};
pub use probe::{HttpProbe, Outcome, ProbeKind, ProbeSpec, TlsProbe, run};
use rustls::pki_types::ServerName;
pub use state::{HealthState, Intervals};
pub use tls::client_config;

use crate::{
    config::{BackendConfig, CheckConfig, CheckKind, VipConfig},
    status::host_port,
};

/// Setting up checks failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("TLS settings")]
    Tls {
        #[source]
        source: rustls::Error,
    },
    #[error("ca_file {path}: {why}")]
    CaFile { path: PathBuf, why: String },
    #[error("{name:?} is not a valid TLS server name")]
    ServerName { name: String },
    #[error("a TLS check without TLS client settings")]
    NoTlsSettings,
}

/// The intervals of a check configuration.
pub fn intervals(c: &CheckConfig) -> Intervals {
    Intervals {
        interval: c.interval,
        fastinter: c.fastinter,
        downinter: c.downinter,
    }
}

/// What to probe for `backend` of `vip`; `None` for `type = "none"`. `tls` is the
/// VIP's TLS settings (built once per VIP with `client_config`).
pub fn probe_spec(
    vip: &VipConfig,
    backend: &BackendConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Option<ProbeSpec>, HealthError> {
    let c = &vip.check;
    let port = c.port.unwrap_or(backend.port);
    let addr = SocketAddr::new(backend.address, port);
    let tls = match (c.kind.uses_tls(), tls) {
        (true, Some(config)) => {
            let name = match &c.sni {
                Some(n) => ServerName::try_from(n.clone())
                    .map_err(|_| HealthError::ServerName { name: n.clone() })?,
                None => ServerName::IpAddress(backend.address.into()),
            };
            Some(TlsProbe {
                config: config.clone(),
                name,
            })
        }
        _ => None,
    };
    let kind = match (c.kind, tls) {
        (CheckKind::None, _) => return Ok(None),
        (CheckKind::Tcp, _) => ProbeKind::Tcp,
        (CheckKind::Tls, Some(t)) => ProbeKind::Tls(t),
        // A TLS check without its settings: the caller passes them for every TLS
        // kind (`CheckKind::uses_tls`).
        (CheckKind::Tls, None) => return Err(HealthError::NoTlsSettings),
        (CheckKind::Http | CheckKind::Https, tls) => ProbeKind::Http(HttpProbe {
            path: c.path.clone(),
            host: c
                .host
                .clone()
                .unwrap_or_else(|| host_port(&backend.address.to_string(), port)),
            expect_status: c.expect_status.clone(),
            tls: if c.kind == CheckKind::Https {
                tls
            } else {
                None
            },
        }),
    };
    Ok(Some(ProbeSpec {
        addr,
        kind,
        timeout: c.timeout,
    }))
}
