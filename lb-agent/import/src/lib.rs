//! `lb-agent import`: an existing HAProxy + keepalived setup converted into an
//! lb-agent config. A crate of its own (`lb-import`): builds and tests without the eBPF
//! toolchain (`cargo test -p lb-import`).
//!
//! HAProxy frontends/listens in mode tcp become `[[vip]]` (one per bind) with the
//! backend's servers and health check; its stats listener becomes `[agent]
//! api_listen` and `stats_auth`. keepalived's `vrrp_instance`/`vrrp_script` become
//! `[[vrrp]]`/`[[vrrp.track]]`, its `virtual_server`s more `[[vip]]`. Everything the
//! inputs say that the config does not express is a warning naming the file and
//! line; what stops the import (a server given by hostname, a bind without address
//! and no VIP to use) is an error. The result is meant to pass
//! `lb_config::parse`: `Imported::check` runs it.

mod assemble;
mod check_rules;
mod emit;
mod haproxy;
mod ipvs;
mod keepalived;
mod model;
mod proxy;
mod routed;
mod routing;
mod server;
mod service;
mod stats;
mod sync_group;
mod vrrp;
mod warning;

use std::{fmt, net::IpAddr, path::Path};

use lb_config::{self as config, Config, ConfigErrors};
pub use warning::{Diagnostic, Severity};

/// One input file: its name as given (used in messages and comments) and text.
#[derive(Clone, Debug)]
pub struct Input {
    pub file: String,
    pub text: String,
}

/// What the inputs do not say, from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--interface`: [agent] interfaces (else the VRRP instances').
    pub interfaces: Vec<String>,
    /// `--snat-address`: per family, for NAT VIPs (else keepalived's unicast_src_ip).
    pub snat_addresses: Vec<IpAddr>,
    /// `--vip`: the address of binds that have none (else keepalived's virtual address).
    pub vips: Vec<IpAddr>,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub vips: usize,
    pub backends: usize,
    pub vrrp_instances: usize,
    pub warnings: usize,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, {}, {}",
            plural(self.vips, "VIP", "VIPs"),
            plural(self.backends, "backend", "backends"),
            plural(self.vrrp_instances, "VRRP instance", "VRRP instances"),
            plural(self.warnings, "warning", "warnings"),
        )
    }
}

/// A converted config.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The TOML text.
    pub config: String,
    pub warnings: Vec<Diagnostic>,
    pub summary: Summary,
}

impl Imported {
    /// Our own config check on the generated text (named `file` in errors).
    pub fn check(&self, file: &Path) -> Result<Config, ConfigErrors> {
        config::parse(&self.config, file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("nothing to import: pass --haproxy FILE, --keepalived FILE or both")]
    NoInput,
    #[error("{} error(s) in the input{}: no config generated", errors.len(), if warnings.is_empty() { String::new() } else { format!(" (and {} warning(s))", warnings.len()) })]
    Inputs {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
}

/// Converts the inputs (either may be missing, not both).
pub fn convert(
    haproxy_input: Option<&Input>,
    keepalived_input: Option<&Input>,
    opts: &Options,
) -> Result<Imported, ImportError> {
    if haproxy_input.is_none() && keepalived_input.is_none() {
        return Err(ImportError::NoInput);
    }
    let mut d = warning::Diagnostics::default();
    for input in [haproxy_input, keepalived_input].into_iter().flatten() {
        unrendered(input, &mut d);
    }
    if d.has_errors() {
        let (warnings, errors) = d.split();
        return Err(ImportError::Inputs { errors, warnings });
    }
    let mut services = Vec::new();
    let mut stats = None;
    let mut sources = Vec::new();
    if let Some(h) = haproxy_input {
        sources.push(h.file.clone());
        let sections = haproxy::parse(&h.text, &h.file, &mut d);
        let parsed = proxy::read(&sections, &h.file, &mut d);
        services = service::services(&parsed, &h.file, &mut d);
        stats = parsed.stats;
    }
    let mut instances = Vec::new();
    if let Some(k) = keepalived_input {
        sources.push(k.file.clone());
        let nodes = keepalived::parse(&k.text, &k.file, &mut d);
        let read = vrrp::read(&nodes, &k.file, &mut d);
        services.extend(read.services);
        instances = read.instances;
    }
    let haproxy_file = haproxy_input.map_or("", |h| h.file.as_str());
    let mut plan = assemble::plan(
        services,
        stats,
        instances,
        keepalived_input.is_some(),
        haproxy_file,
        opts,
        &mut d,
    );
    plan.sources = sources;
    // By file (haproxy.cfg, then keepalived.conf, then those of no file) and line.
    let rank = |x: &Diagnostic| -> (usize, usize) {
        let file = x.file.as_deref();
        let i = if file.is_some() && file == haproxy_input.map(|h| h.file.as_str()) {
            0
        } else if file.is_some() {
            1
        } else {
            2
        };
        (i, x.line)
    };
    if d.has_errors() {
        let (mut warnings, mut errors) = d.split();
        warnings.sort_by_key(rank);
        errors.sort_by_key(rank);
        return Err(ImportError::Inputs { errors, warnings });
    }
    let summary = Summary {
        vips: plan.vips.len(),
        backends: plan
            .vips
            .iter()
            .map(|v| {
                v.backends.len()
                    + v.routing
                        .iter()
                        .flat_map(|r| &r.pools)
                        .map(|p| p.backends.len())
                        .sum::<usize>()
            })
            .sum(),
        vrrp_instances: plan.vrrp.len(),
        warnings: d.warning_count(),
    };
    let (mut warnings, _) = d.split();
    warnings.sort_by_key(rank);
    Ok(Imported {
        config: emit::toml(&plan),
        warnings,
        summary,
    })
}

/// A template not rendered yet (Jinja2 markers): one error naming its lines.
fn unrendered(input: &Input, d: &mut warning::Diagnostics) {
    let lines: Vec<usize> = input
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| ["{{", "{%", "{#"].iter().any(|m| l.contains(m)))
        .map(|(i, _)| i + 1)
        .collect();
    if let Some(first) = lines.first() {
        let all: Vec<String> = lines.iter().map(ToString::to_string).collect();
        d.error(
            warning::Loc {
                file: &input.file,
                line: *first,
            },
            format!(
                "this is an unrendered template (Jinja2 `{{{{ }}}}`/`{{% %}}` markers at line(s) {}): render it first, as Ansible's template module does for each host, and import the rendered file",
                all.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests;
