//! An agent lab: a LAN of network namespaces (client, LB node, three backends), the
//! real `lb-agent` binary running in the LB's namespace with pins under a fresh
//! directory of the host's bpffs, and helpers to drive it (CLI, HTTP, signals).
//! Everything is removed on drop. Needs root.

#![allow(dead_code)] // each test binary uses a part

pub mod clients;
pub mod eventually;
pub mod haproxy;
pub mod keepalived;
pub mod servers;
pub mod traffic;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use lb_agent::{
    lab::{AgentNode, Host, Lan, TcpServer, connections, lan_v4},
    status::Status,
};

use self::eventually::{eventually, eventually_or};

pub const LB: u8 = 1;
pub const VIP: u8 = 10;
pub const CLIENT: u8 = 100;
pub const BACKENDS: [u8; 3] = [11, 12, 13];
pub const AGENT: &str = env!("CARGO_BIN_EXE_lb-agent");
/// `api_listen` inside the LB namespace.
pub const API: &str = lb_agent::lab::LAB_API;

/// One LB node (see `lb_agent::lab::AgentNode`) with panicking helpers for tests.
pub struct Node(AgentNode);

impl std::ops::Deref for Node {
    type Target = AgentNode;
    fn deref(&self) -> &AgentNode {
        &self.0
    }
}

/// One LB node, a client and three backends.
pub struct AgentLab {
    pub node: Node,
    pub client: Host,
    pub backends: Vec<Host>,
    pub lan: Lan,
}

impl std::ops::Deref for AgentLab {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl std::ops::DerefMut for AgentLab {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.node
    }
}

/// `n` LB nodes (hosts 1..=n), a client and three backends.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub client: Host,
    pub backends: Vec<Host>,
    pub lan: Lan,
}

impl Node {
    /// LB host `index` on `lan`, forwarding, XDP-ready, with its own files.
    pub fn new(lan: &Lan, index: u8) -> Self {
        Self(AgentNode::new(lan, "lbal", index).expect("lb node"))
    }
}

impl AgentLab {
    /// The VIP is on the LB's interface (no VRRP).
    pub fn new() -> Self {
        let lan = Lan::new().expect("switch");
        let node = Node::new(&lan, LB);
        node.lb
            .ns
            .ip(&["addr", "add", &format!("{}/32", lan_v4(VIP)), "dev", "eth0"])
            .expect("vip");
        let client = lan.host("lbac", CLIENT).expect("client host");
        let backends = BACKENDS
            .iter()
            .map(|&n| lan.host("lbab", n).expect("backend host"))
            .collect();
        Self {
            node,
            client,
            backends,
            lan,
        }
    }
}

/// A banner server on every host of `backends` at `ip(host index):port`.
fn banners_on(backends: &[Host], ip: impl Fn(u8) -> std::net::IpAddr, port: u16) -> Vec<TcpServer> {
    backends
        .iter()
        .map(|b| {
            TcpServer::spawn(&b.ns, SocketAddr::new(ip(b.index), port), &name(b.index))
                .expect("server")
        })
        .collect()
}

impl AgentLab {
    /// A banner server on every backend at `ip(backend index):port`.
    pub fn banners(&self, ip: impl Fn(u8) -> std::net::IpAddr, port: u16) -> Vec<TcpServer> {
        banners_on(&self.backends, ip, port)
    }
}

impl Cluster {
    /// `n` nodes; the VIP is nobody's until VRRP gives it to one.
    pub fn new(n: u8) -> Self {
        let lan = Lan::new().expect("switch");
        let nodes = (1..=n).map(|i| Node::new(&lan, i)).collect();
        let client = lan.host("lbac", CLIENT).expect("client host");
        let backends = BACKENDS
            .iter()
            .map(|&n| lan.host("lbab", n).expect("backend host"))
            .collect();
        Self {
            nodes,
            client,
            backends,
            lan,
        }
    }
}

impl Node {
    /// Writes the config: an `[agent]` section for this lab, then `vips` (TOML).
    pub fn write_config(&self, vips: &str) {
        self.0.write_config(vips).expect("config");
    }

    /// Starts the agent and waits until its control socket answers.
    pub fn start(&mut self) {
        assert!(!self.0.running(), "agent already running");
        let logged = self.log().len();
        self.0
            .spawn(std::path::Path::new(AGENT))
            .expect("spawn the agent");
        // (A panic prints the agent's log: see `Drop`.)
        eventually("the agent comes up", Duration::from_secs(20), || {
            assert!(
                self.0.running(),
                "the agent exited at start:\n{}",
                self.log()
            );
            self.log()[logged..].contains("running:") && self.status().source == "daemon"
        });
    }

    /// Starts the agent expecting it to refuse to start: waits for it to exit with
    /// an error and returns what it logged.
    pub fn start_refused(&mut self) -> String {
        let logged = self.log().len();
        self.0
            .spawn(std::path::Path::new(AGENT))
            .expect("spawn the agent");
        eventually("the agent stops", Duration::from_secs(20), || {
            !self.0.running()
        });
        let log = self.log()[logged..].to_string();
        assert!(!log.contains("running:"), "the agent ran:\n{log}");
        log
    }

    /// Whether its eth0 carries `cidr` (e.g. "198.18.1.10/24").
    pub fn holds(&self, cidr: &str) -> bool {
        self.lb
            .ns
            .ip(&["addr", "show", "dev", "eth0"])
            .expect("ip addr")
            .contains(&format!(" {cidr} "))
    }

    /// The state of its first VRRP instance ("" when it has none).
    pub fn vrrp_state(&self) -> String {
        self.status()
            .vrrp
            .first()
            .map(|v| v.state.clone())
            .unwrap_or_default()
    }

    /// The node loses power with its link up: agent killed, data plane detached and
    /// every frame it receives dropped.
    pub fn die(&mut self) {
        self.0.power_off().expect("power off");
    }

    /// Power back on after `die` (the agent is started separately).
    pub fn power_on(&mut self) {
        self.0.power_on();
    }

    /// `kill -9` of the agent.
    pub fn kill9(&mut self) {
        assert!(self.0.running(), "agent not running");
        self.0.kill_agent();
    }

    /// SIGTERM, and waits for the agent to exit (asserting it exits cleanly).
    pub fn terminate(&mut self) {
        let mut c = self.0.take_agent().expect("agent running");
        signal(&c, "TERM");
        let st = c.wait().expect("wait");
        assert!(
            st.success(),
            "agent exited with {st} on SIGTERM:\n{}",
            self.log()
        );
    }

    /// Waits for the agent to exit on its own (after `lb-agent restart`), cleanly.
    pub fn wait_exit(&mut self) {
        let mut c = self.0.take_agent().expect("agent running");
        let st = c.wait().expect("wait");
        assert!(st.success(), "agent exited with {st}:\n{}", self.log());
    }

    pub fn sighup(&mut self) {
        signal(self.0.agent_mut().expect("agent running"), "HUP");
    }

    /// `lb-agent ARGS --config CONFIG` from the host.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI")
    }

    /// `lb-agent status --json`.
    pub fn status(&self) -> Status {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Polls the status until `ok` holds; returns how long it took.
    pub fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&Status) -> bool) -> Duration {
        eventually_or(
            what,
            limit,
            || ok(&self.status()),
            || format!("status: {:#?}\nlog:\n{}", self.status().vips, self.log()),
        )
    }

    /// GET `path` from the agent's HTTP endpoint: (status code, body).
    pub fn http_get(&self, path: &str, auth: Option<&str>) -> (u16, String) {
        let path = path.to_string();
        let auth = auth.map(str::to_string);
        self.lb
            .ns
            .run(move || {
                let addr: SocketAddr = API.parse().expect("api");
                let mut s =
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect api");
                let auth = auth
                    .map(|a| format!("Authorization: Basic {a}\r\n"))
                    .unwrap_or_default();
                write!(s, "GET {path} HTTP/1.1\r\nHost: lb\r\n{auth}\r\n").expect("send");
                let mut out = String::new();
                s.read_to_string(&mut out).expect("read");
                let code = out
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = out
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default();
                (code, body)
            })
            .expect("http from the LB namespace")
    }
}

fn signal(c: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &c.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{sig} failed");
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("agent log:\n{}", self.log());
        }
    }
}

impl Cluster {
    /// A banner server on every backend at `ip(backend index):port`.
    pub fn banners(&self, ip: impl Fn(u8) -> std::net::IpAddr, port: u16) -> Vec<TcpServer> {
        banners_on(&self.backends, ip, port)
    }

    /// 30 connections from the client to `target` once the client sends it to node
    /// `node` (its ARP entry for the VIP carries the node's MAC, after a VIP move:
    /// with NAT, a connection whose packets change nodes half way breaks, which is
    /// VRRP's ARP convergence, not what these tests measure), none failing.
    pub fn served_by(&self, node: usize, target: SocketAddr) {
        let mac = self.nodes[node].lb.ns.mac("eth0").expect("node MAC");
        let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        let mac = mac.join(":");
        let ip = target.ip().to_string();
        let learnt = || {
            self.client
                .ns
                .ip(&["neigh", "show", &ip])
                .unwrap_or_default()
                .contains(&mac)
        };
        // Not learnt within 3 s: the first connection's ARP request resolves it.
        let _ = eventually::within(Duration::from_secs(3), || learnt().then_some(()));
        self.served(target);
    }

    /// 30 connections from the client to `target`, none failing.
    pub fn served(&self, target: SocketAddr) {
        let t = connections(&self.client.ns, target, 30, Duration::from_secs(2)).expect("client");
        assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    }
}

/// A backend's reply name (what lab servers answer).
pub fn name(index: u8) -> String {
    format!("backend-{index}")
}

/// Runs `f` on a tokio runtime of its own (two workers, as the agent's) in a thread
/// inside `ns`, and returns at once: a proxy for a test to talk to.
pub fn spawn_runtime<F, Fut>(ns: &lb_agent::lab::Netns, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let entry = ns.entry().expect("netns");
    std::thread::spawn(move || {
        entry.enter().expect("enter");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
    });
}
