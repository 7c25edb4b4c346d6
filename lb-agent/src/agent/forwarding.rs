//! What a stock host lacks for the data plane: per-interface forwarding.
//!
//! `bpf_fib_lookup` refuses to route for an interface that does not forward
//! (`BPF_FIB_LKUP_RET_FWD_DISABLED`), and stock Debian/Ubuntu hosts ship with
//! `net.ipv4.ip_forward = 0`. At start the agent turns forwarding on for the
//! interfaces it attaches to and the families its network VIPs use, nothing
//! host-wide, and logs each change once. On an interface whose IPv6 forwarding it
//! turns on, an `accept_ra` of 1 becomes 2: a forwarding interface would otherwise
//! stop accepting router advertisements, and with them its default route.
//! `manage_forwarding = false` only checks, and a missing setting stops the start
//! with the sysctl's name. Every refresh checks again (an operator may turn it off):
//! `/ready` answers 503 with the setting while it is off.

use std::path::PathBuf;

use super::AgentError;
use crate::config::Config;

/// The address families the data plane routes for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    /// Families of the config's network (not node-local) VIPs.
    pub fn of(config: &Config) -> Self {
        let network = config.vips.iter().filter(|v| !v.node_local());
        let mut f = Families::default();
        for v in network {
            f.v4 |= v.address.is_ipv4();
            f.v6 |= v.address.is_ipv6();
        }
        f
    }
}

/// One sysctl of one interface.
struct Setting {
    /// `net.ipv4.conf.eth0.forwarding`, as `sysctl` names it.
    name: String,
    path: PathBuf,
}

impl Setting {
    fn new(family: &str, iface: &str, key: &str) -> Self {
        Self {
            name: format!("net.{family}.conf.{}.{key}", iface.replace('.', "/")),
            path: PathBuf::from(format!("/proc/sys/net/{family}/conf/{iface}/{key}")),
        }
    }

    fn read(&self) -> Result<String, AgentError> {
        std::fs::read_to_string(&self.path)
            .map(|v| v.trim().to_string())
            .map_err(|e| AgentError::Sysctl {
                name: self.name.clone(),
                why: format!("cannot read {}: {e}", self.path.display()),
            })
    }

    fn write(&self, value: &str) -> Result<(), AgentError> {
        std::fs::write(&self.path, value).map_err(|e| AgentError::Sysctl {
            name: self.name.clone(),
            why: format!(
                "cannot set it to {value} ({e}); set it yourself (sysctl -w {}={value}) or \
                 give the agent a writable /proc/sys",
                self.name
            ),
        })
    }
}

/// (interface, family, its forwarding setting) for every pair the data plane needs.
fn forwarding_settings(
    interfaces: &[String],
    families: Families,
) -> Vec<(&str, &'static str, Setting)> {
    let mut out = Vec::new();
    for iface in interfaces {
        for (family, needed) in [("ipv4", families.v4), ("ipv6", families.v6)] {
            if needed {
                out.push((
                    iface.as_str(),
                    family,
                    Setting::new(family, iface, "forwarding"),
                ));
            }
        }
    }
    out
}

/// Turns forwarding on where the data plane needs it (`manage`), or checks that it
/// is. Returns the changes made, one line each, for the log.
pub fn prepare(
    interfaces: &[String],
    families: Families,
    manage: bool,
) -> Result<Vec<String>, AgentError> {
    let mut changes = Vec::new();
    for (iface, family, s) in forwarding_settings(interfaces, families) {
        if s.read()? == "1" {
            continue;
        }
        if !manage {
            return Err(AgentError::Sysctl {
                name: s.name.clone(),
                why: format!(
                    "is 0, and the XDP program cannot route packets arriving on an interface \
                     that does not forward; set it (sysctl -w {}=1) or manage_forwarding = true",
                    s.name
                ),
            });
        }
        if family == "ipv6" {
            // Keep router advertisements (and the default route they bring) coming.
            let ra = Setting::new("ipv6", iface, "accept_ra");
            if ra.read()? == "1" {
                ra.write("2")?;
                changes.push(format!(
                    "{} = 2 (was 1: a forwarding interface ignores router \
                     advertisements otherwise)",
                    ra.name
                ));
            }
        }
        s.write("1")?;
        changes.push(format!(
            "{} = 1 (was 0: the XDP program routes to backends with bpf_fib_lookup, which \
             needs it)",
            s.name
        ));
    }
    Ok(changes)
}

/// Settings that are off although the data plane needs them (for `/ready`).
pub fn missing(interfaces: &[String], families: Families) -> Vec<String> {
    forwarding_settings(interfaces, families)
        .into_iter()
        .filter_map(|(_, _, s)| match s.read() {
            Ok(v) if v == "1" => None,
            Ok(_) => Some(format!(
                "{} is 0: packets to remote backends are dropped",
                s.name
            )),
            Err(e) => Some(e.to_string()),
        })
        .collect()
}
