//! The demo's live view: a full-screen frame redrawn in place on a terminal; on a
//! pipe or a log, events as lines and a one-line summary every two seconds.

use std::fmt::Write as _;

use lb_agent::status::si;

use super::{
    lab::{self, BACKENDS},
    load::LoadView,
    watch::NodeSeen,
};

/// Everything one frame shows.
pub struct Frame<'a> {
    pub elapsed_s: f64,
    pub forwarding: &'a str,
    pub phase: &'a str,
    pub next: &'a str,
    pub nodes: &'a [NodeSeen],
    pub load: &'a LoadView,
    pub events: &'a [(f64, String)],
}

/// The full-screen frame, starting with the escape that clears the terminal.
pub fn screen(f: &Frame) -> String {
    let mut s = String::from("\x1b[H\x1b[2J");
    let _ = writeln!(
        s,
        "lb-agent demo: VIP {}:{} ({}) on 2 LB nodes with VRRP, 3 web backends      t = {:.1} s",
        lab::vip(),
        lab::PORT,
        f.forwarding,
        f.elapsed_s
    );
    let _ = writeln!(s, "now:  {}", f.phase);
    let _ = writeln!(s, "next: {}\n", f.next);
    let _ = writeln!(
        s,
        "{:<5} {:<13} {:<12} {:<8} {:>8} {:>9} {:>10}",
        "node", "address", "agent", "VRRP", "priority", "VIP", "packets/s"
    );
    for n in f.nodes {
        let pps = n
            .status
            .as_ref()
            .and_then(|s| s.vips.first())
            .map_or(0.0, |v| v.rates.packets_per_s);
        let _ = writeln!(
            s,
            "{:<5} {:<13} {:<12} {:<8} {:>8} {:>9} {:>10}",
            n.name,
            n.address,
            n.agent,
            n.vrrp_state(),
            n.priority().map_or("-".to_string(), |p| p.to_string()),
            if n.is_master() { "holds it" } else { "-" },
            si(pps)
        );
    }
    let owner = f.nodes.iter().find(|n| n.is_master());
    let _ = writeln!(
        s,
        "\n{:<16} {:<8} {:<6} {:>12} {:>10} {:<}",
        "backend",
        "health",
        "state",
        "share (1 s)",
        "packets/s",
        "last check (seen by the VIP's owner)"
    );
    let total = f.load.answered_per_s.max(1);
    for &b in &BACKENDS {
        let addr = lab_addr(b);
        let seen = owner
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.vips.first())
            .and_then(|v| v.backends.iter().find(|be| be.address == addr));
        let answered = f
            .load
            .shares
            .get(&lab::backend_name(b))
            .copied()
            .unwrap_or(0);
        let check = seen
            .and_then(|be| be.last_check.as_ref())
            .map_or(String::new(), |c| {
                format!(
                    "{} {:.1} ms",
                    if c.ok { "ok" } else { &c.reason },
                    c.duration_ms
                )
            });
        let _ = writeln!(
            s,
            "{:<16} {:<8} {:<6} {:>11.0}% {:>10} {}",
            format!("{addr}:{}", lab::PORT),
            seen.map_or("-", |be| be.health.as_str()),
            seen.map_or("-", |be| be.state.as_str()),
            100.0 * answered as f64 / total as f64,
            si(seen.map_or(0.0, |be| be.rates.packets_per_s)),
            check
        );
    }
    let _ = writeln!(
        s,
        "\nclient: {} requests/s answered, {} failed in the last second; {} answered, {} failed in all",
        f.load.answered_per_s, f.load.failed_last_s, f.load.answered, f.load.failed
    );
    if let Some(e) = &f.load.last_failure {
        let _ = writeln!(s, "        last failure: {e}");
    }
    let _ = writeln!(s, "\nevents:");
    let first = f.events.len().saturating_sub(10);
    for (t, e) in &f.events[first..] {
        let _ = writeln!(s, "  {t:>6.2} s  {e}");
    }
    let _ = writeln!(s, "\nCtrl-C stops the demo and removes the lab.");
    s
}

/// The one-line summary for logs.
pub fn line(f: &Frame) -> String {
    let owner = f
        .nodes
        .iter()
        .find(|n| n.is_master())
        .map_or("none".to_string(), |n| n.name.clone());
    let up = f
        .nodes
        .iter()
        .find(|n| n.is_master())
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.vips.first())
        .map_or("-".to_string(), |v| format!("{}/{}", v.up, v.total));
    let shares: Vec<String> = BACKENDS
        .iter()
        .map(|&b| {
            let n = f
                .load
                .shares
                .get(&lab::backend_name(b))
                .copied()
                .unwrap_or(0);
            format!(".{b}={n}")
        })
        .collect();
    format!(
        "  {:>6.2} s  VIP owner {owner}, backends up {up}, answered/s {} ({}), failed/s {}",
        f.elapsed_s,
        f.load.answered_per_s,
        shares.join(" "),
        f.load.failed_last_s
    )
}

fn lab_addr(index: u8) -> String {
    lb_agent::lab::lan_v4(index).to_string()
}
