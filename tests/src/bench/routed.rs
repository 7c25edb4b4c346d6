//! The routed workload: TLS connections routed by the ClientHello's server name to
//! two pools, each backend told the client's address by a PROXY v2 header, through
//! HAProxy (`mode tcp`, `req_ssl_sni` rules, `send-proxy-v2`, one thread) and
//! through lb-agent's routed VIP (the same haproxy.cfg imported with `lb-agent
//! import`), each pinned to the LB core, in the same lab and run.
//!
//! The backends are one nginx (one worker, on the endpoints' core) terminating TLS
//! on 8443 of each backend address with `proxy_protocol`; `/` answers with the
//! address the header gave, `/big` is a file. The clients are rustls, in the
//! generator's namespace: new connections with one request each (connect to first
//! response byte, handshake included), and 8 streams each fetching `/big` over and
//! over for the bulk rate.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use lb_agent::lab::unique_name;

use super::{
    LbCost, Options,
    conn::percentile,
    cpu,
    lab::{BACKENDS, ENDPOINT_CPU, GEN_A, LB_CPU, Lab, VIP},
    peers::Running,
};

const TLS_PORT: u16 = 443;
const BACKEND_PORT: u16 = 8443;
const TIMEOUT: Duration = Duration::from_secs(5);
/// The server names of the two pools' clients.
const NAMES: [&str; 2] = ["app.a.bench.lan", "app.b.bench.lan"];

/// What stands on the LB node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutedPeer {
    Haproxy,
    Agent,
}

impl RoutedPeer {
    pub const ALL: [RoutedPeer; 2] = [RoutedPeer::Haproxy, RoutedPeer::Agent];

    pub fn name(self) -> &'static str {
        match self {
            RoutedPeer::Haproxy => "HAProxy 2.6, mode tcp, req_ssl_sni, one thread",
            RoutedPeer::Agent => "lb-agent routed VIP (imported from the same haproxy.cfg)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            RoutedPeer::Haproxy => "HAProxy",
            RoutedPeer::Agent => "lb-agent",
        }
    }
}

/// New routed TLS connections, one request each.
#[derive(Clone, Debug, Default)]
pub struct RoutedConn {
    pub completed: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub secs: f64,
    pub first_byte_p50_us: f64,
    pub first_byte_p99_us: f64,
    pub cost: LbCost,
}

impl RoutedConn {
    pub fn per_s(&self) -> f64 {
        self.completed as f64 / self.secs.max(1e-9)
    }

    /// LB core time per connection, µs.
    pub fn cpu_us_per_conn(&self) -> f64 {
        self.cost.busy_s * 1e6 / (self.completed.max(1) as f64)
    }
}

#[derive(Clone, Debug, Default)]
pub struct RoutedBulk {
    pub bits_per_s: f64,
    pub failed: u64,
    pub cost: LbCost,
}

/// Both workloads through one peer: its median round of each (by LB core per
/// connection, by throughput), and every round's values for the report.
#[derive(Clone, Debug)]
pub struct RoutedRow {
    pub peer: RoutedPeer,
    pub conn: RoutedConn,
    pub bulk: RoutedBulk,
    /// (connections/s, LB core µs/conn, Gbit/s) of each round.
    pub rounds: Vec<(f64, f64, f64)>,
}

impl RoutedRow {
    pub fn median(
        peer: RoutedPeer,
        mut conns: Vec<RoutedConn>,
        mut bulks: Vec<RoutedBulk>,
    ) -> Self {
        let rounds = conns
            .iter()
            .zip(&bulks)
            .map(|(c, b)| (c.per_s(), c.cpu_us_per_conn(), b.bits_per_s / 1e9))
            .collect();
        conns.sort_by(|a, b| a.cpu_us_per_conn().total_cmp(&b.cpu_us_per_conn()));
        bulks.sort_by(|a, b| a.bits_per_s.total_cmp(&b.bits_per_s));
        let conn = conns.get(conns.len() / 2).cloned().unwrap_or_default();
        let bulk = bulks.get(bulks.len() / 2).cloned().unwrap_or_default();
        Self {
            peer,
            conn,
            bulk,
            rounds,
        }
    }
}

/// The HAProxy config both peers run (lb-agent through `lb-agent import`).
fn haproxy_cfg() -> String {
    let [a1, a2, b1] = BACKENDS;
    format!(
        "global\n  nbthread 1\n  maxconn 8000\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend tls\n  bind {VIP}:{TLS_PORT}\n  tcp-request inspect-delay 5s\n\
         \x20 tcp-request content accept if {{ req_ssl_hello_type 1 }}\n\
         \x20 use_backend a if {{ req_ssl_sni -m end .a.bench.lan }}\n\
         \x20 use_backend b if {{ req_ssl_sni -m end .b.bench.lan }}\n\
         backend a\n  server a1 {a1}:{BACKEND_PORT} send-proxy-v2\n  server a2 {a2}:{BACKEND_PORT} send-proxy-v2\n\
         backend b\n  server b1 {b1}:{BACKEND_PORT} send-proxy-v2\n"
    )
}

/// The `lb-agent` binary (release; `cargo xtask bench` builds it).
fn agent_bin() -> Result<PathBuf> {
    let path = std::env::var_os("LB_AGENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/lb-agent"),
        PathBuf::from,
    );
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p lb-agent` (cargo xtask bench does)",
            path.display()
        );
    }
    Ok(path)
}

/// The processes of one run (see `peers::Running`), and the agent's bpffs
/// directory (its pins outlive a killed agent): removed on drop.
struct Run {
    procs: Running,
    pins: Option<PathBuf>,
}

impl Run {
    fn new() -> Result<Self> {
        Ok(Self {
            procs: Running::empty()?,
            pins: None,
        })
    }

    /// nginx terminating TLS with `proxy_protocol` on every backend address.
    fn nginx(&mut self, lab: &Lab, big: usize) -> Result<()> {
        let ck = rcgen::generate_simple_self_signed(vec![
            "*.a.bench.lan".to_string(),
            "*.b.bench.lan".to_string(),
        ])
        .context("certificate")?;
        let dir = self.procs.dir().to_path_buf();
        let d = dir.display().to_string();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem())?;
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem())?;
        std::fs::create_dir_all(dir.join("www"))?;
        std::fs::write(dir.join("www/big"), vec![b'x'; big])?;
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.log;\n\
             events {{ worker_connections 16384; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n  sendfile on;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {BACKEND_PORT} ssl proxy_protocol backlog=4096;\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 root {d}/www;\n    location = / {{ return 200 \"$proxy_protocol_addr\\n\"; }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let path = path.display().to_string();
        self.procs.spawn(
            &lab.srv,
            ENDPOINT_CPU,
            &["nginx", "-c", &path],
            "nginx-out.log",
        )
    }

    fn haproxy(&mut self, lab: &Lab) -> Result<()> {
        let path = self.procs.dir().join("haproxy.cfg");
        std::fs::write(&path, haproxy_cfg())?;
        let path = path.display().to_string();
        self.procs.spawn(
            &lab.lb,
            LB_CPU,
            &["haproxy", "-db", "-f", &path],
            "haproxy.log",
        )
    }

    /// lb-agent with the import of the same haproxy.cfg, all its threads on the LB
    /// core. Its XDP program goes on an idle veth of the LB node, not on the two
    /// that carry the traffic: on a veth, an XDP program makes the kernel copy
    /// every packet into a page of its own before running it (a physical NIC's
    /// native XDP runs before any packet buffer exists), which would charge the
    /// proxy for a cost of the lab. The routed VIP does not use the program.
    fn agent(&mut self, lab: &Lab) -> Result<()> {
        let exe = agent_bin()?;
        let dir = self.procs.dir().to_path_buf();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_cfg())?;
        let imported = dir.join("imported.toml");
        let out = Command::new(&exe)
            .args(["import", "--interface", "a1", "--haproxy"])
            .arg(&cfg)
            .arg("-o")
            .arg(&imported)
            .output()
            .context("lb-agent import")?;
        if !out.status.success() {
            bail!(
                "lb-agent import of the bench's haproxy.cfg: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&imported)?;
        let vips = text
            .find("[[vip]]")
            .map(|at| &text[at..])
            .context("the import has no [[vip]]")?;
        lab.lb.ip(&[
            "link", "add", "xdp0", "type", "veth", "peer", "name", "xdp1",
        ])?;
        for dev in ["xdp0", "xdp1"] {
            lab.lb.ip(&["link", "set", dev, "up"])?;
        }
        let pins = Path::new("/sys/fs/bpf").join(unique_name("lbroute"));
        self.pins = Some(pins.clone());
        let config = format!(
            "[agent]\ninterfaces = [\"xdp0\"]\nxdp_mode = \"native\"\npin_path = \"{}\"\n\
             api_listen = \"127.0.0.1:9199\"\ncontrol_socket = \"{}/agent.sock\"\n\
             flow_table_size = 65536\nsocket_lb = false\n\n{vips}",
            pins.display(),
            dir.display()
        );
        let path = dir.join("lb-agent.toml");
        std::fs::write(&path, config)?;
        let (exe, path) = (exe.display().to_string(), path.display().to_string());
        self.procs.spawn(
            &lab.lb,
            LB_CPU,
            &[&exe, "run", "--config", &path],
            "agent.log",
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(p) = &self.pins {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// The lab with nginx behind `peer`, answering through it.
fn start(peer: RoutedPeer, big: usize) -> Result<(Lab, Run, Arc<rustls::ClientConfig>)> {
    let lab = Lab::build(false)?;
    lab.lb
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
    let mut run = Run::new()?;
    run.nginx(&lab, big)?;
    match peer {
        RoutedPeer::Haproxy => run.haproxy(&lab)?,
        RoutedPeer::Agent => run.agent(&lab)?,
    }
    lab.pin_napi_threads()?;
    let pem = std::fs::read_to_string(run.procs.dir().join("cert.pem"))?;
    let tls = client_config(&pem)?;
    // Both pools answer through the peer, with the client's address from the header.
    let target = SocketAddr::new(IpAddr::V4(VIP), TLS_PORT);
    let entry = lab.gen_ns.entry()?;
    let probe = tls.clone();
    let seen = std::thread::spawn(move || -> Result<Vec<String>> {
        entry.enter()?;
        let start = Instant::now();
        let mut out = Vec::new();
        for name in NAMES {
            loop {
                match fetch(&probe, target, name, "/") {
                    Ok(f) => {
                        out.push(f.body);
                        break;
                    }
                    Err(e) if start.elapsed() > Duration::from_secs(15) => {
                        bail!("{name} through the peer: {e}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        Ok(out)
    })
    .join()
    .map_err(|_| anyhow!("probe thread panicked"))?;
    let seen = seen.with_context(|| format!("{}: logs:\n{}", peer.name(), run.procs.logs()))?;
    for body in &seen {
        if !body.contains(&GEN_A.to_string()) {
            bail!(
                "{}: the backend read {body:?} from the PROXY header, not the client's {GEN_A}",
                peer.name()
            );
        }
    }
    Ok((lab, run, tls))
}

fn client_config(pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pem.as_bytes()).context("certificate PEM")?)?;
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ))
}

/// One request over a new TLS connection.
struct Fetched {
    first_byte: Duration,
    bytes: u64,
    body: String,
}

fn fetch(
    tls: &Arc<rustls::ClientConfig>,
    to: SocketAddr,
    name: &str,
    path: &str,
) -> Result<Fetched, String> {
    let t0 = Instant::now();
    let server =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(tls.clone(), server).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect_timeout(&to, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut s = rustls::Stream::new(&mut conn, &mut sock);
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {name}\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    let first_byte = t0.elapsed();
    if !buf[..n].starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&buf[..n.min(40)])
        ));
    }
    let mut head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut bytes = n as u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(m) => {
                bytes += m as u64;
                if head.len() < 4096 {
                    head.push_str(&String::from_utf8_lossy(&buf[..m]));
                }
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let body = head
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(Fetched {
        first_byte,
        bytes,
        body,
    })
}

/// Packets received by the LB's two interfaces.
fn lb_packets(lab: &Lab) -> Result<u64> {
    Ok(lab.lb_packets("a1")?.0 + lab.lb_packets("b1")?.0)
}

/// What the clients of a run saw.
#[derive(Default)]
struct Seen {
    /// Connect to first response byte, µs, per completed request.
    first_byte_us: Vec<u32>,
    bytes: u64,
    failed: u64,
    first_failure: Option<String>,
    secs: f64,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        self.first_byte_us.extend(other.first_byte_us);
        self.bytes += other.bytes;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// `threads` clients in the generator's namespace fetching `path` over new
/// connections for `length`.
fn clients(
    lab: &Lab,
    tls: &Arc<rustls::ClientConfig>,
    threads: usize,
    length: Duration,
    path: &'static str,
) -> Result<Seen> {
    let target = SocketAddr::new(IpAddr::V4(VIP), TLS_PORT);
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..threads {
        let entry = lab.gen_ns.entry()?;
        let tls = tls.clone();
        workers.push(std::thread::spawn(move || -> Result<Seen> {
            entry.enter()?;
            let name = NAMES[i % NAMES.len()];
            let mut seen = Seen::default();
            while start.elapsed() < length {
                match fetch(&tls, target, name, path) {
                    Ok(f) => {
                        let us = u32::try_from(f.first_byte.as_micros()).unwrap_or(u32::MAX);
                        seen.first_byte_us.push(us);
                        seen.bytes += f.bytes;
                    }
                    Err(e) => {
                        seen.failed += 1;
                        seen.first_failure.get_or_insert(e);
                    }
                }
            }
            Ok(seen)
        }));
    }
    let mut all = Seen::default();
    for w in workers {
        all.add(w.join().map_err(|_| anyhow!("client thread panicked"))??);
    }
    all.secs = start.elapsed().as_secs_f64();
    Ok(all)
}

/// New connections (one request each) through `peer`.
pub fn connections(peer: RoutedPeer, o: &Options) -> Result<RoutedConn> {
    let (lab, _run, tls) = start(peer, 1024)?;
    clients(&lab, &tls, 2, Duration::from_millis(300), "/")?;
    let p0 = lb_packets(&lab)?;
    let (mut seen, busy) = cpu::measure(LB_CPU, || clients(&lab, &tls, o.threads, o.length, "/"))?;
    let packets = lb_packets(&lab)? - p0;
    Ok(RoutedConn {
        completed: seen.first_byte_us.len() as u64,
        failed: seen.failed,
        first_failure: seen.first_failure,
        secs: seen.secs,
        first_byte_p50_us: percentile(&mut seen.first_byte_us, 0.50),
        first_byte_p99_us: percentile(&mut seen.first_byte_us, 0.99),
        cost: LbCost {
            busy_s: busy,
            packets,
        },
    })
}

/// 8 streams fetching `/big` over and over through `peer`.
pub fn bulk(peer: RoutedPeer, o: &Options, big: usize) -> Result<RoutedBulk> {
    let (lab, _run, tls) = start(peer, big)?;
    let p0 = lb_packets(&lab)?;
    let (seen, busy) = cpu::measure(LB_CPU, || clients(&lab, &tls, 8, o.length, "/big"))?;
    let packets = lb_packets(&lab)? - p0;
    if seen.bytes == 0 {
        bail!(
            "{}: no bulk bytes ({})",
            peer.name(),
            seen.first_failure.unwrap_or_default()
        );
    }
    Ok(RoutedBulk {
        bits_per_s: seen.bytes as f64 * 8.0 / seen.secs,
        failed: seen.failed,
        cost: LbCost {
            busy_s: busy,
            packets,
        },
    })
}

/// The report's table and the targets, lb-agent against HAProxy.
pub fn report(rows: &[RoutedRow]) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "\n| routed: TLS by server name, PROXY v2 to the backends | new TLS conn/s | connect to first byte p50 / p99 µs | failed | LB core µs/conn | 8-stream Gbit/s | failed | LB core ns/packet (bulk) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} / {:.0} | {} | {:.1} | {:.2} | {} | {} |",
            r.peer.name(),
            r.conn.per_s(),
            r.conn.first_byte_p50_us,
            r.conn.first_byte_p99_us,
            r.conn.failed,
            r.conn.cpu_us_per_conn(),
            r.bulk.bits_per_s / 1e9,
            r.bulk.failed,
            r.bulk
                .cost
                .ns_per_packet()
                .map_or("n/a".into(), |v| format!("{v:.0}")),
        );
    }
    for r in rows.iter().filter(|r| r.rounds.len() > 1) {
        let each: Vec<String> = r
            .rounds
            .iter()
            .map(|(c, us, g)| format!("{c:.0}/s {us:.0} µs {g:.2} Gbit/s"))
            .collect();
        let _ = writeln!(
            s,
            "\n{} rounds (the row is the median): {}",
            r.peer.short(),
            each.join("; ")
        );
    }
    let find = |p| rows.iter().find(|r| r.peer == p);
    if let (Some(h), Some(a)) = (find(RoutedPeer::Haproxy), find(RoutedPeer::Agent)) {
        let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
        let conn = a.conn.per_s() / h.conn.per_s().max(1e-9);
        let bulk = a.bulk.bits_per_s / h.bulk.bits_per_s.max(1e-9);
        let cpu = a.conn.cpu_us_per_conn() / h.conn.cpu_us_per_conn().max(1e-9);
        let _ = writeln!(
            s,
            "\nlb-agent / HAProxy: connections/s {conn:.2} (target ≥ 1: {}), 8-stream throughput {bulk:.2} (target ≥ 1: {}), LB core per connection {cpu:.2} (target ≤ 0.5: {}).",
            verdict(conn >= 1.0),
            verdict(bulk >= 1.0),
            verdict(cpu <= 0.5)
        );
    }
    s
}
