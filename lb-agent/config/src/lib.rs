//! The agent's TOML config: parsing, checking, defaults; and the values it describes
//! (services and their backends, flow lifetimes, routing names, proxy kinds), which the
//! agent's data plane and proxy take as they are. Builds and tests without the eBPF
//! toolchain (`cargo test -p lb-config`); the importer (`lb-import`) writes it.
//!
//! `load` reads a file and returns either a fully checked `Config` or every problem
//! found, each naming the file, the line, the key and what was expected. Unknown keys
//! are errors. Nothing is applied from a config with errors.

pub mod backup;
pub mod capacity;
pub mod defaults;
pub mod duration;
mod error;
mod locate;
mod model;
pub mod names;
pub mod proxy;
mod raw;
pub mod routed;
#[cfg(test)]
mod routed_tests;
pub mod service;
#[cfg(test)]
mod tests;
pub mod timeouts;
mod validate;
mod vrrp;
#[cfg(test)]
mod vrrp_tests;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
use locate::Locator;
pub use model::{
    AdminState, AgentConfig, BackendConfig, CheckConfig, CheckKind, Config, LogFormat, OnSigterm,
    SocketLb, StatsAuth, SyncConfig, VipConfig,
};
pub use vrrp::{TrackConfig, TrackKind, VrrpConfig};

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// Checks config `text` (named `file` in errors).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let locator = Locator::new(text);
    let raw: raw::File = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let (line, key) = match e.span() {
                Some(span) => {
                    let key = locator
                        .path_at(span.start)
                        .map_or_else(|| "-".to_string(), |p| p.to_string());
                    (locator.line_of(span.start), key)
                }
                None => (0, "-".to_string()),
            };
            return Err(ConfigErrors(vec![ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }]));
        }
    };
    let mut problems = validate::Problems::default();
    let config = validate::file(&mut problems, &raw);
    if problems.0.is_empty()
        && let Some(c) = config
    {
        return Ok(c);
    }
    Err(ConfigErrors(
        problems
            .0
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: file.to_path_buf(),
                line: locator.line_of_path(&path),
                key: path.to_string(),
                message,
            })
            .collect(),
    ))
}

/// Where the agent of config `path` listens and pins, read leniently: for a file
/// with errors elsewhere (so the CLI can still reach the daemon running the last
/// good config). Missing or unreadable keys give the defaults.
pub fn endpoints(path: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    let doc: toml::Table = toml::from_str(&text).unwrap_or_default();
    let agent = doc.get("agent").and_then(|a| a.as_table());
    let key = |k: &str, default: &str| {
        std::path::PathBuf::from(
            agent
                .and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or(default),
        )
    };
    Ok((
        key("control_socket", defaults::CONTROL_SOCKET),
        key("pin_path", defaults::PIN_PATH),
    ))
}
