//! `status`, `vips`, `backends`, `stats`, `maglev`: the agent's picture as tables
//! (or `--json`), live from the daemon or from the pinned maps.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use lb_agent::status::{Rates, Status, host_port, si, unix_now};
use serde_json::json;

use super::{
    table::print,
    target::{Target, status},
};

#[derive(Args)]
pub struct BackendsArgs {
    #[command(flatten)]
    target: Target,
    /// Only the backends of this VIP.
    #[arg(long)]
    vip: Option<String>,
}

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    target: Target,
    /// Seconds between the two readings rates are computed from.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

#[derive(Args)]
pub struct MaglevArgs {
    #[command(flatten)]
    target: Target,
    /// The VIP's name.
    vip: String,
}

fn json_out(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn show_status(t: &Target) -> Result<()> {
    let s = status(&t.load()?)?;
    if t.json {
        return json_out(&s);
    }
    println!("lb-agent {} ({})", s.version, s.source);
    if s.source == "daemon" {
        println!("config      {}", s.config_file);
        println!(
            "uptime      {}s{}",
            s.uptime_s,
            if s.adopted {
                ", adopted pinned maps at start"
            } else {
                ""
            }
        );
        let ifs: Vec<String> = s
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", i.name, i.mode))
            .collect();
        println!("interfaces  {}", ifs.join(", "));
        if let Some(r) = &s.last_reload {
            let ago = unix_now().saturating_sub(r.at_unix);
            println!(
                "last reload {ago}s ago, {}: {}",
                if r.ok { "applied" } else { "rejected" },
                r.message
            );
        }
    }
    if let Some(sock) = &s.sockets {
        println!(
            "sockets     balanced by the socket programs (cgroup {}, namespaces: {})",
            sock.cgroup, sock.namespaces
        );
    }
    if let Some(f) = &s.flow_table {
        println!(
            "flows       {} flows, {} NAT bindings in use, {} expired (of {} each); swept: {} \
             flows, {} bindings",
            f.flows,
            f.bindings,
            f.bindings_expired,
            f.capacity,
            f.flows_removed.values().sum::<u64>(),
            f.bindings_removed.values().sum::<u64>()
        );
    }
    println!(
        "ready       {}",
        match s.readiness() {
            Ok(_) => "yes".to_string(),
            Err(why) => format!("no: {why}"),
        }
    );
    println!();
    vips_table(&s);
    Ok(())
}

fn vips_table(s: &Status) {
    let rows: Vec<Vec<String>> = s
        .vips
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                host_port(&v.address, v.port),
                v.protocol.clone(),
                if v.node_local {
                    "node-local".to_string()
                } else {
                    v.forwarding.clone()
                },
                v.check.clone(),
                format!("{}/{}", v.up, v.total),
                si(v.traffic.packets as f64),
                si(v.traffic.bytes as f64),
                si(v.traffic.new_flows as f64),
                si(v.rates.packets_per_s),
                si(v.rates.new_flows_per_s),
            ]
        })
        .collect();
    print(
        &[
            "VIP", "ADDRESS", "PROTO", "FWD", "CHECK", "UP", "PACKETS", "BYTES", "FLOWS", "PKT/S",
            "FLOWS/S",
        ],
        &rows,
    );
}

pub fn vips(t: &Target) -> Result<()> {
    let s = status(&t.load()?)?;
    if t.json {
        return json_out(&s.vips);
    }
    vips_table(&s);
    Ok(())
}

pub fn backends(a: &BackendsArgs) -> Result<()> {
    let s = status(&a.target.load()?)?;
    if let Some(name) = &a.vip
        && s.vip(name).is_none()
    {
        bail!("no VIP named {name:?}");
    }
    let vips: Vec<_> = s
        .vips
        .iter()
        .filter(|v| a.vip.as_ref().is_none_or(|n| *n == v.name))
        .collect();
    if a.target.json {
        let list: Vec<_> = vips
            .iter()
            .flat_map(|v| {
                v.backends
                    .iter()
                    .map(move |b| json!({"vip": v.name, "backend": b}))
            })
            .collect();
        return json_out(&list);
    }
    let mut rows = Vec::new();
    for v in vips {
        for b in &v.backends {
            let (when, result) = match &b.last_check {
                Some(c) => (
                    format!("{}s", unix_now().saturating_sub(c.at_unix)),
                    format!("{} ({:.1} ms)", c.reason, c.duration_ms),
                ),
                None => ("-".into(), "-".into()),
            };
            let mut backend = host_port(&b.address, b.port);
            if b.local {
                backend.push_str(" (local)");
            }
            if b.backup {
                backend.push_str(" (backup)");
            }
            rows.push(vec![
                v.name.clone(),
                backend,
                b.weight.to_string(),
                b.admin.clone(),
                b.health.clone(),
                b.state.clone(),
                when,
                result,
                si(b.traffic.packets as f64),
                si(b.traffic.new_flows as f64),
                si(b.rates.packets_per_s),
            ]);
        }
    }
    print(
        &[
            "VIP", "BACKEND", "WEIGHT", "ADMIN", "HEALTH", "STATE", "CHECKED", "RESULT", "PACKETS",
            "FLOWS", "PKT/S",
        ],
        &rows,
    );
    Ok(())
}

pub fn stats(a: &StatsArgs) -> Result<()> {
    if !(0.1..=60.0).contains(&a.interval) {
        bail!(
            "--interval must be between 0.1 and 60 seconds, got {}",
            a.interval
        );
    }
    let config = a.target.load()?;
    let first = status(&config)?;
    std::thread::sleep(Duration::from_secs_f64(a.interval));
    let second = status(&config)?;
    let rate = |old: u64, new: u64| new.saturating_sub(old) as f64 / a.interval;
    let counters: Vec<(String, u64, f64)> = second
        .counters
        .iter()
        .map(|c| {
            let old = first
                .counters
                .iter()
                .find(|o| o.name == c.name)
                .map_or(c.value, |o| o.value);
            (c.name.clone(), c.value, rate(old, c.value))
        })
        .collect();
    let vips: Vec<(String, Rates, u64, u64)> = second
        .vips
        .iter()
        .map(|v| {
            let r = first
                .vip(&v.name)
                .map(|o| Rates::between(&o.traffic, &v.traffic, a.interval))
                .unwrap_or_default();
            (v.name.clone(), r, v.traffic.packets, v.traffic.new_flows)
        })
        .collect();
    if a.target.json {
        return json_out(&json!({
            "interval_s": a.interval,
            "counters": counters.iter().map(|(n, v, r)| json!({"name": n, "value": v, "per_s": r})).collect::<Vec<_>>(),
            "vips": vips.iter().map(|(n, r, p, f)| json!({"name": n, "packets": p, "new_flows": f, "rates": r})).collect::<Vec<_>>(),
        }));
    }
    let rows: Vec<Vec<String>> = counters
        .iter()
        .map(|(n, v, r)| vec![n.clone(), v.to_string(), si(*r)])
        .collect();
    print(&["COUNTER", "PACKETS", "PER S"], &rows);
    println!();
    let rows: Vec<Vec<String>> = vips
        .iter()
        .map(|(n, r, p, f)| {
            vec![
                n.clone(),
                p.to_string(),
                si(r.packets_per_s),
                si(r.bytes_per_s),
                f.to_string(),
                si(r.new_flows_per_s),
            ]
        })
        .collect();
    print(
        &["VIP", "PACKETS", "PKT/S", "BYTES/S", "FLOWS", "FLOWS/S"],
        &rows,
    );
    Ok(())
}

pub fn maglev(a: &MaglevArgs) -> Result<()> {
    let s = status(&a.target.load()?)?;
    let v = s.vip(&a.vip).ok_or_else(|| {
        anyhow!(
            "no VIP named {:?} (known: {})",
            a.vip,
            s.vips
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let up_weight: u64 = v
        .backends
        .iter()
        .filter(|b| b.state == "up")
        .map(|b| u64::from(b.weight))
        .sum();
    let size = f64::from(v.ring_size.max(1));
    let rows: Vec<(String, u32, String, u32, f64, f64)> = v
        .backends
        .iter()
        .map(|b| {
            let expected = if b.state == "up" && up_weight > 0 {
                f64::from(b.weight) * 100.0 / up_weight as f64
            } else {
                0.0
            };
            (
                host_port(&b.address, b.port),
                b.weight,
                b.state.clone(),
                b.ring_slots,
                f64::from(b.ring_slots) * 100.0 / size,
                expected,
            )
        })
        .collect();
    if a.target.json {
        return json_out(&json!({
            "vip": v.name,
            "ring_size": v.ring_size,
            "empty_slots": v.empty_ring_slots,
            "backends": rows.iter().map(|(b, w, st, n, sh, ex)| json!({"backend": b, "weight": w, "state": st, "slots": n, "share_pct": sh, "weight_share_pct": ex})).collect::<Vec<_>>(),
        }));
    }
    println!(
        "{}: Maglev ring of {} entries, {} without a backend",
        v.name, v.ring_size, v.empty_ring_slots
    );
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(b, w, st, n, sh, ex)| {
            vec![
                b.clone(),
                w.to_string(),
                st.clone(),
                n.to_string(),
                format!("{sh:.2}%"),
                format!("{ex:.2}%"),
            ]
        })
        .collect();
    print(
        &[
            "BACKEND",
            "WEIGHT",
            "STATE",
            "SLOTS",
            "SHARE",
            "WEIGHT SHARE",
        ],
        &table,
    );
    Ok(())
}

pub fn vrrp(t: &Target) -> Result<()> {
    let s = status(&t.load()?)?;
    if s.source != "daemon" {
        bail!(
            "the agent is not running: no VRRP instance runs (a stopped agent removes its addresses)"
        );
    }
    if t.json {
        return json_out(&s.vrrp);
    }
    let rows: Vec<Vec<String>> = s
        .vrrp
        .iter()
        .map(|v| {
            let rejected: u64 = v.rejected.values().sum();
            vec![
                v.name.clone(),
                v.interface.clone(),
                v.vrid.to_string(),
                format!("v{}", v.version),
                if v.held {
                    format!("{} (held)", v.state)
                } else {
                    v.state.clone()
                },
                format!("{}/{}", v.priority, v.base_priority),
                if v.master.is_empty() {
                    "-".into()
                } else {
                    v.master.clone()
                },
                if v.last_transition_unix == 0 {
                    "-".into()
                } else {
                    format!("{}s ago", unix_now().saturating_sub(v.last_transition_unix))
                },
                v.transitions.to_string(),
                v.adverts_sent.to_string(),
                v.adverts_received.to_string(),
                rejected.to_string(),
                v.addresses.join(","),
            ]
        })
        .collect();
    print(
        &[
            "INSTANCE",
            "IFACE",
            "VRID",
            "VER",
            "STATE",
            "PRIO/BASE",
            "MASTER",
            "CHANGED",
            "TRANS",
            "SENT",
            "RCVD",
            "REJECTED",
            "ADDRESSES",
        ],
        &rows,
    );
    for v in &s.vrrp {
        if !v.rejected.is_empty() {
            let why: Vec<String> = v.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("{}: rejected adverts: {}", v.name, why.join(", "));
        }
        if !v.error.is_empty() {
            println!("{}: last error: {}", v.name, v.error);
        }
    }
    if let Some(y) = &s.sync {
        let peers: Vec<String> = y
            .peers
            .iter()
            .map(|p| match p.heard_s_ago {
                Some(s) => format!("{} (heard {s}s ago)", p.address),
                None => format!("{} (never heard)", p.address),
            })
            .collect();
        let rejected: u64 = y.rejected.values().sum();
        println!(
            "flow sync: peers {}; sent {} messages ({} flows, {} bytes); received {} ({} flows learned); rejected {rejected}{}",
            peers.join(", "),
            y.messages_sent,
            y.records_sent,
            si(y.bytes_sent as f64),
            y.messages_received,
            y.records_learned,
            if rejected == 0 {
                String::new()
            } else {
                format!(
                    " ({})",
                    y.rejected
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    Ok(())
}
