//! What a config can carry, stated by check-config, the agent's log and its status:
//! for each NAT VIP, the concurrent flows one backend can take (every SNAT address
//! brings the whole port range), and the sustained rate of new flows that follows
//! when each closed flow keeps its port for the closed-flow lifetime. DSR and
//! node-local VIPs hold no ports: the flow table is their only bound.

use serde::{Deserialize, Serialize};

use super::Config;
use crate::service::Forwarding;

/// One NAT VIP's capacity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NatCapacity {
    pub vip: String,
    pub snat_addresses: usize,
    /// Ports per SNAT address (the `snat_port_range`).
    pub ports: u32,
    pub backends: usize,
    /// Concurrent flows per backend: SNAT addresses x ports.
    pub per_backend: u64,
    /// Concurrent flows for the VIP, at most the flow table.
    pub total: u64,
    /// New flows per second per backend, sustained, when clients close first
    /// (the closing lifetime) and when backends do (their TIME_WAIT lifetime).
    pub rate_client_close: f64,
    pub rate_backend_close: f64,
}

impl NatCapacity {
    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} SNAT address{} x {} ports = {} concurrent flows per backend ({} for its {} \
             backends); sustained new flows per backend: {:.0}/s when clients close first, \
             {:.0}/s when backends do",
            self.vip,
            self.snat_addresses,
            if self.snat_addresses == 1 { "" } else { "es" },
            self.ports,
            self.per_backend,
            self.total,
            self.backends,
            self.rate_client_close,
            self.rate_backend_close
        )
    }
}

/// Every NAT VIP's capacity under `c`.
pub fn nat(c: &Config) -> Vec<NatCapacity> {
    let ports = u32::from(*c.agent.snat_ports.end()) - u32::from(*c.agent.snat_ports.start()) + 1;
    c.vips
        .iter()
        .filter(|v| v.forwarding == Forwarding::Nat && !v.node_local())
        .map(|v| {
            let per_backend = v.snat_addresses.len() as u64 * u64::from(ports);
            let total =
                (per_backend * v.backends.len() as u64).min(u64::from(c.agent.flow_table_size));
            let rate = |d: std::time::Duration| per_backend as f64 / d.as_secs_f64().max(1e-3);
            NatCapacity {
                vip: v.name.clone(),
                snat_addresses: v.snat_addresses.len(),
                ports,
                backends: v.backends.len(),
                per_backend,
                total,
                rate_client_close: rate(v.timeouts.tcp_closing),
                rate_backend_close: rate(v.timeouts.tcp_time_wait),
            }
        })
        .collect()
}

/// The kernel's ephemeral port range of this network namespace.
pub fn ephemeral_ports() -> Option<std::ops::RangeInclusive<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    Some(it.next()?.ok()?..=it.next()?.ok()?)
}

/// Why `config`'s NAT source ports cannot be used beside this namespace's
/// ephemeral ports, if it has NAT VIPs and they cannot (routed VIPs, DSR and
/// node-local VIPs take no NAT ports).
pub fn snat_conflict(config: &Config) -> Option<String> {
    if config.vips.iter().all(|v| v.snat_addresses.is_empty()) {
        return None;
    }
    overlap(&config.agent.snat_ports, &ephemeral_ports()?)
}

/// Why `snat` cannot be used beside the kernel's `ephemeral` ports, if it cannot:
/// the node's own connections (health checks, its clients) take ephemeral ports, and
/// a NAT binding on the same port would take their replies.
pub fn overlap(
    snat: &std::ops::RangeInclusive<u16>,
    ephemeral: &std::ops::RangeInclusive<u16>,
) -> Option<String> {
    let (lo, hi) = (
        (*snat.start()).max(*ephemeral.start()),
        (*snat.end()).min(*ephemeral.end()),
    );
    (lo <= hi).then(|| {
        format!(
            "snat_port_range {}-{} overlaps the kernel's ephemeral ports {}-{} \
             (net.ipv4.ip_local_port_range): this node's own connections would meet NAT \
             bindings on ports {lo}-{hi}; move one of them",
            snat.start(),
            snat.end(),
            ephemeral.start(),
            ephemeral.end()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_named() {
        assert_eq!(overlap(&(1024..=32767), &(32768..=60999)), None);
        let e = overlap(&(1024..=40000), &(32768..=60999)).expect("overlap");
        assert!(e.contains("32768-40000"), "{e}");
    }
}
