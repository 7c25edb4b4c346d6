//! Reload (SIGHUP, `lb-agent reload`): the new config is read and checked whole
//! (file, TLS settings, the service set against the data plane's capacities) before
//! anything changes; then health checkers are reconciled and the services applied.
//! Backends that remain keep their slots, so their flows are untouched. A config
//! with errors is rejected with every error and the running one stays.

use std::mem;

use super::{chain, core::Agent, error::ReloadError};
use crate::{
    config::{self, AgentConfig},
    health,
    status::{ReloadStatus, unix_now},
};

/// The `[agent]` keys that only take effect at the next start.
fn restart_only(old: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.interfaces != new.interfaces {
        keys.push("interfaces");
    }
    if old.xdp_mode != new.xdp_mode {
        keys.push("xdp_mode");
    }
    if old.pin_path != new.pin_path {
        keys.push("pin_path");
    }
    if old.api_listen != new.api_listen {
        keys.push("api_listen");
    }
    if old.control_socket != new.control_socket {
        keys.push("control_socket");
    }
    if old.flow_table_size != new.flow_table_size {
        keys.push("flow_table_size");
    }
    if old.stats_auth != new.stats_auth {
        keys.push("stats_auth");
    }
    if old.socket_lb != new.socket_lb {
        keys.push("socket_lb");
    }
    if old.manage_forwarding != new.manage_forwarding {
        keys.push("manage_forwarding");
    }
    if old.on_sigterm != new.on_sigterm {
        keys.push("on_sigterm");
    }
    if old.sync != new.sync {
        keys.push("sync");
    }
    // The program's port range is fixed when it is loaded.
    if old.snat_ports != new.snat_ports {
        keys.push("snat_port_range");
    }
    // [agent.timeouts] is not kept: each VIP's lifetimes (resolved over it) are
    // applied with the services.
    keys
}

impl Agent {
    /// Re-reads the config file and applies it whole, or changes nothing.
    pub(super) fn reload(&mut self) -> Result<Applied, ReloadError> {
        let result = self.try_reload();
        let message = match &result {
            Ok(applied) => {
                tracing::info!(event = "reload", ok = true, outcome = %applied, "reload: {applied}");
                applied.to_string()
            }
            Err(e) => {
                tracing::error!(
                    event = "reload",
                    ok = false,
                    outcome = %e,
                    "reload rejected, the running config stays: {e}"
                );
                e.to_string()
            }
        };
        self.last_reload = Some(ReloadStatus {
            at_unix: unix_now(),
            ok: result.is_ok(),
            message,
        });
        result
    }

    fn try_reload(&mut self) -> Result<Applied, ReloadError> {
        let mut new = config::load(&self.config_path).map_err(ReloadError::Config)?;
        for v in new.vips.iter().filter(|v| v.check.kind.uses_tls()) {
            health::client_config(v.check.tls_verify, v.check.ca_file.as_deref()).map_err(
                |source| ReloadError::HealthTls {
                    vip: v.name.clone(),
                    source,
                },
            )?;
        }
        let mut kept = restart_only(&self.config.agent, &new.agent);
        // Of [agent], the logs follow a reload; the rest waits for a start.
        let (log_format, dataplane_log) = (new.agent.log_format, new.agent.dataplane_log);
        new.agent = self.config.agent.clone();
        new.agent.log_format = log_format;
        new.agent.dataplane_log = dataplane_log;
        if new.vrrp != self.config.vrrp {
            kept.push("[[vrrp]]");
            new.vrrp = self.config.vrrp.clone();
        }
        self.dp
            .check(&new.services(|_, _| true))
            .map_err(ReloadError::Services)?;
        if let Some(why) = config::capacity::snat_conflict(&new) {
            return Err(ReloadError::SnatConflict(why));
        }
        // A routed VIP's listener (address, port, route_by, timeouts, limits) is
        // made at start; its pools, names and backends follow a reload.
        let listener = |r: &config::routed::RoutedVip| {
            (
                r.name.clone(),
                r.address,
                r.port,
                r.by,
                r.inspect_timeout,
                r.connect_timeout,
                r.idle_timeout,
                r.max_connections,
                r.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            )
        };
        let (was, now): (Vec<_>, Vec<_>) = (
            self.config.routed.iter().map(listener).collect(),
            new.routed.iter().map(listener).collect(),
        );
        if was != now {
            return Err(ReloadError::RoutedListeners);
        }
        let old = mem::replace(&mut self.config, new);
        if let Err(source) = self.apply_config() {
            // Not expected after the checks above (a map write failing): go back.
            self.config = old;
            let rollback = self.apply_config().err().map(Box::new);
            return Err(ReloadError::Apply {
                source: Box::new(source),
                rollback,
            });
        }
        let present: std::collections::HashSet<_> = self
            .config
            .vips
            .iter()
            .flat_map(|v| v.backends.iter().map(|b| super::core::key(v, b)))
            .collect();
        self.overrides.retain(|k, _| present.contains(k));
        crate::logging::follow_config(log_format);
        if let Err(e) = self.dp.set_log(dataplane_log) {
            tracing::warn!("switching the programs' log lines: {}", chain(&e));
        }
        Ok(Applied {
            services: self.config.vips.len(),
            backends: self.config.vips.iter().map(|v| v.backends.len()).sum(),
            kept,
        })
    }
}

/// What a reload applied.
#[derive(Debug)]
pub(super) struct Applied {
    services: usize,
    backends: usize,
    /// Changed keys that wait for the next start.
    kept: Vec<&'static str>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "applied: {} services, {} backends",
            self.services, self.backends
        )?;
        if !self.kept.is_empty() {
            write!(
                f,
                "; changed [agent] keys and [[vrrp]] take effect at the next start: {}",
                self.kept.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_time_keys_wait_for_the_next_start() {
        let text = |extra: &str| {
            format!(
                "[agent]\ninterfaces = [\"eth0\"]\n{extra}\n[[vip]]\nname = \"a\"\n\
                 address = \"198.18.1.10\"\nport = 80\nsnat_address = \"198.18.1.2\"\n\
                 [[vip.backend]]\naddress = \"198.18.1.11\"\n"
            )
        };
        let parse = |t: &str| {
            config::parse(t, std::path::Path::new("lb.toml"))
                .expect("config")
                .agent
        };
        let old = parse(&text(""));
        let new = parse(&text(
            "snat_port_range = \"2000-2999\"\nmanage_forwarding = false\nsocket_lb = false\n\
             [agent.timeouts]\nudp = \"5s\"",
        ));
        assert_eq!(
            restart_only(&old, &new),
            ["socket_lb", "manage_forwarding", "snat_port_range"]
        );
    }
}
