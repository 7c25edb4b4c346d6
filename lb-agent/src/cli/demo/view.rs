//! The demo's live view: a full-screen frame redrawn in place on a terminal; on a
//! pipe or a log, events as lines and a one-line summary every two seconds.

use std::fmt::Write as _;

use lb_agent::status::si;

use super::{
    lab::{self, Layout},
    load::LoadView,
    watch::NodeSeen,
};

/// Everything one frame shows.
pub struct Frame<'a> {
    pub elapsed_s: f64,
    pub layout: Layout,
    pub forwarding: &'a str,
    pub phase: &'a str,
    pub next: &'a str,
    pub nodes: &'a [NodeSeen],
    /// The clients, the first one outside the LB nodes (its shares fill the
    /// backend table).
    pub loads: &'a [(String, LoadView)],
    pub events: &'a [(f64, String)],
}

impl Frame<'_> {
    fn main_load(&self) -> Option<&LoadView> {
        self.loads.first().map(|(_, l)| l)
    }
}

/// The full-screen frame, starting with the escape that clears the terminal.
pub fn screen(f: &Frame) -> String {
    let mut s = String::from("\x1b[H\x1b[2J");
    let what = match f.layout {
        Layout::Classic => "2 LB nodes with VRRP, 3 web backends".to_string(),
        Layout::Stacked => "stacked: 3 nodes, each LB node + API server + client, VRRP".to_string(),
    };
    let _ = writeln!(
        s,
        "lb-agent demo: VIP {}:{} ({}) on {what}      t = {:.1} s",
        lab::vip(),
        f.layout.port(),
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
        "\n{:<20} {:<8} {:<6} {:>12} {:>10} {:<}",
        "backend",
        "health",
        "state",
        "share (1 s)",
        "packets/s",
        "last check (seen by the VIP's owner)"
    );
    let empty = LoadView::empty();
    let main = f.main_load().unwrap_or(&empty);
    let total = main.answered_per_s.max(1);
    for &b in f.layout.backends() {
        let addr = lb_agent::lab::lan_v4(b).to_string();
        let seen = owner
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.vips.first())
            .and_then(|v| v.backends.iter().find(|be| be.address == addr));
        let answered = main
            .shares
            .get(&f.layout.server_name(b))
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
        let local = if seen.is_some_and(|be| be.local) {
            " (local)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{:<20} {:<8} {:<6} {:>11.0}% {:>10} {}",
            format!("{addr}:{}{local}", f.layout.port()),
            seen.map_or("-", |be| be.health.as_str()),
            seen.map_or("-", |be| be.state.as_str()),
            100.0 * answered as f64 / total as f64,
            si(seen.map_or(0.0, |be| be.rates.packets_per_s)),
            check
        );
    }
    let _ = writeln!(
        s,
        "\n{:<22} {:>10} {:>11} {:>10} {:>8}  answers (1 s)",
        "client", "answered/s", "failed (1s)", "answered", "failed"
    );
    for (who, l) in f.loads {
        let shares: Vec<String> = l.shares.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "{who:<22} {:>10} {:>11} {:>10} {:>8}  {}",
            l.answered_per_s,
            l.failed_last_s,
            l.answered,
            l.failed,
            shares.join(", ")
        );
        if let Some(e) = &l.last_failure {
            let _ = writeln!(s, "{:<22} last failure: {e}", "");
        }
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
    let clients: Vec<String> = f
        .loads
        .iter()
        .map(|(who, l)| {
            let shares: Vec<String> = f
                .layout
                .backends()
                .iter()
                .map(|&b| {
                    let n = l.shares.get(&f.layout.server_name(b)).copied().unwrap_or(0);
                    format!(".{b}={n}")
                })
                .collect();
            format!(
                "{who}: answered/s {} ({}), failed/s {}",
                l.answered_per_s,
                shares.join(" "),
                l.failed_last_s
            )
        })
        .collect();
    format!(
        "  {:>6.2} s  VIP owner {owner}, backends up {up}, {}",
        f.elapsed_s,
        clients.join("; ")
    )
}
