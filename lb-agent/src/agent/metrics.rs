//! `/metrics`: the published [`Status`] as metric families, encoded by
//! prometheus-client at each scrape (a [`Collector`] over the status the owner task
//! published last): OpenMetrics text for a scraper that asks for it, else the same
//! families without the OpenMetrics `# EOF` (Prometheus' text format 0.0.4).

use std::{fmt::Write as _, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, MetricEncoder, NoLabelSet,
        text::{encode_eof, encode_registry},
    },
    metrics::MetricType,
    registry::Registry,
};

use crate::{
    status::{BackendStatus, Status, VipStatus, host_port},
    vrrp::{InstanceStatus, packet::Reject},
};

/// The content type of each exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value, escaped as both formats ask (prometheus-client writes values
/// as given).
#[derive(Clone, Copy, Debug)]
struct Text<'a>(&'a str);

impl EncodeLabelValue for Text<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A sample's value: integers printed as integers, measurements as decimals.
#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    Int(u64),
    Real(f64),
}

impl From<u64> for V {
    fn from(v: u64) -> Self {
        V::Int(v)
    }
}

impl From<usize> for V {
    fn from(v: usize) -> Self {
        V::Int(v as u64)
    }
}

impl From<u32> for V {
    fn from(v: u32) -> Self {
        V::Int(u64::from(v))
    }
}

impl From<u16> for V {
    fn from(v: u16) -> Self {
        V::Int(u64::from(v))
    }
}

impl From<u8> for V {
    fn from(v: u8) -> Self {
        V::Int(u64::from(v))
    }
}

impl From<f64> for V {
    fn from(v: f64) -> Self {
        V::Real(v)
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

use Kind::{Counter, Gauge};

struct Out<'s, 'e> {
    enc: DescriptorEncoder<'e>,
    s: &'s Status,
    /// The first encoding error (writing to a String: none expected).
    failed: Option<std::fmt::Error>,
}

fn flag(b: bool) -> u64 {
    u64::from(b)
}

impl<'s> Out<'s, '_> {
    /// One metric family: its descriptor, then its samples. A counter's name is
    /// given with its `_total`, as its samples carry it.
    fn family<'a, T: Into<V>>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, T)>,
    ) {
        if self.failed.is_none()
            && let Err(e) = self.encode(name, kind, help, samples)
        {
            self.failed = Some(e);
        }
    }

    fn encode<'a, T: Into<V>>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, T)>,
    ) -> Result<(), std::fmt::Error> {
        let (base, ty) = match kind {
            Counter => (
                name.strip_suffix("_total").unwrap_or(name),
                MetricType::Counter,
            ),
            Gauge => (name, MetricType::Gauge),
        };
        let mut family = self.enc.encode_descriptor(base, help, None, ty)?;
        for (labels, value) in samples {
            let labels: Vec<(&str, Text<'_>)> = labels.iter().map(|(k, v)| (*k, Text(v))).collect();
            // No labels: the bare name (a family's encoder would write `{}`).
            if labels.is_empty() {
                sample(&mut family, kind, value.into())?;
            } else {
                sample(&mut family.encode_family(&labels)?, kind, value.into())?;
            }
        }
        Ok(())
    }

    /// A family with one sample per VIP.
    fn per_vip<T: Into<V>>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        value: impl Fn(&VipStatus) -> T,
    ) {
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
        kind: Kind,
        help: &str,
        value: impl Fn(&BackendStatus) -> Vec<(Option<(&'static str, &'static str)>, V)>,
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
    fn per_instance<T: Into<V>>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        value: impl Fn(&InstanceStatus) -> T,
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

fn sample(m: &mut MetricEncoder<'_>, kind: Kind, value: V) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Counter, V::Int(v)) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Counter, V::Real(v)) => m.encode_counter::<NoLabelSet, _, f64>(&v, None),
        (Gauge, V::Int(v)) => m.encode_gauge(&v),
        (Gauge, V::Real(v)) => m.encode_gauge(&v),
    }
}

/// The published status as prometheus-client sees it at a scrape.
#[derive(Debug)]
struct Snapshot(Arc<Status>);

impl Collector for Snapshot {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut o = Out {
            enc,
            s: &self.0,
            failed: None,
        };
        families(&mut o);
        o.failed.map_or(Ok(()), Err)
    }
}

/// `/metrics`' body for `status`: OpenMetrics (with its `# EOF`) or the 0.0.4 text.
pub fn render(status: &Arc<Status>, openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(Arc::clone(status))));
    let mut text = String::with_capacity(8192);
    // Writing to a String cannot fail; an encoder's error leaves what was written.
    let _ = encode_registry(&mut text, &registry);
    if openmetrics {
        let _ = encode_eof(&mut text);
    }
    text
}

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|t| {
            let mut parts = t.split(';').map(str::trim);
            let kind = parts.next().unwrap_or_default();
            // A media range with q=0 is refused.
            kind.eq_ignore_ascii_case("application/openmetrics-text")
                && !parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0")
        })
    })
}

fn families(o: &mut Out<'_, '_>) {
    let s = o.s;
    o.family(
        "lb_build_info",
        Gauge,
        "Build of the running agent.",
        [(vec![("version", s.version.as_str())], 1u64)],
    );
    o.family(
        "lb_dataplane_info",
        Gauge,
        "XDP attachment per interface (mode native, generic, or replaced: an earlier start's link).",
        s.interfaces.iter().map(|i| {
            (
                vec![("interface", i.name.as_str()), ("mode", i.mode.as_str())],
                1u64,
            )
        }),
    );
    o.family(
        "lb_dataplane_ready",
        Gauge,
        "1 while the data plane can forward; 0 with the reason on /ready and in `lb-agent status` (a forwarding sysctl off, route lookups failing).",
        [(vec![], flag(s.dataplane_problems.is_empty()))],
    );
    o.family(
        "lb_uptime_seconds",
        Gauge,
        "Seconds since the agent started.",
        [(vec![], s.uptime_s)],
    );
    o.family(
        "lb_maps_adopted",
        Gauge,
        "1 if this start re-adopted maps pinned by an earlier agent.",
        [(vec![], flag(s.adopted))],
    );
    if let Some(r) = &s.last_reload {
        o.family(
            "lb_config_last_reload_success",
            Gauge,
            "1 if the last reload was applied.",
            [(vec![], flag(r.ok))],
        );
        o.family(
            "lb_config_last_reload_timestamp_seconds",
            Gauge,
            "When the last reload ran.",
            [(vec![], r.at_unix)],
        );
    }
    o.family(
        "lb_dataplane_packets_total",
        Counter,
        "Packets by what the XDP and TC programs did and why (reason label); the sock_* reasons count connects and UDP sends of this node balanced by the socket programs.",
        s.counters
            .iter()
            .map(|c| (vec![("reason", c.name.as_str())], c.value)),
    );
    o.per_vip(
        "lb_vip_packets_total",
        Counter,
        "Packets to the VIP forwarded to a backend.",
        |v| v.traffic.packets,
    );
    o.per_vip(
        "lb_vip_bytes_total",
        Counter,
        "Bytes to the VIP forwarded to a backend.",
        |v| v.traffic.bytes,
    );
    o.per_vip(
        "lb_vip_flows_total",
        Counter,
        "New flows to the VIP.",
        |v| v.traffic.new_flows,
    );
    o.per_vip(
        "lb_vip_backends_up",
        Gauge,
        "Backends of the VIP taking new flows.",
        |v| v.up,
    );
    o.per_vip("lb_vip_backends", Gauge, "Backends of the VIP.", |v| {
        v.total
    });
    o.per_backend(
        "lb_backend_packets_total",
        Counter,
        "Packets forwarded to the backend.",
        |b| vec![(None, V::from(b.traffic.packets))],
    );
    o.per_backend(
        "lb_backend_bytes_total",
        Counter,
        "Bytes forwarded to the backend.",
        |b| vec![(None, V::from(b.traffic.bytes))],
    );
    o.per_backend(
        "lb_backend_flows_total",
        Counter,
        "New flows sent to the backend.",
        |b| vec![(None, V::from(b.traffic.new_flows))],
    );
    o.per_backend(
        "lb_backend_up",
        Gauge,
        "Health: 1 up (or not checked), 0 down.",
        |b| {
            vec![(
                None,
                V::from(flag(matches!(b.health.as_str(), "up" | "unchecked"))),
            )]
        },
    );
    o.per_backend(
        "lb_backend_backup",
        Gauge,
        "1 for a backup backend (new flows only while no other backend of its VIP takes them).",
        |b| vec![(None, V::from(flag(b.backup)))],
    );
    o.per_backend(
        "lb_backend_state",
        Gauge,
        "What the data plane does with the backend: 1 for its state (up, drain, down, standby: a backup held back).",
        |b| {
            ["up", "drain", "down", "standby"]
                .into_iter()
                .map(|st| (Some(("state", st)), V::from(flag(b.state == st))))
                .collect()
        },
    );
    o.per_backend(
        "lb_backend_check_duration_seconds",
        Gauge,
        "Duration of the last health check.",
        |b| {
            b.last_check
                .iter()
                .map(|c| (None, V::from(c.duration_ms / 1000.0)))
                .collect()
        },
    );
    o.per_backend(
        "lb_backend_ring_slots",
        Gauge,
        "Entries of the VIP's Maglev ring pointing at the backend.",
        |b| vec![(None, V::from(b.ring_slots))],
    );
    if s.flow_table.is_some() {
        flow_table(o);
    }
    if !s.vrrp.is_empty() {
        vrrp(o);
    }
    if s.sync.is_some() {
        sync(o);
    }
    routed(o);
}

/// Flow sync with the other LB nodes.
fn routed(o: &mut Out<'_, '_>) {
    let r = &o.s.routed;
    if r.is_empty() {
        return;
    }
    o.family(
        "lb_routed_connections_total",
        Counter,
        "Connections of a routed VIP (the proxy path) by outcome.",
        r.iter().flat_map(|v| {
            v.connections.iter().map(|(outcome, n)| {
                (
                    vec![("vip", v.name.as_str()), ("outcome", outcome.as_str())],
                    *n,
                )
            })
        }),
    );
    o.family(
        "lb_routed_pool_connections_total",
        Counter,
        "Connections a routed VIP sent to a pool's backends.",
        r.iter().flat_map(|v| {
            v.pools
                .iter()
                .map(|(pool, n)| (vec![("vip", v.name.as_str()), ("pool", pool.as_str())], *n))
        }),
    );
    o.family(
        "lb_routed_active_connections",
        Gauge,
        "Connections a routed VIP is proxying now.",
        r.iter().map(|v| (vec![("vip", v.name.as_str())], v.active)),
    );
}

fn sync(o: &mut Out<'_, '_>) {
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
        o.family(&name, Counter, &help, std::iter::once((Vec::new(), v)));
    }
    o.family(
        "lb_sync_messages_rejected_total",
        Counter,
        "Flow sync messages rejected, by reason (auth, replayed, stale, not_a_peer, length, ...).",
        y.rejected
            .iter()
            .map(|(r, n)| (vec![("reason", r.as_str())], *n)),
    );
    o.family(
        "lb_sync_peer_last_heard_seconds",
        Gauge,
        "Seconds since the peer's last accepted message (its lag; absent: never heard).",
        y.peers.iter().filter_map(|p| {
            p.heard_s_ago
                .map(|s| (vec![("peer", p.address.as_str())], s))
        }),
    );
}

fn flow_table(o: &mut Out<'_, '_>) {
    let Some(f) = &o.s.flow_table else {
        return;
    };
    o.family(
        "lb_flow_table_capacity",
        Gauge,
        "Entries of the flow table and of the NAT binding table each (flow_table_size).",
        [(vec![], f.capacity)],
    );
    o.family(
        "lb_flow_table_entries",
        Gauge,
        "Entries by table (flows, nat) and state at the last sweep: live ones by their \
         state, expired NAT bindings not yet deleted (free ports) as \"expired\".",
        f.flows_by_state
            .iter()
            .map(|(st, n)| (vec![("table", "flows"), ("state", st.as_str())], *n))
            .chain(
                f.bindings_by_state
                    .iter()
                    .map(|(st, n)| (vec![("table", "nat"), ("state", st.as_str())], *n)),
            )
            .chain(std::iter::once((
                vec![("table", "nat"), ("state", "expired")],
                f.bindings_expired,
            ))),
    );
    o.family(
        "lb_flows_expired_total",
        Counter,
        "Expired entries removed by the agent's sweeps, by table and the state they expired in.",
        f.flows_removed
            .iter()
            .map(|(st, n)| (vec![("table", "flows"), ("state", st.as_str())], *n))
            .chain(
                f.bindings_removed
                    .iter()
                    .map(|(st, n)| (vec![("table", "nat"), ("state", st.as_str())], *n)),
            ),
    );
    o.family(
        "lb_nat_bindings",
        Gauge,
        "Live NAT bindings (ports in use) per SNAT address and backend, at the last sweep.",
        f.in_use.iter().map(|u| {
            (
                vec![("snat", u.snat.as_str()), ("backend", u.backend.as_str())],
                u.bindings,
            )
        }),
    );
    o.family(
        "lb_nat_ports_per_backend",
        Gauge,
        "NAT ports a backend of the VIP can hold at once (SNAT addresses x snat_port_range).",
        f.nat
            .iter()
            .map(|c| (vec![("vip", c.vip.as_str())], c.per_backend)),
    );
    o.family(
        "lb_nat_ports_per_address",
        Gauge,
        "NAT ports of one SNAT address towards one backend (the snat_port_range).",
        f.nat.first().map(|c| (vec![], c.ports)),
    );
}

fn vrrp(o: &mut Out<'_, '_>) {
    let s = o.s;
    o.family(
        "lb_vrrp_state",
        Gauge,
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
        Gauge,
        "Effective priority (base adjusted by trackers).",
        |v| v.priority,
    );
    o.family(
        "lb_vrrp_master_info",
        Gauge,
        "1, labelled with the master as last heard.",
        s.vrrp.iter().map(|v| {
            (
                vec![
                    ("vrrp_instance", v.name.as_str()),
                    ("master", v.master.as_str()),
                ],
                1u64,
            )
        }),
    );
    o.per_instance(
        "lb_vrrp_last_transition_timestamp_seconds",
        Gauge,
        "When the state last changed.",
        |v| v.last_transition_unix,
    );
    o.per_instance(
        "lb_vrrp_transitions_total",
        Counter,
        "State changes.",
        |v| v.transitions,
    );
    o.per_instance(
        "lb_vrrp_adverts_sent_total",
        Counter,
        "Advertisements sent.",
        |v| v.adverts_sent,
    );
    o.per_instance(
        "lb_vrrp_adverts_received_total",
        Counter,
        "Advertisements accepted.",
        |v| v.adverts_received,
    );
    o.family(
        "lb_vrrp_adverts_rejected_total",
        Counter,
        "Advertisements rejected, by reason.",
        s.vrrp.iter().flat_map(|v| {
            Reject::ALL.into_iter().map(|r| {
                let n = v.rejected.get(r.label()).copied().unwrap_or(0);
                (
                    vec![("vrrp_instance", v.name.as_str()), ("reason", r.label())],
                    n,
                )
            })
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::BackendStatus;

    fn status() -> Arc<Status> {
        Arc::new(Status {
            version: "v\"1\\2\n".into(),
            vips: vec![VipStatus {
                name: "web".into(),
                up: 2,
                backends: vec![BackendStatus {
                    address: "2001:db8::11".into(),
                    port: 80,
                    health: "down".into(),
                    ..BackendStatus::default()
                }],
                ..VipStatus::default()
            }],
            ..Status::default()
        })
    }

    #[test]
    fn families_in_both_formats() {
        let om = render(&status(), true);
        let text = render(&status(), false);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(!text.contains("# EOF"), "{text}");
        assert_eq!(om.trim_end_matches("# EOF\n"), text);
        for want in [
            "# TYPE lb_vip_packets counter\n",
            "lb_vip_packets_total{vip=\"web\"} 0\n",
            "# TYPE lb_vip_backends_up gauge\n",
            "lb_vip_backends_up{vip=\"web\"} 2\n",
            "# TYPE lb_uptime_seconds gauge\nlb_uptime_seconds 0\n",
            "lb_backend_up{vip=\"web\",backend=\"[2001:db8::11]:80\"} 0\n",
            // A label value escaped as the formats ask.
            "lb_build_info{version=\"v\\\"1\\\\2\\n\"} 1\n",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }

    #[test]
    fn openmetrics_when_the_scraper_asks_for_it() {
        // Prometheus' own Accept header.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(Some("Application/OpenMetrics-Text")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text; q=0"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
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
        let text = render(&Arc::new(everything()), true);
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
