//! The benchmark's lab, built fresh for every peer: three namespaces joined by veths.
//!
//! ```text
//!   gen  a0 ───── a1  lb  b1 ───── b0  srv (backends .11 .12 .13, sinks)
//!    c0 ─────────────────────────── c1
//! ```
//! `gen` (client, traffic generator) reaches the VIP through `lb` and the backends
//! directly over `c` (the no-LB path, and DSR's return path). Every veth end uses
//! threaded NAPI: the kernel threads of `lb`'s two ends run on the LB core, all the
//! others on the endpoints' core, so the LB's work (XDP, netfilter, HAProxy's
//! sockets) lands on one core whose busy time is its cost. The ends that are not the
//! LB's carry a pass program (a veth picks up XDP-sent frames only then); the same
//! in every lab, so the endpoints' stacks are the same for every peer.

use std::{
    net::{IpAddr, Ipv4Addr},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{Xdp, XdpMode},
};
use lb_agent::{dataplane::LB_PEER_OBJECT, lab::Netns};
use lb_common::{MAP_SINK_COUNT, PROG_PEER_PASS, PROG_SINK};

/// The core the load balancer gets; everything else runs on the other.
pub const LB_CPU: usize = 1;
pub const ENDPOINT_CPU: usize = 0;

pub const GEN_A: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);
pub const LB_A: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);
pub const LB_B: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);
pub const GEN_C: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 1);
pub const SRV_C: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 2);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 10);
pub const BACKENDS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 18, 11, 11),
    Ipv4Addr::new(198, 18, 11, 12),
    Ipv4Addr::new(198, 18, 11, 13),
];

/// An XDP program of the `lb-peer` object attached to one interface.
pub struct PeerProg {
    ebpf: Ebpf,
}

impl PeerProg {
    /// Attaches `prog` (pass or sink) to `dev` in `ns`, native mode.
    pub fn attach(ns: &Netns, dev: &str, prog: &'static str) -> Result<Self> {
        let dev = dev.to_string();
        let ebpf = ns.run(move || -> Result<Ebpf> {
            let mut e = Ebpf::load(LB_PEER_OBJECT)?;
            let p: &mut Xdp = e
                .program_mut(prog)
                .with_context(|| format!("program {prog}"))?
                .try_into()?;
            p.load()?;
            p.attach(&dev, XdpMode::Driver)
                .with_context(|| format!("attach {prog} to {dev}"))?;
            Ok(e)
        })??;
        Ok(Self { ebpf })
    }

    /// Frames a sink counted and dropped.
    pub fn sink_count(&self) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_SINK_COUNT).context("sink map")?)?;
        Ok(m.get(&0, 0)?.iter().sum())
    }
}

/// The three namespaces and the programs on the endpoints' veth ends.
pub struct Lab {
    pub gen_ns: Netns,
    pub lb: Netns,
    pub srv: Netns,
    /// Endpoint programs by interface; replaced by sinks for packet-rate runs.
    pub progs: Vec<(String, PeerProg)>,
}

/// One veth end: namespace, name, address/prefix.
struct End<'a> {
    ns: &'a Netns,
    dev: &'a str,
    addr: String,
}

impl Lab {
    /// Builds the lab. `dsr`: the backends also hold the VIP on loopback.
    pub fn build(dsr: bool) -> Result<Self> {
        let (gen_ns, lb, srv) = (
            Netns::new("lbbg")?,
            Netns::new("lbbl")?,
            Netns::new("lbbs")?,
        );
        gen_ns.veth("a0", &lb, "a1")?;
        lb.veth("b1", &srv, "b0")?;
        gen_ns.veth("c0", &srv, "c1")?;
        let ends = [
            End {
                ns: &gen_ns,
                dev: "a0",
                addr: format!("{GEN_A}/24"),
            },
            End {
                ns: &lb,
                dev: "a1",
                addr: format!("{LB_A}/24"),
            },
            End {
                ns: &lb,
                dev: "b1",
                addr: format!("{LB_B}/24"),
            },
            End {
                ns: &srv,
                dev: "b0",
                addr: format!("{}/24", BACKENDS[0]),
            },
            End {
                ns: &gen_ns,
                dev: "c0",
                addr: format!("{GEN_C}/24"),
            },
            End {
                ns: &srv,
                dev: "c1",
                addr: format!("{SRV_C}/24"),
            },
        ];
        for e in &ends {
            e.ns.ip(&["addr", "add", &e.addr, "dev", e.dev])?;
            // Complete checksums on the wire: XDP forwards bytes, it cannot finish a
            // CHECKSUM_PARTIAL packet (see lb_agent::lab::Lan).
            e.ns.exec(&["ethtool", "-K", e.dev, "tx", "off", "gro", "on"])?;
            e.ns.ip(&["link", "set", e.dev, "up"])?;
        }
        for b in &BACKENDS[1..] {
            srv.ip(&["addr", "add", &format!("{b}/24"), "dev", "b0"])?;
        }
        gen_ns.ip(&["route", "add", "198.18.20.0/24", "via", &LB_A.to_string()])?;
        gen_ns.ip(&["route", "add", "198.18.11.0/24", "via", &SRV_C.to_string()])?;
        srv.ip(&["route", "add", "198.18.10.0/24", "via", &GEN_C.to_string()])?;
        lb.sysctl("net.ipv4.ip_forward", "1")?;
        for (ns, k, v) in [
            (&gen_ns, "net.ipv4.ip_local_port_range", "1024 65535"),
            (&gen_ns, "net.ipv4.tcp_tw_reuse", "1"),
            (&lb, "net.ipv4.ip_local_port_range", "1024 65535"),
            (&lb, "net.ipv4.tcp_tw_reuse", "1"),
            (&srv, "net.core.somaxconn", "4096"),
            (&srv, "net.ipv4.tcp_max_syn_backlog", "4096"),
        ] {
            ns.sysctl(k, v)?;
        }
        if dsr {
            srv.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                for dev in ["all", "b0"] {
                    srv.sysctl(&format!("net.ipv4.conf.{dev}.{k}"), v)?;
                }
            }
        }
        // Static neighbours: a sink drops ARP too, and resolution is not what is
        // measured.
        let b0 = srv.mac("b0")?;
        for b in BACKENDS {
            lb.static_neighbour(IpAddr::V4(b), b0, "b1")?;
        }
        lb.static_neighbour(IpAddr::V4(GEN_A), gen_ns.mac("a0")?, "a1")?;
        let mut progs = Vec::new();
        for (ns, dev) in [(&gen_ns, "a0"), (&srv, "b0"), (&gen_ns, "c0"), (&srv, "c1")] {
            progs.push((dev.to_string(), PeerProg::attach(ns, dev, PROG_PEER_PASS)?));
        }
        let lab = Self {
            gen_ns,
            lb,
            srv,
            progs,
        };
        lab.pin_napi_threads()?;
        Ok(lab)
    }

    /// Replaces the pass program on `dev` (an endpoint end) with a sink.
    pub fn sink(&mut self, dev: &str) -> Result<&PeerProg> {
        let i = self
            .progs
            .iter()
            .position(|(d, _)| d == dev)
            .with_context(|| format!("no endpoint interface {dev}"))?;
        let ns = if dev.starts_with('a') || dev == "c0" {
            &self.gen_ns
        } else {
            &self.srv
        };
        // Detach the pass program first (drop), then attach the sink.
        self.progs.remove(i);
        let sink = PeerProg::attach(ns, dev, PROG_SINK)?;
        self.progs.push((dev.to_string(), sink));
        Ok(&self.progs[self.progs.len() - 1].1)
    }

    /// Turns on threaded NAPI on every veth end and pins each end's kernel thread:
    /// the LB's ends to the LB core, the others to the endpoints' core. Also pins
    /// threads created later when an interface gets a new program (called again).
    pub fn pin_napi_threads(&self) -> Result<()> {
        for (ns, dev, cpu) in [
            (&self.gen_ns, "a0", ENDPOINT_CPU),
            (&self.lb, "a1", LB_CPU),
            (&self.lb, "b1", LB_CPU),
            (&self.srv, "b0", ENDPOINT_CPU),
            (&self.gen_ns, "c0", ENDPOINT_CPU),
            (&self.srv, "c1", ENDPOINT_CPU),
        ] {
            ns.exec(&[
                "sh",
                "-c",
                &format!("echo 1 > /sys/class/net/{dev}/threaded"),
            ])?;
            for pid in napi_threads(dev)? {
                pin(pid, cpu)?;
            }
        }
        Ok(())
    }

    /// Interface counters (rx, tx packets) of `dev` in the LB namespace.
    pub fn lb_packets(&self, dev: &str) -> Result<(u64, u64)> {
        let read = |what: &str| -> Result<u64> {
            let v = self
                .lb
                .exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{what}")])?;
            v.trim()
                .parse()
                .with_context(|| format!("{dev} {what}: {v:?}"))
        };
        Ok((read("rx_packets")?, read("tx_packets")?))
    }
}

/// Kernel threads named `napi/DEV-*`: this lab's (labs are built one at a time and
/// these interface names are the benchmark's own).
fn napi_threads(dev: &str) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim().starts_with(&format!("napi/{dev}-")) {
            pids.push(pid);
        }
    }
    if pids.is_empty() {
        bail!("no NAPI thread for {dev}: threaded NAPI not enabled?");
    }
    Ok(pids)
}

/// Pins process or thread `pid` to `cpu`.
pub fn pin(pid: u32, cpu: usize) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .context("taskset")?;
    if !out.status.success() {
        bail!(
            "taskset {pid} -> cpu {cpu}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn vip() -> IpAddr {
    IpAddr::V4(VIP)
}
