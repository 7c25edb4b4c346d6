//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::fmt::Write;

use crate::status::{Status, host_port};

/// A label value escaped as the format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

pub fn render(s: &Status) -> String {
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };
    f.head("lb_build_info", "gauge", "Build of the running agent.");
    f.sample("lb_build_info", &[("version", &s.version)], 1.0);
    f.head(
        "lb_dataplane_info",
        "gauge",
        "XDP attachment per interface (mode native, generic, or replaced: an earlier start's link).",
    );
    for i in &s.interfaces {
        f.sample(
            "lb_dataplane_info",
            &[("interface", &i.name), ("mode", &i.mode)],
            1.0,
        );
    }
    f.head(
        "lb_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    f.sample("lb_uptime_seconds", &[], s.uptime_s as f64);
    f.head(
        "lb_maps_adopted",
        "gauge",
        "1 if this start re-adopted maps pinned by an earlier agent.",
    );
    f.sample("lb_maps_adopted", &[], f64::from(u8::from(s.adopted)));
    if let Some(r) = &s.last_reload {
        f.head(
            "lb_config_last_reload_success",
            "gauge",
            "1 if the last reload was applied.",
        );
        f.sample(
            "lb_config_last_reload_success",
            &[],
            f64::from(u8::from(r.ok)),
        );
        f.head(
            "lb_config_last_reload_timestamp_seconds",
            "gauge",
            "When the last reload ran.",
        );
        f.sample(
            "lb_config_last_reload_timestamp_seconds",
            &[],
            r.at_unix as f64,
        );
    }
    f.head(
        "lb_dataplane_packets_total",
        "counter",
        "Packets by what the XDP program did and why (reason label).",
    );
    for c in &s.counters {
        f.sample(
            "lb_dataplane_packets_total",
            &[("reason", &c.name)],
            c.value as f64,
        );
    }
    let vip_families: [(&str, &str, &str); 3] = [
        (
            "lb_vip_packets_total",
            "counter",
            "Packets to the VIP forwarded to a backend.",
        ),
        (
            "lb_vip_bytes_total",
            "counter",
            "Bytes to the VIP forwarded to a backend.",
        ),
        ("lb_vip_flows_total", "counter", "New flows to the VIP."),
    ];
    for (i, (name, kind, help)) in vip_families.iter().enumerate() {
        f.head(name, kind, help);
        for v in &s.vips {
            let value = [v.traffic.packets, v.traffic.bytes, v.traffic.new_flows][i];
            f.sample(name, &[("vip", &v.name)], value as f64);
        }
    }
    f.head(
        "lb_vip_backends_up",
        "gauge",
        "Backends of the VIP taking new flows.",
    );
    for v in &s.vips {
        f.sample("lb_vip_backends_up", &[("vip", &v.name)], v.up as f64);
    }
    f.head("lb_vip_backends", "gauge", "Backends of the VIP.");
    for v in &s.vips {
        f.sample("lb_vip_backends", &[("vip", &v.name)], v.total as f64);
    }
    let backend_families: [(&str, &str, &str); 3] = [
        (
            "lb_backend_packets_total",
            "counter",
            "Packets forwarded to the backend.",
        ),
        (
            "lb_backend_bytes_total",
            "counter",
            "Bytes forwarded to the backend.",
        ),
        (
            "lb_backend_flows_total",
            "counter",
            "New flows sent to the backend.",
        ),
    ];
    for (i, (name, kind, help)) in backend_families.iter().enumerate() {
        f.head(name, kind, help);
        for v in &s.vips {
            for b in &v.backends {
                let hp = host_port(&b.address, b.port);
                let value = [b.traffic.packets, b.traffic.bytes, b.traffic.new_flows][i];
                f.sample(name, &[("vip", &v.name), ("backend", &hp)], value as f64);
            }
        }
    }
    f.head(
        "lb_backend_up",
        "gauge",
        "Health: 1 up (or not checked), 0 down.",
    );
    for v in &s.vips {
        for b in &v.backends {
            let hp = host_port(&b.address, b.port);
            let up = matches!(b.health.as_str(), "up" | "unchecked");
            f.sample(
                "lb_backend_up",
                &[("vip", &v.name), ("backend", &hp)],
                f64::from(u8::from(up)),
            );
        }
    }
    f.head(
        "lb_backend_state",
        "gauge",
        "What the data plane does with the backend: 1 for its state (up, drain, down).",
    );
    for v in &s.vips {
        for b in &v.backends {
            let hp = host_port(&b.address, b.port);
            for state in ["up", "drain", "down"] {
                f.sample(
                    "lb_backend_state",
                    &[("vip", &v.name), ("backend", &hp), ("state", state)],
                    f64::from(u8::from(b.state == state)),
                );
            }
        }
    }
    f.head(
        "lb_backend_check_duration_seconds",
        "gauge",
        "Duration of the last health check.",
    );
    for v in &s.vips {
        for b in &v.backends {
            if let Some(c) = &b.last_check {
                let hp = host_port(&b.address, b.port);
                f.sample(
                    "lb_backend_check_duration_seconds",
                    &[("vip", &v.name), ("backend", &hp)],
                    c.duration_ms / 1000.0,
                );
            }
        }
    }
    f.head(
        "lb_backend_ring_slots",
        "gauge",
        "Entries of the VIP's Maglev ring pointing at the backend.",
    );
    for v in &s.vips {
        for b in &v.backends {
            let hp = host_port(&b.address, b.port);
            f.sample(
                "lb_backend_ring_slots",
                &[("vip", &v.name), ("backend", &hp)],
                f64::from(b.ring_slots),
            );
        }
    }
    vrrp(&mut f, s);
    out
}

fn vrrp(f: &mut Family<'_>, s: &Status) {
    if s.vrrp.is_empty() {
        return;
    }
    f.head(
        "lb_vrrp_state",
        "gauge",
        "1 for the instance's state (INIT, BACKUP, MASTER, FAULT).",
    );
    for v in &s.vrrp {
        for state in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            f.sample(
                "lb_vrrp_state",
                &[("instance", &v.name), ("state", state)],
                f64::from(u8::from(v.state == state)),
            );
        }
    }
    f.head(
        "lb_vrrp_priority",
        "gauge",
        "Effective priority (base adjusted by trackers).",
    );
    for v in &s.vrrp {
        f.sample(
            "lb_vrrp_priority",
            &[("instance", &v.name)],
            f64::from(v.priority),
        );
    }
    f.head(
        "lb_vrrp_master_info",
        "gauge",
        "1, labelled with the master as last heard.",
    );
    for v in &s.vrrp {
        f.sample(
            "lb_vrrp_master_info",
            &[("instance", &v.name), ("master", &v.master)],
            1.0,
        );
    }
    f.head(
        "lb_vrrp_last_transition_timestamp_seconds",
        "gauge",
        "When the state last changed.",
    );
    for v in &s.vrrp {
        f.sample(
            "lb_vrrp_last_transition_timestamp_seconds",
            &[("instance", &v.name)],
            v.last_transition_unix as f64,
        );
    }
    let counters: [(&str, &str); 3] = [
        ("lb_vrrp_transitions_total", "State changes."),
        ("lb_vrrp_adverts_sent_total", "Advertisements sent."),
        ("lb_vrrp_adverts_received_total", "Advertisements accepted."),
    ];
    for (i, (name, help)) in counters.iter().enumerate() {
        f.head(name, "counter", help);
        for v in &s.vrrp {
            let value = [v.transitions, v.adverts_sent, v.adverts_received][i];
            f.sample(name, &[("instance", &v.name)], value as f64);
        }
    }
    f.head(
        "lb_vrrp_adverts_rejected_total",
        "counter",
        "Advertisements rejected, by reason.",
    );
    for v in &s.vrrp {
        for r in crate::vrrp::packet::Reject::ALL {
            let n = v.rejected.get(r.label()).copied().unwrap_or(0);
            f.sample(
                "lb_vrrp_adverts_rejected_total",
                &[("instance", &v.name), ("reason", r.label())],
                n as f64,
            );
        }
    }
}
