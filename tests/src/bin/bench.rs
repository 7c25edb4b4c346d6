//! `cargo xtask bench`: lb's XDP data plane (NAT and DSR) next to HAProxy `mode tcp`
//! and nftables DNAT, and next to no load balancer at all, on the same lab and cores,
//! in one run. Every (peer, workload) gets a fresh lab. Progress goes to stderr; the
//! report (markdown) to stdout and to `--out DIR/report.md`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use tests::bench::{
    self, BulkResult, LbCost, Options, PpsResult,
    conn::ConnResult,
    lab::{ENDPOINT_CPU, LB_CPU, pin},
    peers::Peer,
    plot,
    routed::{self, RoutedPeer, RoutedRow},
    scale, stacked,
};

struct Args {
    options: Options,
    /// Only these peers (by short name), for profiling one of them.
    only: Vec<Peer>,
    out: PathBuf,
    quick: bool,
    /// Only the Maglev rebuild and apply timings (`--maglev`).
    maglev_only: bool,
    /// The routed workload's peers (HAProxy, lb-agent by SNI): both unless `--only`
    /// names other peers; `--only routed` (or `routed-haproxy`, `routed-agent`)
    /// runs it alone.
    routed: Vec<RoutedPeer>,
    only_routed: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        options: Options {
            length: Duration::from_secs(5),
            threads: 16,
            flows: 32_768,
        },
        out: PathBuf::from("bench/latest"),
        quick: false,
        only: Vec::new(),
        maglev_only: false,
        routed: Vec::new(),
        only_routed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match k.as_str() {
            "--quick" => {
                a.quick = true;
                a.options.length = Duration::from_secs(1);
                a.options.flows = 4096;
            }
            "--seconds" => {
                let s: u64 = value("--seconds")?.parse().context("--seconds N")?;
                if !(1..=60).contains(&s) {
                    bail!("--seconds must be 1..=60");
                }
                a.options.length = Duration::from_secs(s);
            }
            "--threads" => {
                a.options.threads = value("--threads")?.parse().context("--threads N")?;
                if !(1..=256).contains(&a.options.threads) {
                    bail!("--threads must be 1..=256");
                }
            }
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--maglev" => a.maglev_only = true,
            "--only" => {
                let name = value("--only")?;
                let routed: &[RoutedPeer] = match name.as_str() {
                    "routed" => &RoutedPeer::ALL,
                    "routed-haproxy" => &[RoutedPeer::Haproxy],
                    "routed-agent" => &[RoutedPeer::Agent],
                    _ => &[],
                };
                if !routed.is_empty() {
                    a.routed.extend_from_slice(routed);
                    continue;
                }
                let peer = Peer::ALL
                    .into_iter()
                    .find(|p| p.key() == name)
                    .with_context(|| {
                        let keys: Vec<&str> = Peer::ALL.iter().map(|p| p.key()).collect();
                        format!("--only {name}: expected routed, routed-haproxy, routed-agent or one of {}", keys.join(", "))
                    })?;
                a.only.push(peer);
            }
            other => bail!(
                "unknown argument {other} (expected --quick, --seconds N, --threads N, --out DIR, --only PEER, --maglev)"
            ),
        }
    }
    if !a.routed.is_empty() && a.only.is_empty() {
        // `--only routed` alone: no peer of the side-by-side table.
        a.only_routed = true;
    } else if a.only.is_empty() {
        a.routed = RoutedPeer::ALL.to_vec();
    }
    Ok(a)
}

struct PeerRow {
    peer: Peer,
    pps: Option<PpsResult>,
    conn: ConnResult,
    conn_cost: LbCost,
    bulk: BulkResult,
}

fn main() -> Result<()> {
    let a = args()?;
    // The client, generator and servers run on the endpoints' core; the load
    // balancer's threads are pinned to the other.
    pin(std::process::id(), ENDPOINT_CPU)?;
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    if a.maglev_only {
        // Only the control plane's Maglev rebuild and apply (no lab, no traffic).
        eprintln!("bench: Maglev table builds and applies (10, 100, 1000 backends)");
        for m in scale::maglev_rebuild(a.quick)? {
            println!(
                "maglev {} backends: build {:.2} ms, apply whole ring {} ms, changed entries {} ms",
                m.backends,
                m.build_ms,
                m.apply_ms.map_or("-".into(), |v| format!("{v:.2}")),
                m.apply_changed_ms.map_or("-".into(), |v| format!("{v:.2}"))
            );
        }
        return Ok(());
    }
    if a.only_routed {
        let report = routed::report(&routed_rows(&a)?);
        println!("{report}");
        std::fs::create_dir_all(&a.out)?;
        std::fs::write(a.out.join("report.md"), &report)?;
        return Ok(());
    }
    let peers: Vec<Peer> = if a.only.is_empty() {
        Peer::ALL.to_vec()
    } else {
        a.only.clone()
    };
    let steps = peers.len() * 3;
    let mut step = 0;
    let mut progress = |what: String| {
        step += 1;
        eprintln!("bench [{step:>2}/{steps}] {what}");
    };
    let mut rows = Vec::new();
    for peer in peers {
        progress(format!("{}: packet rate", peer.name()));
        let pps = bench::packet_rate(peer, &a.options)?;
        if let Some(p) = &pps {
            eprintln!(
                "           {:.0} kpps forwarded of {:.0} offered, LB core {:.0} ns/packet",
                p.forwarded_pps / 1e3,
                p.offered_pps / 1e3,
                p.cpu_ns_per_packet()
            );
            if let Some(ns) = p.prog_ns {
                eprintln!("           XDP program {ns:.0} ns/packet (bpf_stats)");
            }
            if !p.counters.is_empty() {
                let c: Vec<String> = p.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                eprintln!("           data plane: {}", c.join(" "));
            }
        } else {
            eprintln!("           no UDP");
        }
        progress(format!("{}: new TCP connections", peer.name()));
        let (conn, conn_cost) = bench::connections(peer, &a.options)?;
        eprintln!(
            "           {:.0}/s, failed {}, connect p50 {:.0} us p99 {:.0} us",
            conn.per_s(),
            conn.failed,
            conn.connect_p50_us,
            conn.connect_p99_us
        );
        if let Some(ns) = conn_cost.ns_per_packet() {
            eprintln!(
                "           LB core busy {:.2} s, {} packets: {ns:.0} ns/packet",
                conn_cost.busy_s, conn_cost.packets
            );
        }
        progress(format!("{}: bulk TCP, 8 streams", peer.name()));
        let bulk = bench::bulk(peer, &a.options)?;
        eprintln!("           {:.2} Gbit/s", bulk.bits_per_s / 1e9);
        rows.push(PeerRow {
            peer,
            pps,
            conn,
            conn_cost,
            bulk,
        });
    }
    let routed_rows = routed_rows(&a)?;
    eprintln!("bench: stacked: remote connections with one backend on the LB node");
    let local_backend = stacked::remote_with_local_backend(&a.options)?;
    eprintln!(
        "           {:.0}/s, failed {}, LB core {} ns/packet",
        local_backend.0.per_s(),
        local_backend.0.failed,
        local_backend
            .1
            .ns_per_packet()
            .map_or("n/a".into(), |v| format!("{v:.0}"))
    );
    eprintln!("bench: stacked: this node's connects through the socket programs vs plain");
    let local_connect = stacked::local_connect(a.quick)?;
    eprintln!(
        "           plain {:.1} us, through the VIP {:.1} us, connect4 program {} ns",
        local_connect.plain_us,
        local_connect.via_vip_us,
        local_connect
            .prog_ns
            .map_or("n/a".into(), |v| format!("{v:.0}"))
    );
    eprintln!("bench: Maglev table builds (10, 100, 1000 backends)");
    let maglev = scale::maglev_rebuild(a.quick)?;
    eprintln!("bench: flow table filled to capacity");
    let flows = scale::flow_table_scale(a.quick)?;
    let mut report = report(&rows, &a);
    if !routed_rows.is_empty() {
        report.push_str(&routed::report(&routed_rows));
    }
    report.push_str(&stacked_report(&rows, &local_backend, &local_connect));
    report.push_str(&scale_report(&maglev, &flows));
    println!("{report}");
    std::fs::create_dir_all(&a.out)?;
    if rows.len() == Peer::ALL.len() {
        plots(&rows, &a.out)?;
    }
    std::fs::write(a.out.join("report.md"), &report)?;
    eprintln!("bench: report in {}", a.out.join("report.md").display());
    Ok(())
}

/// The routed workload through HAProxy and lb-agent, with progress.
fn routed_rows(a: &Args) -> Result<Vec<RoutedRow>> {
    // The file `/big` of the bulk streams; rounds, the peers taking turns (the
    // endpoints' core bounds the rate and the shared machine is noisy: each
    // row is a peer's median round).
    let (big, rounds) = if a.quick { (4 << 20, 1) } else { (16 << 20, 3) };
    let n = a.routed.len() * 2 * rounds;
    let mut step = 0;
    let mut seen: Vec<(RoutedPeer, Vec<routed::RoutedConn>, Vec<routed::RoutedBulk>)> = a
        .routed
        .iter()
        .map(|&p| (p, Vec::new(), Vec::new()))
        .collect();
    for round in 1..=rounds {
        for (peer, conns, bulks) in &mut seen {
            step += 1;
            eprintln!(
                "bench routed [{step}/{n}] round {round}, {}: new TLS connections by server name",
                peer.name()
            );
            let conn = routed::connections(*peer, &a.options)?;
            eprintln!(
                "           {:.0}/s, failed {}{}, first byte p50 {:.0} us p99 {:.0} us, LB core {:.1} us/conn",
                conn.per_s(),
                conn.failed,
                conn.first_failure
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (first: {e})")),
                conn.first_byte_p50_us,
                conn.first_byte_p99_us,
                conn.cpu_us_per_conn()
            );
            conns.push(conn);
            step += 1;
            eprintln!(
                "bench routed [{step}/{n}] round {round}, {}: 8 TLS streams",
                peer.name()
            );
            let bulk = routed::bulk(*peer, &a.options, big)?;
            eprintln!(
                "           {:.2} Gbit/s, failed {}",
                bulk.bits_per_s / 1e9,
                bulk.failed
            );
            bulks.push(bulk);
        }
    }
    Ok(seen
        .into_iter()
        .map(|(peer, conns, bulks)| RoutedRow::median(peer, conns, bulks))
        .collect())
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("n/a".to_string(), f)
}

fn ratio(v: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.0}%", 100.0 * v / base)
    } else {
        "-".into()
    }
}

fn report(rows: &[PeerRow], a: &Args) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let direct = rows.iter().find(|r| r.peer == Peer::Direct);
    let _ = writeln!(
        s,
        "Each workload {} s, {} client threads, {} UDP flows; LB core: CPU {LB_CPU}, \
         everything else: CPU {ENDPOINT_CPU}.{}\n",
        a.options.length.as_secs(),
        a.options.threads,
        a.options.flows,
        if a.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        s,
        "| peer | UDP pps forwarded | % of no-LB | LB core ns/packet | program ns/packet | new TCP conn/s | % of no-LB | connect p50 / p99 µs | failed | LB core ns/packet (conn) | 8-stream Gbit/s | % of no-LB | LB core ns/packet (bulk) |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let base_pps = direct
            .and_then(|d| d.pps.as_ref())
            .map_or(0.0, |p| p.forwarded_pps);
        let base_conn = direct.map_or(0.0, |d| d.conn.per_s());
        let base_bulk = direct.map_or(0.0, |d| d.bulk.bits_per_s);
        let lb = r.peer != Peer::Direct;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {} | {:.0} / {:.0} | {} | {} | {:.2} | {} | {} |",
            r.peer.name(),
            fmt_opt(r.pps.as_ref().map(|p| p.forwarded_pps), |v| format!(
                "{:.0}k",
                v / 1e3
            )),
            fmt_opt(r.pps.as_ref().map(|p| p.forwarded_pps), |v| ratio(
                v, base_pps
            )),
            fmt_opt(
                r.pps
                    .as_ref()
                    .filter(|_| lb)
                    .map(PpsResult::cpu_ns_per_packet),
                |v| format!("{v:.0}")
            ),
            fmt_opt(r.pps.as_ref().and_then(|p| p.prog_ns), |v| format!(
                "{v:.0}"
            )),
            r.conn.per_s(),
            ratio(r.conn.per_s(), base_conn),
            r.conn.connect_p50_us,
            r.conn.connect_p99_us,
            r.conn.failed,
            fmt_opt(r.conn_cost.ns_per_packet().filter(|_| lb), |v| format!(
                "{v:.0}"
            )),
            r.bulk.bits_per_s / 1e9,
            ratio(r.bulk.bits_per_s, base_bulk),
            fmt_opt(r.bulk.cost.ns_per_packet().filter(|_| lb), |v| format!(
                "{v:.0}"
            )),
        );
    }
    s
}

fn stacked_report(
    rows: &[PeerRow],
    local: &(ConnResult, LbCost),
    connect: &stacked::LocalConnect,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "\n| stacked: remote clients, XDP NAT | new TCP conn/s | % of all-remote | connect p50 / p99 µs | failed | LB core ns/packet |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let remote = rows.iter().find(|r| r.peer == Peer::XdpNat);
    let base = remote.map_or(0.0, |r| r.conn.per_s());
    let mut row = |name: &str, c: &ConnResult, cost: &LbCost| {
        let _ = writeln!(
            s,
            "| {name} | {:.0} | {} | {:.0} / {:.0} | {} | {} |",
            c.per_s(),
            ratio(c.per_s(), base),
            c.connect_p50_us,
            c.connect_p99_us,
            c.failed,
            fmt_opt(cost.ns_per_packet(), |v| format!("{v:.0}"))
        );
    };
    if let Some(r) = remote {
        row("three remote backends", &r.conn, &r.conn_cost);
    }
    row("one of the three on the LB node", &local.0, &local.1);
    let _ = writeln!(
        s,
        "\n| stacked: this node's connect | µs (median of {} blocks of {}) | ratio |\n|---|---:|---:|\n\
         | straight to the backend (127.0.0.2:8080) | {:.1} | 1.00 |\n\
         | to the node-local VIP (127.0.0.1:6443), rewritten by connect4 | {:.1} | {:.2} |",
        connect.connects_per_mode / 500,
        500,
        connect.plain_us,
        connect.via_vip_us,
        connect.via_vip_us / connect.plain_us.max(1e-9),
    );
    let _ = writeln!(
        s,
        "\nThe connect4 program itself: {} ns per connect (bpf_stats over {} connects each way).",
        fmt_opt(connect.prog_ns, |v| format!("{v:.0}")),
        connect.connects_per_mode
    );
    s
}

fn scale_report(maglev: &[scale::MaglevRow], f: &scale::ScaleResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "\n| Maglev backends | ring size | table build ms | apply, whole ring written ms | apply, changed entries written ms | largest share off ideal |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in maglev {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {} | {} | {:.2}% |",
            m.backends,
            m.ring_size,
            m.build_ms,
            m.apply_ms.map_or("-".into(), |v| format!("{v:.2}")),
            m.apply_changed_ms.map_or("-".into(), |v| format!("{v:.2}")),
            m.max_share_dev_pct
        );
    }
    let _ = writeln!(
        s,
        "\nFlow table: {} of {} entries filled in {:.1} s; FLOWS map {:.0} MiB, NAT map {:.0} MiB.\n\
         Established-flow packet: {:.0} ns with a nearly empty table, {:.0} ns full ({:.0} ns \
         spread over the whole table). New flow: {:.0} ns while filling, {:.0} ns when full \
         (LRU eviction). Eviction keeps forwarding: {}.",
        f.entries,
        f.capacity,
        f.fill_secs,
        f.flow_map_bytes as f64 / 1048576.0,
        f.nat_map_bytes as f64 / 1048576.0,
        f.ns_per_packet_empty,
        f.ns_per_packet_full,
        f.ns_per_packet_full_spread,
        f.new_flow_ns_filling,
        f.new_flow_ns_full,
        if f.evictions_ok { "yes" } else { "NO" }
    );
    for n in &f.notes {
        let _ = writeln!(s, "- {n}");
    }
    s
}

/// Two charts: every workload relative to the no-LB limit, and the LB core's time
/// per packet. SVG and PNG in `out`.
fn plots(rows: &[PeerRow], out: &std::path::Path) -> Result<()> {
    let direct = rows
        .iter()
        .find(|r| r.peer == Peer::Direct)
        .context("no no-LB row")?;
    let base = [
        direct.pps.as_ref().map(|p| p.forwarded_pps),
        Some(direct.conn.per_s()),
        Some(direct.bulk.bits_per_s),
    ];
    let categories: Vec<String> = [
        "UDP packets/s (64 B, many flows)",
        "new TCP connections/s",
        "bulk TCP, 8 streams",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let pct = |v: Option<f64>, b: Option<f64>| match (v, b) {
        (Some(v), Some(b)) if b > 0.0 => Some(100.0 * v / b),
        _ => None,
    };
    let relative: Vec<plot::Series> = rows
        .iter()
        .filter(|r| r.peer != Peer::Direct)
        .map(|r| plot::Series {
            label: r.peer.short().into(),
            values: vec![
                pct(r.pps.as_ref().map(|p| p.forwarded_pps), base[0]),
                pct(Some(r.conn.per_s()), base[1]),
                pct(Some(r.bulk.bits_per_s), base[2]),
            ],
        })
        .collect();
    let cpu: Vec<plot::Series> = rows
        .iter()
        .filter(|r| r.peer != Peer::Direct)
        .map(|r| plot::Series {
            label: r.peer.short().into(),
            values: vec![
                r.pps.as_ref().map(PpsResult::cpu_ns_per_packet),
                r.conn_cost.ns_per_packet(),
                r.bulk.cost.ns_per_packet(),
            ],
        })
        .collect();
    for (name, title, unit, series) in [
        (
            "relative-to-no-lb",
            "Through the load balancer, as % of the no-LB limit (higher is better)",
            "% of the client talking straight to the backends",
            &relative,
        ),
        (
            "lb-cpu-per-packet",
            "LB core busy time per packet (lower is better)",
            "ns per packet",
            &cpu,
        ),
    ] {
        let svg = out.join(format!("{name}.svg"));
        std::fs::write(&svg, plot::bar_chart_svg(title, unit, &categories, series))?;
        plot::render_png(&svg, &out.join(format!("{name}.png")))?;
    }
    eprintln!("bench: plots in {}", out.display());
    Ok(())
}
