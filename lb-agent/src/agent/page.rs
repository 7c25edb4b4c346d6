//! `/stats`: an HTML status page in the spirit of HAProxy's: one table per VIP,
//! a row per backend (state, health, last check and its result, counters, rates),
//! refreshing itself every 2 s. No script, no external resources.

use std::fmt::Write as _;

use crate::status::{Status, host_port, si, unix_now};

fn esc(s: &str) -> String {
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

pub fn render(s: &Status) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>lb-agent status</title><style>\
         body{{font:13px sans-serif;margin:1em}}table{{border-collapse:collapse;margin:0 0 1.5em}}\
         th,td{{border:1px solid #bbb;padding:2px 8px;text-align:right}}th{{background:#dde}}\
         td.l{{text-align:left}}tr.up td{{background:#c8f0c8}}tr.down td{{background:#f4b8b8}}\
         tr.drain td{{background:#c8d8f8}}tr.standby td{{background:#e8e8e8}}caption{{text-align:left;font-weight:bold;padding:4px 0}}\
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
             <th>flows</th><th>pkt/s</th><th>flows/s</th><th>ring share</th></tr>",
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
                 <td>{pps}</td><td>{fps}</td><td>{share:.1}%</td></tr>",
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
            );
        }
        h.push_str("</table>");
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
