//! What sits between client and backends in each run: nothing (the no-LB limit), the
//! XDP data plane in NAT or DSR mode, HAProxy in `mode tcp`, or nftables DNAT; and
//! the real servers behind (nginx for connections, iperf3 for bulk).

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use lb_agent::{
    dataplane::{
        AttachMode, BackendSpec, Capacities, Dataplane, FlowTimeouts, Forwarding, NoBackend,
        Protocol, ServiceSpec,
    },
    lab::{Netns, unique_name},
};

use super::lab::{BACKENDS, ENDPOINT_CPU, LB_B, LB_CPU, Lab, VIP, vip};

/// Port of the connection workload (nginx), the bulk workload (iperf3, one backend)
/// and the packet-rate workload (UDP, sinks).
pub const HTTP_PORT: u16 = 80;
pub const BULK_PORT: u16 = 5201;
pub const UDP_PORT: u16 = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Direct,
    XdpNat,
    XdpDsr,
    Haproxy,
    Nftables,
}

impl Peer {
    pub const ALL: [Peer; 5] = [
        Peer::Direct,
        Peer::XdpNat,
        Peer::XdpDsr,
        Peer::Haproxy,
        Peer::Nftables,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Direct => "no LB (client to backends)",
            Peer::XdpNat => "lb XDP, NAT",
            Peer::XdpDsr => "lb XDP, DSR",
            Peer::Haproxy => "HAProxy mode tcp",
            Peer::Nftables => "nftables DNAT",
        }
    }

    /// The name `--only` takes.
    pub fn key(self) -> &'static str {
        match self {
            Peer::Direct => "direct",
            Peer::XdpNat => "xdp-nat",
            Peer::XdpDsr => "xdp-dsr",
            Peer::Haproxy => "haproxy",
            Peer::Nftables => "nftables",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Peer::Direct => "no LB",
            Peer::XdpNat => "XDP nat",
            Peer::XdpDsr => "XDP dsr",
            Peer::Haproxy => "HAProxy",
            Peer::Nftables => "nftables",
        }
    }

    /// Whether the peer forwards UDP (HAProxy cannot).
    pub fn does_udp(self) -> bool {
        self != Peer::Haproxy
    }

    /// Where the client sends a workload on `port`: the VIP, or for the no-LB run
    /// the backends themselves.
    pub fn targets(self, port: u16) -> Vec<SocketAddr> {
        if self == Peer::Direct {
            let backends: &[_] = if port == BULK_PORT {
                &BACKENDS[..1]
            } else {
                &BACKENDS
            };
            backends
                .iter()
                .map(|b| SocketAddr::new(IpAddr::V4(*b), port))
                .collect()
        } else {
            vec![SocketAddr::new(vip(), port)]
        }
    }
}

/// A running peer and the servers behind it; stopped on drop.
pub struct Running {
    pub dp: Option<Dataplane>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Running {
    /// Starts the servers in `lab` and `peer` in front of them.
    pub fn start(lab: &Lab, peer: Peer) -> Result<Self> {
        let mut r = Self::empty()?;
        r.servers(lab)?;
        match peer {
            Peer::Direct => {}
            Peer::XdpNat => r.dp = Some(xdp(lab, Forwarding::Nat)?),
            Peer::XdpDsr => r.dp = Some(xdp(lab, Forwarding::Dsr)?),
            Peer::Haproxy => r.haproxy(lab)?,
            Peer::Nftables => r.nftables(lab)?,
        }
        lab.pin_napi_threads()?;
        // Every target answers before anything is measured.
        for port in [HTTP_PORT, BULK_PORT] {
            for t in peer.targets(port) {
                if let Err(e) = wait_port(&lab.gen_ns, t) {
                    bail!("{}: {e}; logs:\n{}", peer.name(), r.logs());
                }
            }
        }
        Ok(r)
    }

    /// The servers, and the XDP data plane in NAT mode whose HTTP service has one
    /// backend on the LB node itself: an nginx in the LB's namespace, on its address
    /// toward the backends, next to two of the backends' (the stacked layout).
    pub fn start_with_local_backend(lab: &Lab) -> Result<Self> {
        let mut r = Self::empty()?;
        r.servers(lab)?;
        r.nginx(&lab.lb, "nginx-local")?;
        let http = [BACKENDS[0], BACKENDS[1], LB_B];
        r.dp = Some(xdp_with(lab, Forwarding::Nat, &http)?);
        lab.pin_napi_threads()?;
        // The local nginx from its own node, then the VIP from the client.
        for (ns, target) in [
            (&lab.lb, SocketAddr::new(IpAddr::V4(LB_B), HTTP_PORT)),
            (&lab.gen_ns, SocketAddr::new(vip(), HTTP_PORT)),
        ] {
            if let Err(e) = wait_port(ns, target) {
                bail!("local backend: {e}; logs:\n{}", r.logs());
            }
        }
        Ok(r)
    }

    /// No process yet, a fresh directory for their files (for other workloads'
    /// peers, see `routed`).
    pub(super) fn empty() -> Result<Self> {
        let dir = std::env::temp_dir().join(unique_name("lbbench"));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dp: None,
            children: Vec::new(),
            dir,
        })
    }

    /// The directory of the processes' files (removed on drop).
    pub(super) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Every log of the servers and peer, for an error message.
    pub(super) fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log" || x == "err") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let _ = writeln!(out, "--- {}\n{}", p.display(), text.trim());
            }
        }
        out
    }

    /// Starts `args` in `ns` on `cpu`, its output in `log` of the directory.
    pub(super) fn spawn(&mut self, ns: &Netns, cpu: usize, args: &[&str], log: &str) -> Result<()> {
        let log = std::fs::File::create(self.dir.join(log))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "taskset",
                "-c",
                &cpu.to_string(),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", args.join(" ")))?;
        self.children.push(child);
        Ok(())
    }

    /// nginx (one worker) answering every request on port 80 of every backend
    /// address, and an iperf3 server.
    fn servers(&mut self, lab: &Lab) -> Result<()> {
        self.nginx(&lab.srv, "nginx")?;
        // On every address: DSR delivers to the VIP on loopback.
        let port = BULK_PORT.to_string();
        self.spawn(
            &lab.srv,
            ENDPOINT_CPU,
            &["iperf3", "-s", "-p", &port],
            "iperf3.log",
        )
    }

    /// nginx with one worker on the endpoints' core in `ns`, answering every request
    /// on port 80 of every address; its files are named after `name`.
    fn nginx(&mut self, ns: &Netns, name: &str) -> Result<()> {
        let d = self.dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/{name}.pid;\nerror_log {d}/{name}.err;\n\
             events {{ worker_connections 16384; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {HTTP_PORT} backlog=4096;\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        );
        let path = self.dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf)?;
        let path = path.display().to_string();
        self.spawn(
            ns,
            ENDPOINT_CPU,
            &["nginx", "-c", &path],
            &format!("{name}.log"),
        )
    }

    /// HAProxy, one thread, on the LB core: VIP:80 round robin over the three
    /// backends, VIP:5201 to the first.
    fn haproxy(&mut self, lab: &Lab) -> Result<()> {
        lab.lb
            .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        let mut conf = String::from(
            "global\n  nbthread 1\n  maxconn 8000\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend web\n",
        );
        let _ = writeln!(conf, "  bind {VIP}:{HTTP_PORT}\n  default_backend web");
        conf.push_str("backend web\n  balance roundrobin\n");
        for (i, b) in BACKENDS.iter().enumerate() {
            let _ = writeln!(conf, "  server b{i} {b}:{HTTP_PORT}");
        }
        let _ = writeln!(
            conf,
            "frontend bulk\n  bind {VIP}:{BULK_PORT}\n  default_backend bulk\n\
             backend bulk\n  server b0 {}:{BULK_PORT}",
            BACKENDS[0]
        );
        let path = self.dir.join("haproxy.cfg");
        std::fs::write(&path, conf)?;
        let path = path.display().to_string();
        self.spawn(
            &lab.lb,
            LB_CPU,
            &["haproxy", "-db", "-f", &path],
            "haproxy.log",
        )
    }

    /// nftables: DNAT in prerouting (numgen round robin for TCP, jhash of the
    /// source for UDP), SNAT to the LB's address toward the backends (full NAT, as
    /// ours and HAProxy).
    fn nftables(&mut self, lab: &Lab) -> Result<()> {
        let map: Vec<String> = BACKENDS
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : {b}"))
            .collect();
        let map = map.join(", ");
        let rules = format!(
            "table ip lbbench {{\n\
               chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n\
                 ip daddr {VIP} tcp dport {HTTP_PORT} dnat to numgen inc mod 3 map {{ {map} }}\n\
                 ip daddr {VIP} udp dport {UDP_PORT} dnat to jhash ip saddr . udp sport mod 3 map {{ {map} }}\n\
                 ip daddr {VIP} tcp dport {BULK_PORT} dnat to {}\n  }}\n\
               chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
                 oifname \"b1\" snat to {LB_B}\n  }}\n}}\n",
            BACKENDS[0]
        );
        let path = self.dir.join("rules.nft");
        std::fs::write(&path, rules)?;
        lab.lb.exec(&["nft", "-f", &path.display().to_string()])?;
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The XDP data plane in the LB namespace, attached to both its interfaces, with the
/// three workloads as services.
fn xdp(lab: &Lab, forwarding: Forwarding) -> Result<Dataplane> {
    xdp_with(lab, forwarding, &BACKENDS)
}

/// As `xdp`, with the HTTP service's backends `http`.
fn xdp_with(lab: &Lab, forwarding: Forwarding, http: &[std::net::Ipv4Addr]) -> Result<Dataplane> {
    let service = move |port, protocol, backends: &[std::net::Ipv4Addr]| ServiceSpec {
        name: format!("bench-{port}"),
        vip: vip(),
        port,
        protocol,
        forwarding,
        snat: vec![IpAddr::V4(LB_B)],
        on_no_backend: NoBackend::Drop,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: backends
            .iter()
            .map(|b| BackendSpec::up(IpAddr::V4(*b)))
            .collect(),
    };
    let services = [
        service(HTTP_PORT, Protocol::Tcp, http),
        service(UDP_PORT, Protocol::Udp, &BACKENDS),
        service(BULK_PORT, Protocol::Tcp, &BACKENDS[..1]),
    ];
    // Applied inside the LB's namespace: a backend is local when its address is one
    // of the applying thread's namespace.
    lab.lb.run(move || -> Result<Dataplane> {
        let mut dp = Dataplane::load(Capacities {
            max_vips: 4,
            max_backends: 16,
            flow_table_size: 1 << 20,
            ..Capacities::default()
        })?;
        dp.attach("a1", AttachMode::Native)?;
        dp.attach("b1", AttachMode::Native)?;
        dp.apply(&services)?;
        Ok(dp)
    })?
}

/// Waits until `target` accepts a connection from `ns` (10 s at most).
fn wait_port(ns: &Netns, target: SocketAddr) -> Result<()> {
    let entry = ns.entry()?;
    std::thread::spawn(move || -> Result<()> {
        entry.enter()?;
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("{target} does not answer");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .join()
    .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
}
