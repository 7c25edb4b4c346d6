//! The stacked control plane, end to end: three nodes on one LAN, each at once an
//! LB node (the real lb-agent, VRRP v3 with the trackers of examples/k8s-api), a
//! backend (an HTTPS stand-in for kube-apiserver on its own address :6443, with
//! /readyz) and a client (connects to the VIP and to a node-local VIP on
//! 127.0.0.1:6443), plus a client outside. Stock sysctls everywhere: the agents
//! turn on what they need. With counts:
//! - remote clients: every node's API server serves, 0 failed connections;
//! - clients on every node, the VIP holder included, are balanced over all three;
//! - the holder's own API server stops: the VIP stays, and once the checks mark it
//!   down, 0 failed connections from any client anywhere;
//! - the holder loses power: the VIP fails over, the other nodes' clients and the
//!   outside client keep working;
//! - the node-local VIP is balanced and follows health;
//! - a second VIP in DSR mode (every node a DSR backend, the VIP on its loopback)
//!   is served by all three without bouncing between nodes: a node that does not
//!   hold the VIP hands the holder's flows to its own stack.
//!
//! Needs root.

mod common;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::{Node, VIP, eventually::eventually_or};
use lb_agent::{
    health::client_config,
    lab::{ApiServer, Host, Lan, Tally, https_get, lan_v4, requests, self_signed},
};

const NODES: [u8; 3] = [1, 2, 3];
/// The DSR VIP: on every node's loopback, on the holder's eth0 too.
const DSR_VIP: u8 = 20;
const OUTSIDE: u8 = 100;
const PORT: u16 = 6443;
const TIMEOUT: Duration = Duration::from_secs(1);

fn api_name(n: u8) -> String {
    format!("apiserver-{n}")
}

/// Node `n`'s config: examples/k8s-api.toml with the lab's addresses, faster timers
/// (checks every 300 ms, adverts every 100 ms) and the node-local VIP.
fn config(n: u8, priority: u8) -> String {
    let backends: String = NODES
        .iter()
        .map(|b| format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(*b)))
        .collect();
    let check = "[vip.check]\ntype = \"https\"\npath = \"/readyz\"\ntls_verify = false\n\
                 interval = \"300ms\"\nfall = 2\nrise = 2\n";
    format!(
        "[[vip]]\nname = \"k8s-api\"\naddress = \"{vip}\"\nport = {PORT}\nforwarding = \"nat\"\n\
         snat_address = \"{me}\"\non_no_backend = \"reset\"\n{check}{backends}\n\
         [[vip]]\nname = \"k8s-api-local\"\naddress = \"127.0.0.1\"\nport = {PORT}\n{check}{backends}\n\
         [[vip]]\nname = \"k8s-api-dsr\"\naddress = \"{dsr}\"\nport = {PORT}\nforwarding = \"dsr\"\n{check}{backends}\n\
         [[vrrp]]\nname = \"k8s-api\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{vip}/24\", \"{dsr}/24\"]\n\n\
         [[vrrp.track]]\nkind = \"vip_healthy\"\nvip = \"k8s-api\"\nweight = 0\n\n\
         [[vrrp.track]]\nkind = \"dataplane\"\nweight = 0\n",
        vip = lan_v4(VIP),
        dsr = lan_v4(DSR_VIP),
        me = lan_v4(n),
    )
}

struct Stacked {
    nodes: Vec<Node>,
    outside: Host,
    apis: Vec<Option<ApiServer>>,
    /// Each node's API server on the DSR VIP (a DSR backend serves on the VIP).
    _dsr_apis: Vec<ApiServer>,
    server_tls: Arc<rustls::ServerConfig>,
    client_tls: Arc<rustls::ClientConfig>,
    _lan: Lan,
}

impl Stacked {
    fn new() -> Self {
        let lan = Lan::new().expect("switch");
        let nodes: Vec<Node> = NODES.iter().map(|&n| Node::new(&lan, n)).collect();
        let outside = lan.host("lbso", OUTSIDE).expect("outside client");
        let (server_tls, _) = self_signed("apiserver.lab").expect("certificate");
        let client_tls = client_config(false, None).expect("client tls");
        // DSR backends: the VIP on the loopback, and ARP for it left to the holder.
        for n in &nodes {
            let ns = &n.lb.ns;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/32", lan_v4(DSR_VIP)),
                "dev",
                "lo",
            ])
            .expect("dsr vip on lo");
            ns.sysctl("net.ipv4.conf.eth0.arp_ignore", "1")
                .expect("arp_ignore");
            ns.sysctl("net.ipv4.conf.eth0.arp_announce", "2")
                .expect("arp_announce");
        }
        let mut s = Self {
            nodes,
            outside,
            apis: Vec::new(),
            _dsr_apis: Vec::new(),
            server_tls,
            client_tls,
            _lan: lan,
        };
        s.apis = (0..NODES.len()).map(|i| Some(s.api(i))).collect();
        s._dsr_apis = (0..NODES.len())
            .map(|i| {
                ApiServer::spawn(
                    &s.nodes[i].lb.ns,
                    SocketAddr::new(lan_v4(DSR_VIP), PORT),
                    &api_name(NODES[i]),
                    s.server_tls.clone(),
                )
                .expect("api server on the DSR VIP")
            })
            .collect();
        s
    }

    fn api(&self, i: usize) -> ApiServer {
        let n = NODES[i];
        ApiServer::spawn(
            &self.nodes[i].lb.ns,
            SocketAddr::new(lan_v4(n), PORT),
            &api_name(n),
            self.server_tls.clone(),
        )
        .expect("api server")
    }

    /// `count` HTTPS GETs to `target` from `host`, one connection each.
    fn gets(&self, host: &Host, target: SocketAddr, count: u32) -> Tally {
        let tls = self.client_tls.clone();
        requests(&host.ns, count, move || https_get(target, &tls, TIMEOUT)).expect("client")
    }

    /// Every client (outside, and each running node to the VIP and to its
    /// node-local VIP) makes `count` requests; returns (client, tally) pairs.
    fn everyone(&self, nodes: &[usize], count: u32) -> Vec<(String, Tally)> {
        let vip = SocketAddr::new(lan_v4(VIP), PORT);
        let local: SocketAddr = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), PORT);
        let mut out = vec![("outside".to_string(), self.gets(&self.outside, vip, count))];
        for &i in nodes {
            let host = &self.nodes[i].lb;
            out.push((format!("node{} -> VIP", i + 1), self.gets(host, vip, count)));
            out.push((
                format!("node{} -> 127.0.0.1", i + 1),
                self.gets(host, local, count),
            ));
        }
        out
    }

    fn vrrp_transitions(&self, i: usize) -> u64 {
        self.nodes[i]
            .status()
            .vrrp
            .first()
            .map_or(0, |v| v.transitions)
    }

    /// Waits until every listed node's agent has backend `n` of both VIPs in `state`.
    fn backend_state(&self, nodes: &[usize], n: u8, state: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        let addr = lan_v4(n).to_string();
        for &i in nodes {
            self.nodes[i].wait_for(
                &format!("node{}: backend {n} {state}", i + 1),
                limit.saturating_sub(start.elapsed()),
                |s| {
                    ["k8s-api", "k8s-api-local"].iter().all(|v| {
                        s.vip(v)
                            .and_then(|v| v.backends.iter().find(|b| b.address == addr))
                            .is_some_and(|b| b.state == state)
                    })
                },
            );
        }
        start.elapsed()
    }

    fn holder(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].holds(&format!("{}/24", lan_v4(VIP))))
            .collect()
    }
}

fn assert_all_served(results: &[(String, Tally)], expect: &[u8]) {
    for (who, t) in results {
        assert_eq!(
            t.failures, 0,
            "{who}: {:?} ({:?})",
            t.first_failure, t.answers
        );
        let names: Vec<String> = expect.iter().map(|n| api_name(*n)).collect();
        let got: Vec<&String> = t.answers.keys().collect();
        assert_eq!(
            got,
            names.iter().collect::<Vec<_>>(),
            "{who}: answers {:?}",
            t.answers
        );
    }
}

/// What one client of `Streams` saw: answers, failures, the longest wait between
/// two answers.
type Seen = (u64, u64, Duration);

/// Clients sending requests back to back until stopped.
struct Streams {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Seen>)>,
}

impl Streams {
    fn start(lab: &Stacked, clients: &[(String, &Host, SocketAddr)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = clients
            .iter()
            .map(|(who, host, target)| {
                let (flag, tls, target) = (stop.clone(), lab.client_tls.clone(), *target);
                let entry = host.ns.entry().expect("netns");
                let t = std::thread::spawn(move || {
                    entry.enter().expect("enter");
                    let (mut ok, mut failed, mut gap) = (0, 0, Duration::ZERO);
                    let mut last = Instant::now();
                    while !flag.load(Ordering::Relaxed) {
                        if https_get(target, &tls, TIMEOUT).is_ok() {
                            ok += 1;
                            gap = gap.max(last.elapsed());
                            last = Instant::now();
                        } else {
                            failed += 1;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    (ok, failed, gap.max(last.elapsed()))
                });
                (who.clone(), t)
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self) -> BTreeMap<String, Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|(who, t)| (who, t.join().expect("client thread")))
            .collect()
    }
}

#[test]
fn three_stacked_nodes_serve_every_client_through_failures() {
    let mut lab = Stacked::new();
    for (i, prio) in [(0, 150), (1, 100), (2, 90)] {
        lab.nodes[i].write_config(&config(NODES[i], prio));
    }
    for i in 0..3 {
        lab.nodes[i].start();
    }
    let all = [0, 1, 2];
    lab.backend_state(&all, 1, "up", Duration::from_secs(10));
    lab.backend_state(&all, 2, "up", Duration::from_secs(10));
    lab.backend_state(&all, 3, "up", Duration::from_secs(10));
    eventually_or(
        "node 1 holds the VIP",
        Duration::from_secs(5),
        || lab.holder() == vec![0],
        || format!("holder {:?}", lab.holder()),
    );
    let log = lab.nodes[0].log();
    assert!(log.contains("net.ipv4.conf.eth0.forwarding = 1"), "{log}");
    assert!(
        log.contains(&format!("backend address {} is this node's", lan_v4(1))),
        "{log}"
    );

    // Everyone, everywhere: all three API servers, nothing failed.
    let results = lab.everyone(&all, 45);
    assert_all_served(&results, &NODES);
    let counters = |i: usize| {
        let s = lab.nodes[i].status();
        let c = |n: &str| {
            s.counters
                .iter()
                .find(|c| c.name == n)
                .map_or(0, |c| c.value)
        };
        (
            c("fwd_to_local"),
            c("tc_local_reply"),
            c("sock_balanced"),
            c("drop_fib_failed"),
        )
    };
    let (to_local, replies, balanced, fib_failed) = counters(0);
    eprintln!(
        "holder: fwd_to_local {to_local}, tc_local_reply {replies}, sock_balanced {balanced}, \
         drop_fib_failed {fib_failed}"
    );
    assert!(
        to_local > 0 && replies > 0,
        "the holder's own API server served remote clients"
    );
    assert!(balanced >= 90, "the holder's own clients were balanced");
    assert_eq!(fib_failed, 0);
    for (who, t) in &results {
        eprintln!("all up: {who}: {:?}", t.answers);
    }

    // The DSR VIP from outside: all three serve; the others' share reached them
    // from the holder and went up their own stacks (pass_standby), not onwards.
    let dsr = lab.gets(&lab.outside, SocketAddr::new(lan_v4(DSR_VIP), PORT), 60);
    assert_all_served(&[("outside -> DSR VIP".to_string(), dsr.clone())], &NODES);
    eprintln!("DSR VIP: {:?}", dsr.answers);
    for i in [1, 2] {
        let s = lab.nodes[i].status();
        let c = |n: &str| {
            s.counters
                .iter()
                .find(|c| c.name == n)
                .map_or(0, |c| c.value)
        };
        assert!(
            c("pass_standby") > 0,
            "node{}: no DSR flow reached its stack",
            i + 1
        );
        assert_eq!(
            c("fwd_to_backend"),
            0,
            "node{} balanced a flow onwards",
            i + 1
        );
    }

    // The holder's API server stops: the VIP stays, and once every node's checks
    // mark it down nobody fails.
    let transitions = lab.vrrp_transitions(0);
    let stopped = Instant::now();
    lab.apis[0] = None;
    let took = lab.backend_state(&all, 1, "down", Duration::from_secs(5));
    eprintln!("apiserver-1 down on every node {took:?} after it stopped");
    let results = lab.everyone(&all, 45);
    assert_all_served(&results, &[2, 3]);
    assert_eq!(lab.holder(), vec![0], "the VIP stayed with node 1");
    assert_eq!(lab.vrrp_transitions(0), transitions, "no VRRP transition");
    eprintln!(
        "apiserver-1 stopped {:?} ago; VIP still on node 1",
        stopped.elapsed()
    );

    // It comes back and serves again.
    lab.apis[0] = Some(lab.api(0));
    lab.backend_state(&all, 1, "up", Duration::from_secs(5));
    assert_all_served(&lab.everyone(&all, 45), &NODES);

    // The holder loses power: the VIP moves to node 2; the other nodes' clients and
    // the outside one keep working.
    let vip = SocketAddr::new(lan_v4(VIP), PORT);
    let local = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), PORT);
    let clients = vec![
        ("outside".to_string(), &lab.outside, vip),
        ("node2 -> VIP".to_string(), &lab.nodes[1].lb, vip),
        ("node3 -> 127.0.0.1".to_string(), &lab.nodes[2].lb, local),
    ];
    let streams = Streams::start(&lab, &clients);
    std::thread::sleep(Duration::from_millis(500));
    let died = Instant::now();
    lab.nodes[0].die();
    eventually_or(
        "node 2 holds the VIP",
        Duration::from_secs(5),
        || {
            let h = lab.holder();
            h == vec![0, 1] || h == vec![1]
        },
        || format!("holder {:?}", lab.holder()),
    );
    let failover = died.elapsed();
    let took = lab.backend_state(&[1, 2], 1, "down", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let seen = streams.stop();
    eprintln!(
        "node 1 lost power: node 2 holds the VIP after {failover:?}; node 1's API server \
         marked down {took:?} later; during it: {seen:?}"
    );
    for (who, (ok, _, gap)) in &seen {
        assert!(*ok > 0, "{who} got nothing through");
        assert!(*gap < Duration::from_secs(4), "{who} waited {gap:?}");
    }
    // After the failover and the checks: nobody fails.
    assert_all_served(&lab.everyone(&[1, 2], 45), &[2, 3]);
}
