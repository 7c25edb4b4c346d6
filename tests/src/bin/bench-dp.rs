//! `cargo xtask bench-dp`: the XDP program's own cost per packet, from the kernel's
//! BPF run-time statistics (`BPF_ENABLE_STATS`), under real traffic on a veth.
//!
//! Lab: a generator namespace and an LB namespace joined by one veth. The generator
//! sends crafted UDP frames with an AF_PACKET socket; the LB runs the program in
//! native mode; what the LB sends back is counted and dropped by `lb_sink` on the
//! generator's end. Scenarios, all in one run: the floor program (parse, swap MACs,
//! XDP_TX), non-VIP pass, new flow and established flow (NAT and DSR), NAT reply.
//! Output: a markdown table (ns per packet, ratio to the floor).
//!
//! `--steady`: the same scenarios without traffic, steadier on a shared machine
//! (traffic-driven figures swing by 2x from day to day here): each scenario's frames
//! go through `BPF_PROG_TEST_RUN` one packet per call (the kernel copies the frame in
//! for every call, so a rewriting program never sees its own output), the scenarios
//! and the floor take turns in blocks, the cost is bpf_stats' run time over run
//! count per block, and each row is the median over the rounds.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{Xdp, XdpMode},
    sys::{Stats, enable_stats},
};
use lb_agent::{
    dataplane::{
        AttachMode, BackendSpec, Capacities, Dataplane, FlowTimeouts, Forwarding, LB_PEER_OBJECT,
        NoBackend, Protocol, ServiceSpec,
    },
    lab::Netns,
};
use lb_common::{MAP_SINK_COUNT, PROG_SINK, maps::addr::from_words};
use tests::{
    harness::ip,
    packet::{DEFAULT_DST_MAC, DEFAULT_SRC_MAC, Frame},
    rawsock::RawSender,
};

/// The generator's end of the veth.
const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const NAT_PORT: u16 = 53;
const DSR_PORT: u16 = 54;
const ESTABLISHED_FLOWS: usize = 1000;

struct Args {
    packets: usize,
    flows: usize,
    /// `BPF_PROG_TEST_RUN` blocks instead of traffic.
    steady: bool,
    /// Rounds of the steady mode.
    rounds: usize,
    /// Steady mode: only the scenarios whose name contains this (and the floor), for
    /// a profiler attached meanwhile.
    only: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        packets: 200_000,
        flows: 60_000,
        steady: false,
        rounds: 31,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |name: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match k.as_str() {
            "--packets" => a.packets = num("--packets")?,
            "--flows" => a.flows = num("--flows")?,
            "--quick" => {
                a.packets = 20_000;
                a.flows = 5_000;
                a.rounds = 7;
            }
            "--steady" => a.steady = true,
            "--rounds" => a.rounds = num("--rounds")?,
            "--only" => a.only = Some(it.next().context("--only needs a scenario name")?),
            other => bail!(
                "unknown argument {other} (expected --packets N, --flows N, --quick, --steady, \
                 --rounds N, --only NAME)"
            ),
        }
    }
    if a.packets == 0 || a.flows == 0 || a.flows > 150_000 {
        bail!("--packets must be > 0 and --flows in 1..=150000");
    }
    if a.rounds == 0 || a.rounds > 1000 {
        bail!("--rounds must be in 1..=1000");
    }
    Ok(a)
}

/// One result row.
struct Row {
    name: &'static str,
    ns: f64,
    packets: u64,
    forwarded: u64,
    pps: f64,
}

struct Bench {
    sender: RawSender,
    sink: Ebpf,
}

impl Bench {
    fn sink_count(&self) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.sink.map(MAP_SINK_COUNT).context("sink map")?)?;
        Ok(m.get(&0, 0)?.iter().sum())
    }

    /// Sends `count` frames cycling over `frames`, measuring `prog`.
    fn run(&self, name: &'static str, prog: &Xdp, frames: &[Vec<u8>], count: usize) -> Result<Row> {
        let info0 = prog.info()?;
        let sink0 = self.sink_count()?;
        let start = Instant::now();
        for i in 0..count {
            self.sender.send(&frames[i % frames.len()])?;
        }
        let sent_in = start.elapsed();
        // Let the last frames drain through the veth.
        std::thread::sleep(Duration::from_millis(200));
        let info1 = prog.info()?;
        let runs = info1.run_count() - info0.run_count();
        let time = info1.run_time().saturating_sub(info0.run_time());
        if runs == 0 {
            bail!("{name}: the program never ran (is the veth up, XDP attached?)");
        }
        Ok(Row {
            name,
            ns: time.as_nanos() as f64 / runs as f64,
            packets: runs,
            forwarded: self.sink_count()? - sink0,
            pps: count as f64 / sent_in.as_secs_f64(),
        })
    }
}

fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    Frame::udp(src, sport, dst, dport)
        .payload(&[0u8; 18])
        .macs(DEFAULT_SRC_MAC, DEFAULT_DST_MAC)
        .build()
}

/// `n` distinct client flows to the VIP port.
fn flows(n: usize, vip: IpAddr, port: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let client = ip(&format!("198.18.0.{}", 100 + i / 60_000));
            udp(client, 1024 + (i % 60_000) as u16, vip, port)
        })
        .collect()
}

fn main() -> Result<()> {
    let args = args()?;
    if args.steady {
        return steady::run(args.rounds, args.packets / 20, args.only.as_deref());
    }
    let (gen_ns, lb_ns) = (Netns::new("lbbg")?, Netns::new("lbbl")?);
    gen_ns.veth("eth0", &lb_ns, "eth0")?;
    gen_ns.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:01", "up"])?;
    lb_ns.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:02", "up"])?;
    lb_ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"])?;
    lb_ns.ip(&["addr", "add", "198.18.0.10/32", "dev", "eth0"])?;
    lb_ns.sysctl("net.ipv4.ip_forward", "1")?;
    // Backends and clients all sit behind the generator's end of the veth.
    for host in ["11", "12", "13", "100", "101", "102"] {
        lb_ns.static_neighbour(ip(&format!("198.18.0.{host}")), GEN_MAC, "eth0")?;
    }
    let gen_if = gen_ns.ifindex("eth0")?;
    let sender = gen_ns.run(move || RawSender::bind(gen_if))??;
    let sink = gen_ns.run(|| -> Result<Ebpf> {
        let mut e = Ebpf::load(LB_PEER_OBJECT)?;
        let p: &mut Xdp = e
            .program_mut(PROG_SINK)
            .context("sink program")?
            .try_into()?;
        p.load()?;
        p.attach("eth0", XdpMode::Driver)?;
        Ok(e)
    })??;
    let bench = Bench { sender, sink };
    let mut dp = lb_ns.run(|| {
        Dataplane::load(Capacities {
            max_vips: 4,
            max_backends: 16,
            flow_table_size: 262_144,
            snat_ports: 1024..=65535,
            ..Capacities::default()
        })
    })??;
    let vip = ip("198.18.0.10");
    let service = |name: &str, port, forwarding| ServiceSpec {
        name: name.into(),
        vip,
        port,
        protocol: Protocol::Udp,
        forwarding,
        snat: vec![ip("198.18.0.1")],
        on_no_backend: NoBackend::Drop,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
            .iter()
            .map(|a| BackendSpec::up(ip(a)))
            .collect(),
    };
    dp.apply(&[
        service("nat", NAT_PORT, Forwarding::Nat),
        service("dsr", DSR_PORT, Forwarding::Dsr),
    ])?;
    let _stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
    eprintln!(
        "bench-dp: {} packets per scenario, {} new flows",
        args.packets, args.flows
    );

    let mut rows = Vec::new();
    let established_nat = flows(ESTABLISHED_FLOWS, vip, NAT_PORT);
    // The floor program alone on the LB's interface.
    {
        let floor = dp.floor_program()?;
        let id = attach_in(&lb_ns, floor)?;
        eprintln!("bench-dp: floor");
        rows.push(bench.run(
            "floor (parse, swap MACs, XDP_TX)",
            floor,
            &established_nat,
            args.packets,
        )?);
        floor.detach(id)?;
    }
    attach_lb(&lb_ns, &mut dp)?;
    let prog = dp.xdp()?;
    eprintln!("bench-dp: non-VIP pass");
    let other = vec![udp(ip("198.18.0.100"), 4000, ip("198.18.0.50"), 9)];
    rows.push(bench.run("non-VIP pass", prog, &other, args.packets)?);
    eprintln!("bench-dp: new flows, NAT");
    let fresh_nat = flows(args.flows, vip, NAT_PORT);
    rows.push(bench.run("new flow, NAT", prog, &fresh_nat, args.flows)?);
    eprintln!("bench-dp: established flows, NAT");
    rows.push(bench.run(
        "established flow, NAT",
        prog,
        &established_nat,
        args.packets,
    )?);
    eprintln!("bench-dp: new flows, DSR");
    let fresh_dsr = flows(args.flows, vip, DSR_PORT);
    rows.push(bench.run("new flow, DSR", prog, &fresh_dsr, args.flows)?);
    eprintln!("bench-dp: established flows, DSR");
    let established_dsr = flows(ESTABLISHED_FLOWS, vip, DSR_PORT);
    rows.push(bench.run(
        "established flow, DSR",
        prog,
        &established_dsr,
        args.packets,
    )?);
    eprintln!("bench-dp: NAT replies");
    let replies: Vec<Vec<u8>> = dp
        .nat_bindings()?
        .into_iter()
        .take(ESTABLISHED_FLOWS)
        .map(|(k, _)| {
            udp(
                from_words(k.src, k.family),
                u16::from_be(k.sport),
                from_words(k.dst, k.family),
                u16::from_be(k.dport),
            )
        })
        .collect();
    if replies.is_empty() {
        bail!("no NAT bindings to reply to");
    }
    let prog = dp.xdp()?;
    rows.push(bench.run("NAT reply", prog, &replies, args.packets)?);
    report(&rows);
    Ok(())
}

fn attach_in(ns: &Netns, prog: &mut Xdp) -> Result<aya::programs::xdp::XdpLinkId> {
    // Interface names resolve in the calling thread's namespace: enter, attach, and
    // come back to where this thread was.
    let home = std::fs::File::open("/proc/thread-self/ns/net")?;
    ns.enter_current_thread()?;
    let res = prog.attach("eth0", XdpMode::Driver);
    back(&home)?;
    Ok(res?)
}

fn attach_lb(ns: &Netns, dp: &mut Dataplane) -> Result<()> {
    let home = std::fs::File::open("/proc/thread-self/ns/net")?;
    ns.enter_current_thread()?;
    let res = dp.attach("eth0", AttachMode::Native);
    back(&home)?;
    res?;
    Ok(())
}

fn back(home: &std::fs::File) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on an open namespace fd of our own thread's former namespace.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot return to the original namespace: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn report(rows: &[Row]) {
    let floor = rows.first().map_or(1.0, |r| r.ns);
    println!(
        "| scenario | ns/packet (bpf_stats) | x floor | packets run | sent back by XDP | send rate (pps) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.2} | {} | {} | {:.0} |",
            r.name,
            r.ns,
            r.ns / floor,
            r.packets,
            r.forwarded,
            r.pps
        );
    }
}

/// `--steady`: scenarios through `BPF_PROG_TEST_RUN`, in turns, medians over rounds.
mod steady {
    use std::net::IpAddr;

    use anyhow::{Context as _, Result, bail};
    use aya::{
        programs::{TestRun as _, TestRunOptions, Xdp},
        sys::{Stats, enable_stats},
    };
    use lb_agent::dataplane::{
        BackendSpec, Capacities, FlowTimeouts, Forwarding, NoBackend, Protocol, ServiceSpec,
    };
    use lb_common::maps::addr::from_words;
    use tests::harness::{PacketLab, ip, v4};

    use super::{DSR_PORT, NAT_PORT, flows, udp};

    /// Flows of each established scenario.
    const STEADY_FLOWS: usize = 1;

    /// One scenario: its frames (cycled) and whether every frame is a new flow.
    struct Scenario {
        name: &'static str,
        frames: Vec<Vec<u8>>,
        floor: bool,
    }

    /// Runs `frames[i % len]` `count` times, one call each, from `first`: the
    /// program's ns per run (bpf_stats) and the next frame index.
    fn block(
        prog: &Xdp,
        ifindex: u32,
        frames: &[Vec<u8>],
        first: usize,
        count: usize,
    ) -> Result<(f64, usize)> {
        let info0 = prog.info()?;
        let mut out = vec![0u8; 2048];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        for i in 0..count {
            let frame = &frames[(first + i) % frames.len()];
            let ctx_words = [0u32, frame.len() as u32, 0, ifindex, 0, 0];
            let ctx_in: Vec<u8> = ctx_words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(frame);
            opts.data_out = Some(&mut out);
            opts.ctx_in = Some(&ctx_in);
            prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
        }
        let info1 = prog.info()?;
        let runs = info1.run_count() - info0.run_count();
        if runs == 0 {
            bail!("the program never ran");
        }
        let ns = info1.run_time().saturating_sub(info0.run_time()).as_nanos() as f64 / runs as f64;
        Ok((ns, first + count))
    }

    fn new_lab() -> PacketLab {
        PacketLab::with_caps(Capacities {
            max_vips: 4,
            max_backends: 16,
            flow_table_size: 262_144,
            snat_ports: 1024..=65535,
            ..Capacities::default()
        })
    }

    fn services(lab: &mut PacketLab) {
        let plan = v4();
        let service = |name: &str, port, forwarding| ServiceSpec {
            name: name.into(),
            vip: plan.vip,
            port,
            protocol: Protocol::Udp,
            forwarding,
            snat: vec![plan.lb],
            on_no_backend: NoBackend::Drop,
            standby: false,
            timeouts: FlowTimeouts::default(),
            backends: plan.backends.iter().map(|b| BackendSpec::up(*b)).collect(),
        };
        lab.apply(&[
            service("nat", NAT_PORT, Forwarding::Nat),
            service("dsr", DSR_PORT, Forwarding::Dsr),
        ]);
    }

    /// Runs the scenarios in turns, `rounds` times: each one's median ns per packet.
    fn turns(
        lab: &mut PacketLab,
        scenarios: &[Scenario],
        rounds: usize,
        per_block: usize,
    ) -> Result<Vec<f64>> {
        let ifindex = lab.ifindex;
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
        let mut next = vec![0usize; scenarios.len()];
        for _ in 0..rounds {
            for (i, sc) in scenarios.iter().enumerate() {
                let (ns, n) = if sc.floor {
                    block(
                        lab.dp.floor_program()?,
                        ifindex,
                        &sc.frames,
                        next[i],
                        per_block,
                    )?
                } else {
                    block(lab.dp.xdp()?, ifindex, &sc.frames, next[i], per_block)?
                };
                samples[i].push(ns);
                next[i] = n;
            }
        }
        Ok(samples.into_iter().map(super::median).collect())
    }

    pub fn run(rounds: usize, per_block: usize, only: Option<&str>) -> Result<()> {
        let keep = |sc: &Scenario| sc.floor || only.is_none_or(|o| sc.name.contains(o));
        let per_block = per_block.max(500);
        // One CPU for every call: its caches and the per-CPU maps (scratch, next
        // hops, counters) stay warm, as on a NIC queue's CPU.
        tests::bench::lab::pin(std::process::id(), tests::bench::lab::LB_CPU)?;
        let plan = v4();
        let vip = plan.vip;
        let _stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
        eprintln!(
            "bench-dp --steady: {rounds} rounds, {per_block} packets per scenario per round, \
             one BPF_PROG_TEST_RUN call per packet"
        );
        // Established flows, replies and passes in one lab; new flows in another, so
        // the flows they add do not fill the table the established ones are in.
        let mut lab = new_lab();
        services(&mut lab);
        // One frame per scenario, as the method has it: the packet's path
        // through the program, its maps' lines warm in the cache; what the traffic
        // benchmark adds is the memory of many flows, and the noise with it.
        let established_nat = flows(STEADY_FLOWS, vip, NAT_PORT);
        let established_dsr = flows(STEADY_FLOWS, vip, DSR_PORT);
        for f in established_nat.iter().chain(&established_dsr) {
            lab.run(f);
        }
        let replies: Vec<Vec<u8>> = lab
            .dp
            .nat_bindings()?
            .into_iter()
            .take(STEADY_FLOWS)
            .map(|(k, _)| {
                udp(
                    from_words(k.src, k.family),
                    u16::from_be(k.sport),
                    from_words(k.dst, k.family),
                    u16::from_be(k.dport),
                )
            })
            .collect();
        if replies.is_empty() {
            bail!("no NAT bindings to reply to");
        }
        let mut steady = vec![
            Scenario {
                name: "floor (parse, swap MACs, XDP_TX)",
                frames: established_nat.clone(),
                floor: true,
            },
            Scenario {
                name: "non-VIP pass",
                frames: vec![udp(plan.client, 4000, ip("198.18.0.50"), 9)],
                floor: false,
            },
            Scenario {
                name: "established flow, NAT",
                frames: established_nat.clone(),
                floor: false,
            },
            Scenario {
                name: "established flow, DSR",
                frames: established_dsr,
                floor: false,
            },
            Scenario {
                name: "NAT reply",
                frames: replies,
                floor: false,
            },
        ];
        steady.retain(keep);
        let first = turns(&mut lab, &steady, rounds, per_block)?;
        let counters = lab.dp.global_counters()?;
        drop(lab);

        // New flows: far fewer than the ports of one SNAT address x 3 backends.
        let per_new = per_block.min(90_000 / rounds / 2).max(1);
        let fresh = |port| -> Vec<Vec<u8>> {
            (0..rounds * per_new)
                .map(|i| {
                    let client: IpAddr =
                        ip(&format!("198.19.{}.{}", 1 + (i / 250) % 250, 1 + i % 250));
                    udp(client, 1024 + (i % 60_000) as u16, vip, port)
                })
                .collect()
        };
        let mut lab = new_lab();
        services(&mut lab);
        let mut new = vec![
            Scenario {
                name: "floor (parse, swap MACs, XDP_TX)",
                frames: established_nat,
                floor: true,
            },
            Scenario {
                name: "new flow, NAT",
                frames: fresh(NAT_PORT),
                floor: false,
            },
            Scenario {
                name: "new flow, DSR",
                frames: fresh(DSR_PORT),
                floor: false,
            },
        ];
        new.retain(keep);
        let second = if new.len() > 1 {
            turns(&mut lab, &new, rounds, per_new)?
        } else {
            Vec::new()
        };

        println!(
            "| scenario (steady: BPF_PROG_TEST_RUN, medians of {rounds} rounds) | ns/packet (bpf_stats) | x floor |"
        );
        println!("|---|---:|---:|");
        let rows = steady
            .iter()
            .zip(first.iter().map(|ns| (*ns, first[0])))
            .chain(
                new.iter()
                    .zip(second.iter().map(|ns| (*ns, second[0])))
                    .skip(1),
            );
        for (sc, (ns, floor)) in rows {
            println!("| {} | {:.1} | {:.2} |", sc.name, ns, ns / floor.max(1e-9));
        }
        let moved: Vec<String> = lb_common::Counter::ALL
            .iter()
            .filter(|c| counters.get(**c) != 0)
            .map(|c| format!("{}={}", c.label(), counters.get(*c)))
            .collect();
        eprintln!(
            "bench-dp --steady: counters of the established lab: {}",
            moved.join(" ")
        );
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
