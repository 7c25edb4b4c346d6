//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::fmt::Write as _;

use crate::{
    status::{BackendStatus, Status, VipStatus, host_port},
    vrrp::{InstanceStatus, packet::Reject},
};

/// A label value escaped as the format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

struct Out<'s> {
    text: String,
    s: &'s Status,
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

impl<'s> Out<'s> {
    /// One metric family: its HELP and TYPE lines, then its samples.
    fn family<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(self.text, "{name} {value}");
            } else {
                let _ = writeln!(self.text, "{name}{{{}}} {value}", labels.join(","));
            }
        }
    }

    /// A family with one sample per VIP.
    fn per_vip(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&VipStatus) -> f64) {
        let s = self.s;
        self.family(
            name,
            kind,
            help,
            s.vips
                .iter()
                .map(|v| (vec![("vip", v.name.as_str())], value(v))),
        );
    }

    /// A family with samples per backend (`value` gives each backend's, by extra
    /// labels).
    fn per_backend(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&BackendStatus) -> Vec<(Option<(&'static str, &'static str)>, f64)>,
    ) {
        let s = self.s;
        let mut samples = Vec::new();
        for v in &s.vips {
            for b in &v.backends {
                let hp = host_port(&b.address, b.port);
                for (extra, x) in value(b) {
                    samples.push((v.name.as_str(), hp.clone(), extra, x));
                }
            }
        }
        self.family(
            name,
            kind,
            help,
            samples.iter().map(|(vip, hp, extra, x)| {
                let mut labels: Labels<'_> = vec![("vip", vip), ("backend", hp.as_str())];
                labels.extend(*extra);
                (labels, *x)
            }),
        );
    }

    /// A family with one sample per VRRP instance.
    fn per_instance(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&InstanceStatus) -> f64,
    ) {
        let s = self.s;
        self.family(
            name,
            kind,
            help,
            s.vrrp
                .iter()
                .map(|v| (vec![("vrrp_instance", v.name.as_str())], value(v))),
        );
    }
}

pub fn render(s: &Status) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
        s,
    };
    o.family(
        "lb_build_info",
        "gauge",
        "Build of the running agent.",
        [(vec![("version", s.version.as_str())], 1.0)],
    );
    o.family(
        "lb_dataplane_info",
        "gauge",
        "XDP attachment per interface (mode native, generic, or replaced: an earlier start's link).",
        s.interfaces.iter().map(|i| {
            (
                vec![("interface", i.name.as_str()), ("mode", i.mode.as_str())],
                1.0,
            )
        }),
    );
    o.family(
        "lb_dataplane_ready",
        "gauge",
        "1 while the data plane can forward; 0 with the reason on /ready and in `lb-agent status` (a forwarding sysctl off, route lookups failing).",
        [(vec![], flag(s.dataplane_problems.is_empty()))],
    );
    o.family(
        "lb_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
        [(vec![], s.uptime_s as f64)],
    );
    o.family(
        "lb_maps_adopted",
        "gauge",
        "1 if this start re-adopted maps pinned by an earlier agent.",
        [(vec![], flag(s.adopted))],
    );
    if let Some(r) = &s.last_reload {
        o.family(
            "lb_config_last_reload_success",
            "gauge",
            "1 if the last reload was applied.",
            [(vec![], flag(r.ok))],
        );
        o.family(
            "lb_config_last_reload_timestamp_seconds",
            "gauge",
            "When the last reload ran.",
            [(vec![], r.at_unix as f64)],
        );
    }
    o.family(
        "lb_dataplane_packets_total",
        "counter",
        "Packets by what the XDP and TC programs did and why (reason label); the sock_* reasons count connects and UDP sends of this node balanced by the socket programs.",
        s.counters
            .iter()
            .map(|c| (vec![("reason", c.name.as_str())], c.value as f64)),
    );
    o.per_vip(
        "lb_vip_packets_total",
        "counter",
        "Packets to the VIP forwarded to a backend.",
        |v| v.traffic.packets as f64,
    );
    o.per_vip(
        "lb_vip_bytes_total",
        "counter",
        "Bytes to the VIP forwarded to a backend.",
        |v| v.traffic.bytes as f64,
    );
    o.per_vip(
        "lb_vip_flows_total",
        "counter",
        "New flows to the VIP.",
        |v| v.traffic.new_flows as f64,
    );
    o.per_vip(
        "lb_vip_backends_up",
        "gauge",
        "Backends of the VIP taking new flows.",
        |v| v.up as f64,
    );
    o.per_vip("lb_vip_backends", "gauge", "Backends of the VIP.", |v| {
        v.total as f64
    });
    o.per_backend(
        "lb_backend_packets_total",
        "counter",
        "Packets forwarded to the backend.",
        |b| vec![(None, b.traffic.packets as f64)],
    );
    o.per_backend(
        "lb_backend_bytes_total",
        "counter",
        "Bytes forwarded to the backend.",
        |b| vec![(None, b.traffic.bytes as f64)],
    );
    o.per_backend(
        "lb_backend_flows_total",
        "counter",
        "New flows sent to the backend.",
        |b| vec![(None, b.traffic.new_flows as f64)],
    );
    o.per_backend(
        "lb_backend_up",
        "gauge",
        "Health: 1 up (or not checked), 0 down.",
        |b| vec![(None, flag(matches!(b.health.as_str(), "up" | "unchecked")))],
    );
    o.per_backend(
        "lb_backend_backup",
        "gauge",
        "1 for a backup backend (new flows only while no other backend of its VIP takes them).",
        |b| vec![(None, flag(b.backup))],
    );
    o.per_backend(
        "lb_backend_state",
        "gauge",
        "What the data plane does with the backend: 1 for its state (up, drain, down, standby: a backup held back).",
        |b| {
            ["up", "drain", "down", "standby"]
                .into_iter()
                .map(|st| (Some(("state", st)), flag(b.state == st)))
                .collect()
        },
    );
    o.per_backend(
        "lb_backend_check_duration_seconds",
        "gauge",
        "Duration of the last health check.",
        |b| {
            b.last_check
                .iter()
                .map(|c| (None, c.duration_ms / 1000.0))
                .collect()
        },
    );
    o.per_backend(
        "lb_backend_ring_slots",
        "gauge",
        "Entries of the VIP's Maglev ring pointing at the backend.",
        |b| vec![(None, f64::from(b.ring_slots))],
    );
    if s.flow_table.is_some() {
        flow_table(&mut o);
    }
    if !s.vrrp.is_empty() {
        vrrp(&mut o);
    }
    if s.sync.is_some() {
        sync(&mut o);
    }
    routed(&mut o);
    o.text
}

/// Flow sync with the other LB nodes.
fn routed(o: &mut Out<'_>) {
    let r = &o.s.routed;
    if r.is_empty() {
        return;
    }
    o.family(
        "lb_routed_connections_total",
        "counter",
        "Connections of a routed VIP (the proxy path) by outcome.",
        r.iter().flat_map(|v| {
            v.connections.iter().map(|(outcome, n)| {
                (
                    vec![("vip", v.name.as_str()), ("outcome", outcome.as_str())],
                    *n as f64,
                )
            })
        }),
    );
    o.family(
        "lb_routed_pool_connections_total",
        "counter",
        "Connections a routed VIP sent to a pool's backends.",
        r.iter().flat_map(|v| {
            v.pools.iter().map(|(pool, n)| {
                (
                    vec![("vip", v.name.as_str()), ("pool", pool.as_str())],
                    *n as f64,
                )
            })
        }),
    );
    o.family(
        "lb_routed_active_connections",
        "gauge",
        "Connections a routed VIP is proxying now.",
        r.iter()
            .map(|v| (vec![("vip", v.name.as_str())], v.active as f64)),
    );
}

fn sync(o: &mut Out<'_>) {
    let Some(y) = &o.s.sync else {
        return;
    };
    let total = |name: &str, help: &str, v: u64| (name.to_string(), help.to_string(), v);
    for (name, help, v) in [
        total(
            "lb_sync_messages_sent_total",
            "Flow sync messages sent.",
            y.messages_sent,
        ),
        total(
            "lb_sync_records_sent_total",
            "Flows sent to peers.",
            y.records_sent,
        ),
        total(
            "lb_sync_bytes_sent_total",
            "Bytes of flow sync sent.",
            y.bytes_sent,
        ),
        total(
            "lb_sync_messages_received_total",
            "Flow sync messages accepted.",
            y.messages_received,
        ),
        total(
            "lb_sync_records_learned_total",
            "Flows from peers written into this node's tables.",
            y.records_learned,
        ),
    ] {
        o.family(
            &name,
            "counter",
            &help,
            std::iter::once((Vec::new(), v as f64)),
        );
    }
    o.family(
        "lb_sync_messages_rejected_total",
        "counter",
        "Flow sync messages rejected, by reason (auth, replayed, stale, not_a_peer, length, ...).",
        y.rejected
            .iter()
            .map(|(r, n)| (vec![("reason", r.as_str())], *n as f64)),
    );
    o.family(
        "lb_sync_peer_last_heard_seconds",
        "gauge",
        "Seconds since the peer's last accepted message (its lag; absent: never heard).",
        y.peers.iter().filter_map(|p| {
            p.heard_s_ago
                .map(|s| (vec![("peer", p.address.as_str())], s as f64))
        }),
    );
}

fn flow_table(o: &mut Out<'_>) {
    let Some(f) = &o.s.flow_table else {
        return;
    };
    o.family(
        "lb_flow_table_capacity",
        "gauge",
        "Entries of the flow table and of the NAT binding table each (flow_table_size).",
        [(vec![], f64::from(f.capacity))],
    );
    o.family(
        "lb_flow_table_entries",
        "gauge",
        "Entries by table (flows, nat) and state at the last sweep: live ones by their \
         state, expired NAT bindings not yet deleted (free ports) as \"expired\".",
        f.flows_by_state
            .iter()
            .map(|(st, n)| (vec![("table", "flows"), ("state", st.as_str())], *n as f64))
            .chain(
                f.bindings_by_state
                    .iter()
                    .map(|(st, n)| (vec![("table", "nat"), ("state", st.as_str())], *n as f64)),
            )
            .chain(std::iter::once((
                vec![("table", "nat"), ("state", "expired")],
                f.bindings_expired as f64,
            ))),
    );
    o.family(
        "lb_flows_expired_total",
        "counter",
        "Expired entries removed by the agent's sweeps, by table and the state they expired in.",
        f.flows_removed
            .iter()
            .map(|(st, n)| (vec![("table", "flows"), ("state", st.as_str())], *n as f64))
            .chain(
                f.bindings_removed
                    .iter()
                    .map(|(st, n)| (vec![("table", "nat"), ("state", st.as_str())], *n as f64)),
            ),
    );
    o.family(
        "lb_nat_bindings",
        "gauge",
        "Live NAT bindings (ports in use) per SNAT address and backend, at the last sweep.",
        f.in_use.iter().map(|u| {
            (
                vec![("snat", u.snat.as_str()), ("backend", u.backend.as_str())],
                u.bindings as f64,
            )
        }),
    );
    o.family(
        "lb_nat_ports_per_backend",
        "gauge",
        "NAT ports a backend of the VIP can hold at once (SNAT addresses x snat_port_range).",
        f.nat
            .iter()
            .map(|c| (vec![("vip", c.vip.as_str())], c.per_backend as f64)),
    );
    o.family(
        "lb_nat_ports_per_address",
        "gauge",
        "NAT ports of one SNAT address towards one backend (the snat_port_range).",
        f.nat.first().map(|c| (vec![], f64::from(c.ports))),
    );
}

fn vrrp(o: &mut Out<'_>) {
    let s = o.s;
    o.family(
        "lb_vrrp_state",
        "gauge",
        "1 for the instance's state (INIT, BACKUP, MASTER, FAULT).",
        s.vrrp.iter().flat_map(|v| {
            ["INIT", "BACKUP", "MASTER", "FAULT"].into_iter().map(|st| {
                (
                    vec![("vrrp_instance", v.name.as_str()), ("state", st)],
                    flag(v.state == st),
                )
            })
        }),
    );
    o.per_instance(
        "lb_vrrp_priority",
        "gauge",
        "Effective priority (base adjusted by trackers).",
        |v| f64::from(v.priority),
    );
    o.family(
        "lb_vrrp_master_info",
        "gauge",
        "1, labelled with the master as last heard.",
        s.vrrp.iter().map(|v| {
            (
                vec![
                    ("vrrp_instance", v.name.as_str()),
                    ("master", v.master.as_str()),
                ],
                1.0,
            )
        }),
    );
    o.per_instance(
        "lb_vrrp_last_transition_timestamp_seconds",
        "gauge",
        "When the state last changed.",
        |v| v.last_transition_unix as f64,
    );
    o.per_instance(
        "lb_vrrp_transitions_total",
        "counter",
        "State changes.",
        |v| v.transitions as f64,
    );
    o.per_instance(
        "lb_vrrp_adverts_sent_total",
        "counter",
        "Advertisements sent.",
        |v| v.adverts_sent as f64,
    );
    o.per_instance(
        "lb_vrrp_adverts_received_total",
        "counter",
        "Advertisements accepted.",
        |v| v.adverts_received as f64,
    );
    o.family(
        "lb_vrrp_adverts_rejected_total",
        "counter",
        "Advertisements rejected, by reason.",
        s.vrrp.iter().flat_map(|v| {
            Reject::ALL.into_iter().map(|r| {
                let n = v.rejected.get(r.label()).copied().unwrap_or(0);
                (
                    vec![("vrrp_instance", v.name.as_str()), ("reason", r.label())],
                    n as f64,
                )
            })
        }),
    );
}

#[cfg(test)]
mod dashboard_tests {
    //! The Grafana dashboard (examples/grafana/lb-agent.json) against what `/metrics`
    //! exports: every metric a panel queries, and every label it selects or groups by
    //! (but Prometheus's own `instance` and `job`), must exist.

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::status::{
        BindingsInUse, CounterStatus, FlowTableStatus, InterfaceStatus, ReloadStatus, RoutedStatus,
        SyncPeerStatus, SyncStatus,
    };

    const DASHBOARD: &str = include_str!("../../../examples/grafana/lb-agent.json");

    /// A status with one of everything `/metrics` can show.
    fn everything() -> Status {
        let one = |k: &str| BTreeMap::from([(k.to_string(), 1)]);
        Status {
            version: "test".into(),
            interfaces: vec![InterfaceStatus {
                name: "eth0".into(),
                mode: "native".into(),
            }],
            counters: vec![CounterStatus {
                name: "fwd_to_backend".into(),
                ..CounterStatus::default()
            }],
            vips: vec![VipStatus {
                name: "web".into(),
                backends: vec![BackendStatus {
                    address: "198.18.1.11".into(),
                    port: 80,
                    last_check: Some(Default::default()),
                    ..BackendStatus::default()
                }],
                ..VipStatus::default()
            }],
            sync: Some(SyncStatus {
                peers: vec![SyncPeerStatus {
                    address: "198.18.1.2".into(),
                    heard_s_ago: Some(1),
                }],
                rejected: one("auth"),
                ..SyncStatus::default()
            }),
            last_reload: Some(ReloadStatus::default()),
            vrrp: vec![InstanceStatus {
                name: "vi_web".into(),
                state: "MASTER".into(),
                ..InstanceStatus::default()
            }],
            flow_table: Some(FlowTableStatus {
                flows_by_state: one("established"),
                bindings_by_state: one("established"),
                flows_removed: one("syn"),
                bindings_removed: one("syn"),
                in_use: vec![BindingsInUse {
                    snat: "198.18.1.1".into(),
                    backend: "198.18.1.11:80".into(),
                    bindings: 1,
                }],
                ..FlowTableStatus::default()
            }),
            routed: vec![RoutedStatus {
                name: "front".into(),
                pools: one("a"),
                connections: one("accepted"),
                ..RoutedStatus::default()
            }],
            ..Status::default()
        }
    }

    /// Every exported family with the label names its samples carry.
    fn exported() -> BTreeMap<String, BTreeSet<String>> {
        let text = render(&everything());
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                out.entry(name.to_string()).or_default();
            } else if !line.starts_with('#') {
                let (name, labels) = line.split_once('{').unwrap_or((line, ""));
                let name = name.split_whitespace().next().unwrap_or_default();
                let set = out.entry(name.to_string()).or_default();
                for pair in labels.split(',') {
                    if let Some((k, _)) = pair.split_once('=') {
                        set.insert(k.to_string());
                    }
                }
            }
        }
        out
    }

    /// Label names in `{a="x", b=~"y"}` or `(a, b)`.
    fn label_names(list: &str) -> Vec<String> {
        list.split(',')
            .filter_map(|p| {
                let k = p.split(['=', '!', '~']).next().unwrap_or_default().trim();
                (!k.is_empty()).then(|| k.to_string())
            })
            .collect()
    }

    /// Every PromQL expression of the dashboard.
    fn expressions() -> Vec<String> {
        let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
        let mut out = Vec::new();
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(t["expr"].as_str().expect("expr").to_string());
            }
        }
        out
    }

    #[test]
    fn every_metric_and_label_of_the_dashboard_is_exported() {
        let exported = exported();
        let prometheus = ["instance", "job"];
        let exprs = expressions();
        assert!(exprs.len() >= 20, "{} queries", exprs.len());
        let mut used = BTreeSet::new();
        for e in &exprs {
            // Metrics and their matchers.
            let mut metrics_here = Vec::new();
            let mut rest = e.as_str();
            while let Some(at) = rest.find("lb_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                let labels = exported
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} (in `{e}`) is not exported"));
                if let Some(m) = tail[end..].strip_prefix('{') {
                    let inside = m.split('}').next().unwrap_or_default();
                    for k in label_names(inside) {
                        assert!(
                            labels.contains(&k) || prometheus.contains(&k.as_str()),
                            "{name} has no label {k} (in `{e}`; it has {labels:?})"
                        );
                    }
                }
                used.insert(name.to_string());
                metrics_here.push(labels);
                rest = &tail[end..];
            }
            // Labels grouped by (or matched on) exist on a metric of the query.
            for kw in ["by (", "on ("] {
                for part in e.split(kw).skip(1) {
                    let inside = part.split(')').next().unwrap_or_default();
                    for k in label_names(inside) {
                        assert!(
                            prometheus.contains(&k.as_str())
                                || metrics_here.iter().any(|l| l.contains(&k)),
                            "no metric of `{e}` has the label {k}"
                        );
                    }
                }
            }
        }
        // The panels cover each part of the agent.
        for prefix in [
            "lb_dataplane_",
            "lb_vip_",
            "lb_backend_",
            "lb_vrrp_",
            "lb_sync_",
            "lb_flow",
            "lb_nat_",
            "lb_routed_",
        ] {
            assert!(
                used.iter().any(|m| m.starts_with(prefix)),
                "no panel shows {prefix}*"
            );
        }
    }
}
