//! The plan written as TOML, each table with a comment citing its source and
//! values with a note where they were derived rather than copied.

use std::{fmt::Write as _, net::IpAddr, time::Duration};

use lb_config::duration;

use super::model::{
    BackendPlan, CheckPlan, Notes, Plan, PoolPlan, RoutingPlan, TrackPlan, VipPlan, VrrpPlan,
};

/// A TOML basic string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn strings<S: AsRef<str>>(list: &[S]) -> String {
    let items: Vec<String> = list.iter().map(|s| string(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

fn numbers(list: &[u16]) -> String {
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    if items.len() <= 12 {
        return format!("[{}]", items.join(", "));
    }
    let rows: Vec<String> = items
        .chunks(16)
        .map(|c| format!("    {},", c.join(", ")))
        .collect();
    format!("[\n{}\n]", rows.join("\n"))
}

fn dur(d: Duration) -> String {
    string(&duration::format(d))
}

/// One comment line (no line breaks inside).
fn comment(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

struct Table<'a> {
    out: &'a mut String,
    notes: &'a Notes,
}

impl Table<'_> {
    fn header(out: &mut String, comments: &[String], header: &str, note: Option<&str>) {
        for c in comments {
            let _ = writeln!(out, "# {}", comment(c));
        }
        match note {
            Some(n) => {
                let _ = writeln!(out, "{header}  # {}", comment(n));
            }
            None => {
                let _ = writeln!(out, "{header}");
            }
        }
    }

    fn key(&mut self, key: &'static str, value: String) {
        match self.notes.get(key) {
            Some(n) => {
                let _ = writeln!(self.out, "{key} = {value}  # {}", comment(n));
            }
            None => {
                let _ = writeln!(self.out, "{key} = {value}");
            }
        }
    }

    fn opt<T>(&mut self, key: &'static str, value: Option<T>, f: impl Fn(T) -> String) {
        if let Some(v) = value {
            self.key(key, f(v));
        }
    }
}

pub fn toml(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `lb-agent import` from {}.",
        plan.sources.join(" and ")
    );
    out.push_str("# Every directive of the inputs this file does not express was reported as a\n");
    out.push_str("# warning (FILE:LINE) by the import. Check it with `lb-agent check-config --config FILE`.\n\n");
    let a = &plan.agent;
    Table::header(&mut out, &[], "[agent]", None);
    let mut t = Table {
        out: &mut out,
        notes: &a.notes,
    };
    t.key("interfaces", strings(&a.interfaces));
    t.opt("api_listen", a.api_listen, |l| string(&l.to_string()));
    if let Some((user, pass)) = &a.stats_auth {
        out.push('\n');
        Table::header(
            &mut out,
            &[],
            "[agent.stats_auth]",
            a.notes.get("stats_auth"),
        );
        let _ = writeln!(out, "user = {}", string(user));
        let _ = writeln!(out, "password = {}", string(pass));
    }
    for v in &plan.vips {
        out.push('\n');
        vip(&mut out, v);
    }
    for v in &plan.vrrp {
        out.push('\n');
        vrrp(&mut out, v);
    }
    out
}

fn ip(a: IpAddr) -> String {
    string(&a.to_string())
}

fn vip(out: &mut String, v: &VipPlan) {
    Table::header(out, &v.comments, "[[vip]]", None);
    let mut t = Table {
        out,
        notes: &v.notes,
    };
    t.key("name", string(&v.name));
    t.key("address", ip(v.address));
    t.key("port", v.port.to_string());
    if let Some(r) = &v.routing {
        routed(out, r);
        return;
    }
    t.key("protocol", string(v.protocol));
    t.key("forwarding", string(v.forwarding));
    t.opt("snat_address", v.snat_address, ip);
    if v.all_backups {
        t.key("all_backups", "true".into());
    }
    out.push('\n');
    check(out, "[vip.check]", &v.check);
    for b in &v.backends {
        out.push('\n');
        backend(out, "[[vip.backend]]", b);
    }
}

/// The rest of a routed VIP's table, and its pools.
fn routed(out: &mut String, r: &RoutingPlan) {
    let mut t = Table {
        out,
        notes: &r.notes,
    };
    t.key("route_by", string(r.by));
    t.key(
        "otherwise",
        string(r.otherwise.as_deref().unwrap_or("reset")),
    );
    t.opt("inspect_timeout", r.inspect_timeout, dur);
    t.opt("connect_timeout", r.connect_timeout, dur);
    t.opt("idle_timeout", r.idle_timeout, dur);
    t.opt("max_connections", r.max_connections, |n| n.to_string());
    for p in &r.pools {
        out.push('\n');
        pool(out, p);
    }
}

fn pool(out: &mut String, p: &PoolPlan) {
    Table::header(out, &p.comments, "[[vip.pool]]", None);
    let mut t = Table {
        out,
        notes: &p.notes,
    };
    t.key("name", string(&p.name));
    if !p.names.is_empty() {
        t.key("names", strings(&p.names));
    }
    t.opt("send_proxy", p.send_proxy, string);
    out.push('\n');
    check(out, "[vip.pool.check]", &p.check);
    for b in &p.backends {
        out.push('\n');
        backend(out, "[[vip.pool.backend]]", b);
    }
}

fn check(out: &mut String, header: &str, c: &CheckPlan) {
    let origin = (!c.origin.is_empty()).then_some(c.origin.as_str());
    Table::header(out, &[], header, origin);
    let mut t = Table {
        out,
        notes: &c.notes,
    };
    t.key("type", string(c.kind));
    t.opt("port", c.port, |p| p.to_string());
    t.opt("path", c.path.as_deref(), string);
    t.opt("host", c.host.as_deref(), string);
    t.opt("expect_status", c.expect_status.as_deref(), numbers);
    t.opt("interval", c.interval, dur);
    t.opt("fastinter", c.fastinter, dur);
    t.opt("downinter", c.downinter, dur);
    t.opt("timeout", c.timeout, dur);
    t.opt("rise", c.rise, |n| n.to_string());
    t.opt("fall", c.fall, |n| n.to_string());
    t.opt("tls_verify", c.tls_verify, |b| b.to_string());
    t.opt("ca_file", c.ca_file.as_deref(), string);
    t.opt("sni", c.sni.as_deref(), string);
}

fn backend(out: &mut String, header: &str, b: &BackendPlan) {
    Table::header(out, &[], header, Some(&b.origin));
    let mut t = Table {
        out,
        notes: &b.notes,
    };
    t.key("address", ip(b.address));
    t.opt("port", b.port, |p| p.to_string());
    t.opt("weight", b.weight, |w| w.to_string());
    t.opt("state", b.state, string);
    if b.backup {
        t.key("backup", "true".into());
    }
}

fn vrrp(out: &mut String, v: &VrrpPlan) {
    Table::header(out, &v.comments, "[[vrrp]]", None);
    let mut t = Table {
        out,
        notes: &v.notes,
    };
    t.key("name", string(&v.name));
    t.key("interface", string(&v.interface));
    t.opt("vrid", v.vrid, |n| n.to_string());
    t.key("priority", v.priority.to_string());
    t.key("version", v.version.to_string());
    t.opt("advert_interval", v.advert_interval, dur);
    t.opt("preempt", v.preempt, |b| b.to_string());
    t.opt("preempt_delay", v.preempt_delay, dur);
    t.opt("unicast_src", v.unicast_src, ip);
    if !v.unicast_peers.is_empty() {
        t.key("unicast_peers", strings(&v.unicast_peers));
    }
    t.opt("auth_pass", v.auth_pass.as_deref(), string);
    t.key("addresses", strings(&v.addresses));
    t.opt("garp_repeat", v.garp_repeat, |n| n.to_string());
    t.opt("garp_interval", v.garp_interval, dur);
    t.opt("garp_refresh", v.garp_refresh, dur);
    t.opt("notify", v.notify.as_deref(), strings);
    for tr in &v.tracks {
        out.push('\n');
        track(out, tr);
    }
}

fn track(out: &mut String, tr: &TrackPlan) {
    Table::header(out, &[], "[[vrrp.track]]", Some(&tr.origin));
    let mut t = Table {
        out,
        notes: &tr.notes,
    };
    t.key("kind", string(tr.kind));
    t.opt("command", tr.command.as_deref(), strings);
    t.opt("interval", tr.interval, dur);
    t.opt("timeout", tr.timeout, dur);
    t.opt("name", tr.name.as_deref(), string);
    t.key("weight", tr.weight.to_string());
    t.opt("rise", tr.rise, |n| n.to_string());
    t.opt("fall", tr.fall, |n| n.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        let parsed: toml::Table =
            toml::from_str(&format!("k = {}", string("x\u{1}\"y"))).expect("toml");
        assert_eq!(parsed["k"].as_str(), Some("x\u{1}\"y"));
    }

    #[test]
    fn long_status_lists_wrap_and_parse() {
        let list: Vec<u16> = (200..=399).collect();
        let text = format!("k = {}", numbers(&list));
        let parsed: toml::Table = toml::from_str(&text).expect("toml");
        assert_eq!(parsed["k"].as_array().map(Vec::len), Some(200));
    }
}
