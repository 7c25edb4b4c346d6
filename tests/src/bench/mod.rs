//! `cargo xtask bench`: the same workloads through every peer, each in a fresh lab,
//! in one run. See `lab` for the topology and the core split, `peers` for what is
//! compared, and bench/RESULTS.md for method and results.

pub mod conn;
pub mod cpu;
pub mod generator;
pub mod lab;
pub mod peers;
pub mod plot;
pub mod routed;
pub mod scale;
pub mod stacked;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use conn::ConnResult;
use lab::{BACKENDS, GEN_A, LB_CPU, Lab, PeerProg};
use lb_common::PROG_PEER_PASS;
use peers::{BULK_PORT, HTTP_PORT, Peer, Running};

/// How long and how hard each workload runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub length: Duration,
    /// Client threads of the connection workload.
    pub threads: usize,
    /// Flows (source ports) of the packet-rate workload.
    pub flows: u32,
}

/// Packet rate through one peer.
#[derive(Clone, Debug, Default)]
pub struct PpsResult {
    pub offered_pps: f64,
    pub forwarded_pps: f64,
    /// Busy seconds of the LB core during the run.
    pub lb_busy_s: f64,
    pub secs: f64,
    /// The XDP program's own ns per packet (bpf_stats), for the XDP peers.
    pub prog_ns: Option<f64>,
    /// The data plane's counters that moved (XDP peers).
    pub counters: Vec<(String, u64)>,
}

impl PpsResult {
    /// LB core time per forwarded packet, ns.
    pub fn cpu_ns_per_packet(&self) -> f64 {
        self.lb_busy_s * 1e9 / (self.forwarded_pps * self.secs).max(1.0)
    }
}

/// A TCP workload's LB-side cost.
#[derive(Clone, Debug, Default)]
pub struct LbCost {
    pub busy_s: f64,
    /// Packets the LB's interfaces received.
    pub packets: u64,
}

impl LbCost {
    pub fn ns_per_packet(&self) -> Option<f64> {
        (self.packets > 0).then(|| self.busy_s * 1e9 / self.packets as f64)
    }
}

#[derive(Clone, Debug)]
pub struct BulkResult {
    pub bits_per_s: f64,
    pub cost: LbCost,
}

/// Packet rate: UDP frames from the generator over `flows` flows, counted by a sink.
pub fn packet_rate(peer: Peer, o: &Options) -> Result<Option<PpsResult>> {
    if !peer.does_udp() {
        return Ok(None);
    }
    let mut lab = Lab::build(peer == Peer::XdpDsr)?;
    let mut running = Running::start(&lab, peer)?;
    // A veth receives XDP-sent frames only with a program of its own: the kernel
    // forwarders get a pass program on the LB's receiving end.
    let _pass = (peer == Peer::Nftables)
        .then(|| PeerProg::attach(&lab.lb, "a1", PROG_PEER_PASS))
        .transpose()?;
    let (out_dev, in_dev, sink_dev, dst) = if peer == Peer::Direct {
        ("c0", "c1", "c1", std::net::IpAddr::V4(BACKENDS[0]))
    } else {
        ("a0", "a1", "b0", lab::vip())
    };
    let peer_ns = if peer == Peer::Direct {
        &lab.srv
    } else {
        &lab.lb
    };
    let macs = (lab.gen_ns.mac(out_dev)?, peer_ns.mac(in_dev)?);
    let frame = generator::udp_frame(std::net::IpAddr::V4(GEN_A), dst, macs)?;
    lab.sink(sink_dev)?;
    lab.pin_napi_threads()?;
    let generator = generator::Generator::load(&frame, o.flows)?;
    // Warm up: neighbours resolved, flows created.
    generator.run(&lab.gen_ns, out_dev, &frame, Duration::from_millis(300))?;
    std::thread::sleep(Duration::from_millis(200));
    let sink = |lab: &Lab| -> Result<u64> {
        lab.progs
            .iter()
            .find(|(d, _)| d == sink_dev)
            .context("sink")?
            .1
            .sink_count()
    };
    let prog_stats = |running: &Running| -> Result<Option<(u64, Duration)>> {
        match &running.dp {
            Some(dp) => {
                let info = dp.xdp()?.info()?;
                Ok(Some((info.run_count(), info.run_time())))
            }
            None => Ok(None),
        }
    };
    let sink0 = sink(&lab)?;
    let stats0 = prog_stats(&running)?;
    let ((sent, took), busy) = cpu::measure(LB_CPU, || {
        generator.run(&lab.gen_ns, out_dev, &frame, o.length)
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let forwarded = sink(&lab)? - sink0;
    let stats1 = prog_stats(&running)?;
    let secs = took.as_secs_f64();
    let prog_ns = match (stats0, stats1) {
        (Some((c0, t0)), Some((c1, t1))) if c1 > c0 => {
            Some(t1.saturating_sub(t0).as_nanos() as f64 / (c1 - c0) as f64)
        }
        _ => None,
    };
    let counters = match &mut running.dp {
        Some(dp) => {
            let c = dp.global_counters()?;
            lb_common::Counter::ALL
                .iter()
                .filter(|k| c.get(**k) != 0)
                .map(|k| (k.label().to_string(), c.get(*k)))
                .collect()
        }
        None => Vec::new(),
    };
    if forwarded == 0 {
        bail!("{}: nothing reached the sink", peer.name());
    }
    Ok(Some(PpsResult {
        offered_pps: sent as f64 / secs,
        forwarded_pps: forwarded as f64 / secs,
        lb_busy_s: busy,
        secs,
        prog_ns,
        counters,
    }))
}

/// New TCP connections with one request each, against nginx behind the peer.
pub fn connections(peer: Peer, o: &Options) -> Result<(ConnResult, LbCost)> {
    let lab = Lab::build(peer == Peer::XdpDsr)?;
    let _running = Running::start(&lab, peer)?;
    let targets = peer.targets(HTTP_PORT);
    // Warm up (neighbours, caches) before measuring.
    conn::run(&lab.gen_ns, &targets, 2, Duration::from_millis(300))?;
    let p0 = lb_packets(&lab)?;
    let (result, busy) = cpu::measure(LB_CPU, || {
        conn::run(&lab.gen_ns, &targets, o.threads, o.length)
    })?;
    let packets = lb_packets(&lab)? - p0;
    Ok((
        result,
        LbCost {
            busy_s: busy,
            packets,
        },
    ))
}

/// Bulk TCP: iperf3 with 8 streams to one backend behind the peer.
pub fn bulk(peer: Peer, o: &Options) -> Result<BulkResult> {
    let lab = Lab::build(peer == Peer::XdpDsr)?;
    let _running = Running::start(&lab, peer)?;
    let target = peer.targets(BULK_PORT)[0];
    let secs = o.length.as_secs().max(1).to_string();
    let p0 = lb_packets(&lab)?;
    let (json, busy) = cpu::measure(LB_CPU, || {
        lab.gen_ns
            .exec(&[
                "taskset",
                "-c",
                &lab::ENDPOINT_CPU.to_string(),
                "iperf3",
                "-c",
                &target.ip().to_string(),
                "-p",
                &BULK_PORT.to_string(),
                "-P",
                "8",
                "-t",
                &secs,
                "-J",
            ])
            .map_err(anyhow::Error::from)
    })?;
    let packets = lb_packets(&lab)? - p0;
    let v: serde_json::Value = serde_json::from_str(&json).context("iperf3 JSON")?;
    let bits_per_s = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3: no result in {}", &json[..json.len().min(300)]))?;
    Ok(BulkResult {
        bits_per_s,
        cost: LbCost {
            busy_s: busy,
            packets,
        },
    })
}

/// Packets received by the LB's two interfaces.
fn lb_packets(lab: &Lab) -> Result<u64> {
    Ok(lab.lb_packets("a1")?.0 + lab.lb_packets("b1")?.0)
}
