//! `lb-agent demo`: a lab in network namespaces with the real data plane.
//!
//! A client, one LB node (XDP in native mode on its veth) and three web backends on
//! one bridge. The client opens real TCP connections to the VIP in rounds; each
//! round prints which backend answered, the data plane's own per-backend counters,
//! and the verdict counters. Then an operator drains a backend, takes it down (its
//! server is stopped) and brings it back: flows move, no connection fails.
//! Ctrl-C ends it; every namespace, program and server is removed on the way out.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lb_agent::{
    dataplane::{
        AttachMode, BackendSpec, BackendState, Capacities, Dataplane, Forwarding, NoBackend,
        Protocol, ServiceSpec,
    },
    lab::{Host, Lan, PeerPass, TcpServer, connections, lan_v4},
};
use lb_common::Counter;

const VIP: u8 = 10;
const LB: u8 = 1;
const CLIENT: u8 = 100;
const BACKENDS: [u8; 3] = [11, 12, 13];

#[derive(Args)]
pub struct DemoArgs {
    /// Forwarding mode of the demo VIP.
    #[arg(long, value_enum, default_value_t = Mode::Nat)]
    forwarding: Mode,
    /// Connections per round.
    #[arg(long, default_value_t = 300)]
    connections: u32,
    /// Rounds per phase.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Nat,
    Dsr,
}

struct Lab {
    dp: Dataplane,
    servers: Vec<Option<TcpServer>>,
    backends: Vec<Host>,
    client: Host,
    _peer: PeerPass,
    _lb: Host,
    _lan: Lan,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if args.connections == 0 || args.rounds == 0 {
        bail!("--connections and --rounds must be at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let forwarding = match args.forwarding {
        Mode::Nat => Forwarding::Nat,
        Mode::Dsr => Forwarding::Dsr,
    };
    println!("building the lab: client, LB, 3 backends on one bridge (network namespaces)");
    let mut lab = build(forwarding)?;
    let mut spec = service(forwarding);
    lab.dp.apply(std::slice::from_ref(&spec))?;
    println!(
        "VIP {}:80 ({:?}) -> backends {} with weights 1,1,1; XDP attached natively\n",
        lan_v4(VIP),
        forwarding,
        BACKENDS.map(|b| lan_v4(b).to_string()).join(", ")
    );
    let phases: [(&str, usize, Option<BackendState>); 4] = [
        ("all backends up", 1, None),
        (
            "operator drains backend 12: its flows stay, new ones avoid it",
            1,
            Some(BackendState::Drain),
        ),
        (
            "backend 12 down and its server stopped: traffic moves, nothing fails",
            1,
            Some(BackendState::Down),
        ),
        ("backend 12 back up", 1, Some(BackendState::Up)),
    ];
    for (title, victim, state) in phases {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(state) = state {
            spec.backends[victim].state = state;
            lab.dp.apply(std::slice::from_ref(&spec))?;
            match state {
                BackendState::Down => lab.servers[victim] = None,
                BackendState::Up => {
                    lab.servers[victim] = Some(TcpServer::spawn(
                        &lab.backends[victim].ns,
                        "[::]:80".parse()?,
                        &format!("backend-{}", BACKENDS[victim]),
                    )?)
                }
                BackendState::Drain => {}
            }
        }
        println!("== {title}");
        for _ in 0..args.rounds {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            round(&mut lab, &spec, args.connections)?;
        }
    }
    println!("cleaning up: namespaces, programs and servers are removed");
    Ok(())
}

fn build(forwarding: Forwarding) -> Result<Lab> {
    let lan = Lan::new()?;
    let lb = lan.host("lbdl", LB)?;
    let peer = PeerPass::attach(&lan.switch, &lb.port)?;
    let client = lan.host("lbdc", CLIENT)?;
    let backends: Vec<Host> = BACKENDS
        .iter()
        .map(|&n| lan.host("lbdb", n))
        .collect::<Result<_, _>>()?;
    lb.ns
        .ip(&["addr", "add", &format!("{}/32", lan_v4(VIP)), "dev", "eth0"])?;
    lb.ns.sysctl("net.ipv4.ip_forward", "1")?;
    let mut servers = Vec::new();
    for b in &backends {
        if forwarding == Forwarding::Dsr {
            b.ns.ip(&["addr", "add", &format!("{}/32", lan_v4(VIP)), "dev", "lo"])?;
            for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                for dev in ["all", "eth0"] {
                    b.ns.sysctl(&format!("net.ipv4.conf.{dev}.{k}"), v)?;
                }
            }
        }
        servers.push(Some(TcpServer::spawn(
            &b.ns,
            "[::]:80".parse()?,
            &format!("backend-{}", b.index),
        )?));
    }
    // Loaded and attached from a thread inside the LB's namespace.
    let dp = lb.ns.run(
        || -> Result<Dataplane, lb_agent::dataplane::DataplaneError> {
            let mut dp = Dataplane::load(Capacities {
                max_vips: 4,
                max_backends: 16,
                flow_table_size: 65_536,
                ..Capacities::default()
            })?;
            dp.attach("eth0", AttachMode::Native)?;
            Ok(dp)
        },
    )??;
    Ok(Lab {
        dp,
        servers,
        backends,
        client,
        _peer: peer,
        _lb: lb,
        _lan: lan,
    })
}

fn service(forwarding: Forwarding) -> ServiceSpec {
    ServiceSpec {
        name: "demo-web".into(),
        vip: lan_v4(VIP),
        port: 80,
        protocol: Protocol::Tcp,
        forwarding,
        snat: Some(lan_v4(LB)),
        on_no_backend: NoBackend::Reset,
        backends: BACKENDS
            .iter()
            .map(|&n| BackendSpec {
                addr: lan_v4(n),
                port: 0,
                weight: 1,
                state: BackendState::Up,
            })
            .collect(),
    }
}

fn round(lab: &mut Lab, spec: &ServiceSpec, count: u32) -> Result<()> {
    let before: Vec<_> = slots(lab, spec)?
        .into_iter()
        .map(|s| lab.dp.backend_traffic(s))
        .collect::<Result<_, _>>()?;
    let tally = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        count,
        Duration::from_secs(2),
    )?;
    let secs = tally.elapsed.as_secs_f64().max(1e-6);
    println!(
        "  {count} connections in {:.2} s ({:.0}/s), failed: {}",
        secs,
        f64::from(count) / secs,
        tally.failures
    );
    println!(
        "  {:<16} {:<6} {:>9} {:>7} {:>10} {:>10}",
        "backend", "state", "answered", "share", "packets/s", "new flows"
    );
    let slots = slots(lab, spec)?;
    for (i, b) in spec.backends.iter().enumerate() {
        let now = lab.dp.backend_traffic(slots[i])?;
        let answered = tally
            .answers
            .get(&format!("backend-{}", BACKENDS[i]))
            .copied()
            .unwrap_or(0);
        println!(
            "  {:<16} {:<6} {:>9} {:>6.1}% {:>10.0} {:>10}",
            b.addr.to_string(),
            format!("{:?}", b.state).to_lowercase(),
            answered,
            100.0 * answered as f64 / f64::from(count),
            (now.packets - before[i].packets) as f64 / secs,
            now.new_flows - before[i].new_flows
        );
    }
    let c = lab.dp.global_counters()?;
    let shown: Vec<String> = Counter::ALL
        .iter()
        .filter(|k| c.get(**k) != 0)
        .map(|k| format!("{}={}", k.label(), c.get(*k)))
        .collect();
    println!("  data plane totals: {}\n", shown.join(" "));
    if let Some(first) = &tally.first_failure {
        println!("  first failure: {first}");
    }
    Ok(())
}

fn slots(lab: &Lab, spec: &ServiceSpec) -> Result<Vec<u32>> {
    spec.backends
        .iter()
        .map(|b| {
            lab.dp
                .backend_slot(spec.vip, spec.port, spec.protocol, b.addr, b.port)
                .with_context(|| format!("backend {} is not programmed", b.addr))
        })
        .collect()
}
