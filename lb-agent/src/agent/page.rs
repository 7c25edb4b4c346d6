//! `/stats`: an HTML status page in the spirit of HAProxy's: one table per VIP,
//! a row per backend (state, health, last check and its result, counters, rates,
//! and charts of its traffic and state over the last minutes), the VRRP instances
//! with a timeline of their states, refreshing itself every 2 s. No script, no
//! external resources: the charts are inline SVG (`chart.rs`).

use std::fmt::Write as _;

use super::chart;
use crate::{
    history::History,
    status::{Status, host_port, si, unix_now},
};

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(at: u64) -> String {
    if at == 0 {
        return "-".into();
    }
    let s = unix_now().saturating_sub(at);
    match s {
        s if s >= 3600 => format!("{}h{}m ago", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{}s ago", s / 60, s % 60),
        s => format!("{s}s ago"),
    }
}

/// "last 10 min" for a history's window.
fn window_label(history: &History) -> String {
    let secs = history.step_s * history.window_samples as u64;
    if secs >= 120 {
        format!("last {} min", secs / 60)
    } else {
        format!("last {secs} s")
    }
}

pub fn render(s: &Status) -> String {
    let empty = History::empty();
    let history = s.history.as_ref().unwrap_or(&empty);
    let window = window_label(history);
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>lb-agent status</title><style>\
         body{{font:13px sans-serif;margin:1em}}table{{border-collapse:collapse;margin:0 0 1.5em}}\
         th,td{{border:1px solid #bbb;padding:2px 8px;text-align:right}}th{{background:#dde}}\
         td.l{{text-align:left}}tr.up td{{background:#c8f0c8}}tr.down td{{background:#f4b8b8}}\
         tr.drain td{{background:#c8d8f8}}tr.standby td{{background:#e8e8e8}}caption{{text-align:left;font-weight:bold;padding:4px 0}}\
         tr.master td{{background:#c8f0c8}}tr.fault td{{background:#f4b8b8}}tr.backup td{{background:#e8e8e8}}\
         td.c{{padding:1px 4px;background:#fff!important}}svg{{display:block}}\
         </style></head><body><h1>lb-agent {}</h1><p>config {} &middot; up {}s &middot; interfaces: {}",
        esc(&s.version),
        esc(&s.config_file),
        s.uptime_s,
        esc(&s
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", i.name, i.mode))
            .collect::<Vec<_>>()
            .join(", ")),
    );
    if let Some(r) = &s.last_reload {
        let _ = write!(
            h,
            " &middot; last reload {}: {}",
            ago(r.at_unix),
            esc(&r.message)
        );
    }
    h.push_str("</p>");
    if let Err(why) = s.readiness() {
        let _ = write!(
            h,
            "<p id=\"not-ready\" style=\"background:#f4b8b8;padding:4px\">not ready: {}</p>",
            esc(&why)
        );
    }
    for v in &s.vips {
        let _ = write!(
            h,
            "<table id=\"vip-{name}\"><caption>{name}: {addr}/{proto} {fwd}, check {check} &middot; \
             {up} of {total} up &middot; {pps} pkt/s {bps} B/s {fps} flows/s</caption>\
             <tr><th>backend</th><th>weight</th><th>state</th><th>health</th><th>admin</th>\
             <th>last check</th><th>result</th><th>changed</th><th>packets</th><th>bytes</th>\
             <th>flows</th><th>pkt/s</th><th>flows/s</th><th>ring share</th>\
             <th>pkt/s, {window}</th><th>state, {window}</th></tr>",
            name = esc(&v.name),
            addr = esc(&host_port(&v.address, v.port)),
            proto = esc(&v.protocol),
            fwd = if v.node_local {
                "node-local".to_string()
            } else {
                esc(&v.forwarding)
            },
            check = esc(&v.check),
            up = v.up,
            total = v.total,
            pps = si(v.rates.packets_per_s),
            bps = si(v.rates.bytes_per_s),
            fps = si(v.rates.new_flows_per_s),
        );
        for b in &v.backends {
            let (when, result) = match &b.last_check {
                Some(c) => (
                    ago(c.at_unix),
                    format!("{} ({:.1} ms)", c.reason, c.duration_ms),
                ),
                None => ("-".into(), "-".into()),
            };
            let samples = history.backend(&v.name, &b.address, b.port);
            let share = if v.ring_size == 0 {
                0.0
            } else {
                f64::from(b.ring_slots) * 100.0 / f64::from(v.ring_size)
            };
            let _ = write!(
                h,
                "<tr class=\"{state}\"><td class=\"l\">{addr}</td><td>{w}</td><td class=\"l\">{STATE}</td>\
                 <td class=\"l\">{health}</td><td class=\"l\">{admin}</td><td>{when}</td>\
                 <td class=\"l\">{result}</td><td>{since}</td><td>{p}</td><td>{by}</td><td>{fl}</td>\
                 <td>{pps}</td><td>{fps}</td><td>{share:.1}%</td>\
                 <td class=\"c\">{traffic}</td><td class=\"c\">{states}</td></tr>",
                state = esc(&b.state),
                STATE = esc(&b.state.to_uppercase()),
                addr = esc(&host_port(&b.address, b.port))
                    + if b.local { " (local)" } else { "" }
                    + if b.backup { " (backup)" } else { "" },
                w = b.weight,
                health = esc(&b.health),
                admin = esc(&b.admin),
                result = esc(&result),
                since = ago(b.since_unix),
                p = si(b.traffic.packets as f64),
                by = si(b.traffic.bytes as f64),
                fl = si(b.traffic.new_flows as f64),
                pps = si(b.rates.packets_per_s),
                fps = si(b.rates.new_flows_per_s),
                traffic = chart::sparkline(
                    &samples.iter().map(|x| x.packets_per_s).collect::<Vec<_>>(),
                    history.window_samples,
                    &format!("packets/s, {window}"),
                ),
                states = chart::strip(
                    &samples.iter().map(|x| x.state.name()).collect::<Vec<_>>(),
                    history.window_samples,
                    &format!("state, {window}"),
                ),
            );
        }
        h.push_str("</table>");
    }
    vrrp_table(&mut h, s, history, &window);
    if !s.vips.is_empty() || !s.vrrp.is_empty() {
        let _ = write!(
            h,
            "<p>Charts: the {window}, a sample every {} s, the newest at the right.</p>",
            history.step_s
        );
    }
    h.push_str("<table><caption>data plane counters</caption><tr><th>reason</th><th>packets</th><th>per s</th></tr>");
    if s.counters.iter().all(|c| c.value == 0) {
        h.push_str("<tr><td class=\"l\" colspan=\"3\">no packets yet</td></tr>");
    }
    for c in s.counters.iter().filter(|c| c.value > 0) {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            c.value,
            si(c.per_s)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// The VRRP instances: state, priority, master heard, transitions, and a timeline
/// of their states with the recent transitions.
fn vrrp_table(h: &mut String, s: &Status, history: &History, window: &str) {
    if s.vrrp.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<table id=\"vrrp\"><caption>VRRP</caption><tr><th>instance</th><th>interface</th>\
         <th>VRID</th><th>state</th><th>priority</th><th>master</th><th>transitions</th>\
         <th>changed</th><th>state, {window}</th><th>recent transitions</th></tr>"
    );
    for i in &s.vrrp {
        let past = history.instance(&i.name);
        let states: Vec<&str> = past
            .map(|p| p.states.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let recent: Vec<String> = past
            .map(|p| {
                p.transitions
                    .iter()
                    .rev()
                    .map(|t| {
                        let from = if t.from.is_empty() { "?" } else { &t.from };
                        let flaps = if t.changes > 1 {
                            format!(" ({} changes)", t.changes)
                        } else {
                            String::new()
                        };
                        format!(
                            "{} {} &rarr; {}{flaps}",
                            ago(t.at_unix),
                            esc(from),
                            esc(&t.to)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=\"{class}\"><td class=\"l\">{name}</td><td class=\"l\">{iface}</td><td>{vrid}</td>\
             <td class=\"l\">{state}{held}</td><td>{prio} (base {base})</td><td class=\"l\">{master}</td>\
             <td>{n}</td><td>{since}</td><td class=\"c\">{strip}</td><td class=\"l\">{recent}</td></tr>",
            class = esc(&i.state.to_lowercase()),
            name = esc(&i.name),
            iface = esc(&i.interface),
            vrid = i.vrid,
            state = esc(&i.state),
            held = if i.held { " (held)" } else { "" },
            prio = i.priority,
            base = i.base_priority,
            master = if i.master.is_empty() {
                "-".into()
            } else {
                esc(&i.master)
            },
            n = i.transitions,
            since = ago(i.last_transition_unix),
            strip = chart::strip(&states, history.window_samples, &format!("state, {window}")),
            recent = if recent.is_empty() {
                "-".into()
            } else {
                recent.join("<br>")
            },
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        history::{BackendHistory, BackendMark, BackendSample, VrrpHistory, VrrpTransition},
        status::{BackendStatus, VipStatus},
        vrrp::InstanceStatus,
    };

    fn status() -> Status {
        let backend = |address: &str| BackendStatus {
            address: address.into(),
            port: 80,
            state: "up".into(),
            ..BackendStatus::default()
        };
        let sample = |packets_per_s, state| BackendSample {
            packets_per_s,
            state,
        };
        Status {
            vips: vec![VipStatus {
                name: "web".into(),
                backends: vec![backend("10.0.0.1"), backend("10.0.0.2")],
                ..VipStatus::default()
            }],
            vrrp: vec![InstanceStatus {
                name: "vi<1>".into(),
                state: "MASTER".into(),
                transitions: 2,
                ..InstanceStatus::default()
            }],
            history: Some(History {
                step_s: 2,
                window_samples: 300,
                newest_unix: unix_now(),
                backends: vec![BackendHistory {
                    vip: "web".into(),
                    address: "10.0.0.1".into(),
                    port: 80,
                    samples: vec![
                        sample(0.0, BackendMark::Up),
                        sample(40.0, BackendMark::Up),
                        sample(0.0, BackendMark::Down),
                    ],
                }],
                vrrp: vec![VrrpHistory {
                    name: "vi<1>".into(),
                    states: vec!["BACKUP".into(), "MASTER".into()],
                    transitions: vec![VrrpTransition {
                        at_unix: unix_now(),
                        from: "BACKUP".into(),
                        to: "MASTER".into(),
                        changes: 1,
                    }],
                }],
            }),
            ..Status::default()
        }
    }

    /// The `<tr>` holding `needle`.
    fn row<'a>(page: &'a str, needle: &str) -> &'a str {
        let at = page.find(needle).expect("row");
        let start = page[..at].rfind("<tr").expect("row start");
        &page[start..at + page[at..].find("</tr>").expect("row end")]
    }

    #[test]
    fn every_backend_row_has_its_charts() {
        let page = render(&status());
        assert!(page.contains("<th>pkt/s, last 10 min</th>"), "{page}");
        let one = row(&page, ">10.0.0.1:80<");
        assert!(
            one.contains("<polyline") && one.contains(">max 40<"),
            "{one}"
        );
        assert!(one.contains("class=\"st-down\""), "{one}");
        let two = row(&page, ">10.0.0.2:80<");
        assert_eq!(two.matches("no samples yet").count(), 2, "{two}");
        assert!(page.contains("a sample every 2 s"), "{page}");
    }

    #[test]
    fn vrrp_instances_show_a_timeline_and_their_transitions() {
        let page = render(&status());
        let r = row(&page, ">vi&lt;1&gt;<");
        assert!(r.starts_with("<tr class=\"master\""), "{r}");
        assert!(r.contains("st-backup") && r.contains("st-master"), "{r}");
        assert!(r.contains("s ago BACKUP &rarr; MASTER"), "{r}");
        let without = Status {
            vrrp: Vec::new(),
            ..status()
        };
        assert!(!render(&without).contains("id=\"vrrp\""));
    }

    #[test]
    fn a_status_without_history_renders_empty_charts() {
        let page = render(&Status {
            history: None,
            ..status()
        });
        assert!(
            row(&page, ">10.0.0.1:80<").contains("no samples yet"),
            "{page}"
        );
        assert!(page.contains("<th>state, last 10 min</th>"), "{page}");
    }
}
