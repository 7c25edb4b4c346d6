//! What the stacked control plane costs, measured side by side in one run:
//! - a connect of the node's own to a VIP through the socket programs, next to the
//!   same connect straight to the backend (node-local VIP 127.0.0.1:6443 in front of
//!   a listener on 127.0.0.2:8080, in a namespace of its own; blocks of connects
//!   taking turns, medians over blocks; plus the connect4 program's own time from
//!   bpf_stats);
//! - new connections/s from remote clients when one of the three backends is the LB
//!   node itself (its packets go up the LB node's stack, its replies are translated
//!   at TC egress), next to the all-remote XDP NAT run of the same bench.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use lb_agent::{
    dataplane::{
        BackendSpec, Capacities, Dataplane, FlowTimeouts, Forwarding, NoBackend, Protocol,
        ServiceSpec, cgroup2_root,
    },
    lab::Netns,
};
use lb_common::PROG_SOCK;

use super::{
    LbCost, Options,
    conn::{self, ConnResult},
    cpu,
    lab::{ENDPOINT_CPU, LB_CPU, Lab, pin},
    peers::{HTTP_PORT, Peer, Running},
};

/// Local connects: plain and through the socket programs.
#[derive(Clone, Debug, Default)]
pub struct LocalConnect {
    pub connects_per_mode: u64,
    /// Median of the blocks' median connect time, µs.
    pub plain_us: f64,
    pub via_vip_us: f64,
    /// The connect4 program's own time per run (bpf_stats), ns.
    pub prog_ns: Option<f64>,
}

/// Connects per block, and blocks per mode.
const BLOCK: usize = 500;

pub fn local_connect(quick: bool) -> Result<LocalConnect> {
    let rounds = if quick { 4 } else { 20 };
    let ns = Netns::new("lbbk")?;
    let backend = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 8080);
    let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6443);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (entry, stop) = (ns.entry()?, stop.clone());
        let listener = ns.run(move || TcpListener::bind(backend))??;
        listener.set_nonblocking(true)?;
        std::thread::spawn(move || -> Result<()> {
            entry.enter()?;
            pin(std::process::id(), ENDPOINT_CPU).ok();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => std::thread::sleep(Duration::from_micros(50)),
                }
            }
            Ok(())
        })
    };
    let cgroup = cgroup2_root()?;
    let mut dp = ns.run(move || -> Result<Dataplane> {
        let mut dp = Dataplane::load(Capacities {
            max_vips: 4,
            max_backends: 16,
            flow_table_size: 4096,
            ..Capacities::default()
        })?;
        dp.apply(&[ServiceSpec {
            name: "local".into(),
            vip: vip.ip(),
            port: vip.port(),
            protocol: Protocol::Tcp,
            forwarding: Forwarding::Nat,
            snat: Vec::new(),
            on_no_backend: NoBackend::Reset,
            standby: false,
            timeouts: FlowTimeouts::default(),
            backends: vec![BackendSpec {
                port: backend.port(),
                ..BackendSpec::up(backend.ip())
            }],
        }])?;
        dp.attach_sockets(&cgroup)?;
        Ok(dp)
    })??;
    let connect4 = PROG_SOCK[0].0;
    let stats = |dp: &mut Dataplane| -> Result<(u64, Duration)> {
        let info = dp.socket_program(connect4)?.info()?;
        Ok((info.run_count(), info.run_time()))
    };
    let entry = ns.entry()?;
    let before = stats(&mut dp)?;
    let (plain, via) = std::thread::spawn(move || -> Result<(Vec<f64>, Vec<f64>)> {
        entry.enter()?;
        let (mut plain, mut via) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so a slow moment does not favour one.
            let order = if round % 2 == 0 {
                [backend, vip]
            } else {
                [vip, backend]
            };
            for target in order {
                let median = block(target)?;
                if target == vip {
                    via.push(median);
                } else {
                    plain.push(median);
                }
            }
        }
        Ok((plain, via))
    })
    .join()
    .map_err(|_| anyhow!("client thread panicked"))??;
    let after = stats(&mut dp)?;
    stop.store(true, Ordering::Relaxed);
    server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))??;
    let runs = after.0 - before.0;
    let prog_ns =
        (runs > 0).then(|| after.1.saturating_sub(before.1).as_nanos() as f64 / runs as f64);
    Ok(LocalConnect {
        connects_per_mode: (rounds * BLOCK) as u64,
        plain_us: median(plain),
        via_vip_us: median(via),
        prog_ns,
    })
}

/// `BLOCK` connects to `target` (each closed with a reset: no TIME_WAIT piles up):
/// the median connect time, µs.
fn block(target: SocketAddr) -> Result<f64> {
    let mut times = Vec::with_capacity(BLOCK);
    for _ in 0..BLOCK {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.set_linger(Some(Duration::ZERO))?;
        let t = Instant::now();
        s.connect(&target.into())
            .with_context(|| format!("connect {target}"))?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(times))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// New connections/s through XDP NAT when one of the three backends is the LB node
/// itself.
pub fn remote_with_local_backend(o: &Options) -> Result<(ConnResult, LbCost)> {
    let lab = Lab::build(false)?;
    let _running = Running::start_with_local_backend(&lab)?;
    let targets = Peer::XdpNat.targets(HTTP_PORT);
    conn::run(&lab.gen_ns, &targets, 2, Duration::from_millis(300))?;
    let p0 = lab.lb_packets("a1")?.0 + lab.lb_packets("b1")?.0;
    let (result, busy) = cpu::measure(LB_CPU, || {
        conn::run(&lab.gen_ns, &targets, o.threads, o.length)
    })?;
    let packets = lab.lb_packets("a1")?.0 + lab.lb_packets("b1")?.0 - p0;
    Ok((
        result,
        LbCost {
            busy_s: busy,
            packets,
        },
    ))
}
