//! Restarts and failures of the VRRP master, with connections open: two LB nodes on
//! one bridge, VRRP v3 (100 ms adverts; 1 s for the restarts, see [`RESTART_ADVERT`]),
//! three backends; a NAT VIP (new connections
//! on :80, long-lived ones on :81) and a DSR VIP (long-lived on :82); twelve
//! long-lived TCP connections per VIP pinged every 50 ms, and a stream of new
//! connections.
//!
//! A restart: the master's agent leaves (`lb-agent restart`, then SIGTERM with
//! `on_sigterm = "restart"`, as a static pod's container restart) and its
//! successor starts at once: neither node changes VRRP state, no connection breaks
//! (NAT or DSR), no new connection fails. `lb-agent handover` then hands the VIP
//! over at once (priority 0) and holds the node out until `--undo`.
//!
//! A failure: the master loses power (agent killed, its frames dropped at the
//! bridge, link up). The backup takes over and every DSR connection goes on (each
//! node with the same config and health picks the same backend), the longest stall
//! under 1 s (on a quiet machine; the tests' timing slack is allowed); the old master comes back and preempts, again breaking no DSR
//! connection. Needs root.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::{
    BACKENDS, Cluster, VIP,
    eventually::{TIMING_SLACK, eventually, eventually_or},
    name,
    servers::EchoServer,
    traffic::{Persistent, Stream},
};
use lb_agent::lab::{TcpServer, lan_v4};

/// (name, port, forwarding).
const VIPS: [(&str, u16, &str); 3] = [
    ("banner", 80, "nat"),
    ("echo", 81, "nat"),
    ("echo-dsr", 82, "dsr"),
];

/// The NAT VIPs' SNAT address when flows are synced: it floats with the VIP.
const FLOATING_SNAT: u8 = 20;
/// The flow sync key of the lab.
const SYNC_KEY: &str = "lab-sync-key-0123456789abcdef";

/// The advert interval of the failure tests: the backup's Master_Down_Interval is
/// 361 ms, the failover time they measure.
const ADVERT: &str = "100ms";

/// The advert interval of the restart test. A restart must end within the backup's
/// Master_Down_Interval for the backup not to take over: the successor advertises
/// about 15 ms after its predecessor's last advert on a quiet machine (printed, and
/// in bench/RESULTS.md), within the 361 ms of 100 ms adverts, but a CI machine with a
/// build beside the test has held a process longer than that. At 1 s (3.6 s) the test
/// asserts what a restart must not do, with a margin no scheduler hiccup eats.
const RESTART_ADVERT: &str = "1s";

fn config(node: u8, priority: u8, on_sigterm: &str, advert: &str) -> String {
    config_with(node, priority, on_sigterm, false, advert)
}

/// With `sync`: the NAT VIPs' SNAT address floats with the VIP (one more address of
/// the VRRP instance) and flows are synced with the other node.
fn config_with(node: u8, priority: u8, on_sigterm: &str, sync: bool, advert: &str) -> String {
    let mut out = String::new();
    let snat_ip = if sync {
        lan_v4(FLOATING_SNAT)
    } else {
        lan_v4(node)
    };
    for (vip, port, forwarding) in VIPS {
        let snat = if forwarding == "nat" {
            format!("snat_address = \"{snat_ip}\"\n")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nforwarding = \"{forwarding}\"\n{snat}\
             [vip.check]\ninterval = \"200ms\"\n",
            lan_v4(VIP),
        ));
        for b in BACKENDS {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
        }
    }
    let floating = if sync {
        format!(", \"{}/24\"", lan_v4(FLOATING_SNAT))
    } else {
        String::new()
    };
    out.push_str(&format!(
        "\n[[vrrp]]\nname = \"vi_web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"{advert}\"\naddresses = [\"{}/24\"{floating}]\n",
        lan_v4(VIP)
    ));
    if sync {
        let peer = if node == 1 { 2 } else { 1 };
        out.push_str(&format!(
            "\n[agent.sync]\npeers = [\"{}\"]\nkey = \"{SYNC_KEY}\"\n",
            lan_v4(peer)
        ));
    }
    // `[agent]` keys go before the services: the lab writes its own [agent] table.
    format!("on_sigterm = \"{on_sigterm}\"\n{out}")
}

/// Servers of every backend: a banner on :80, echo on :81 (NAT) and on the VIP's
/// :82 (DSR: the VIP on the loopback, ARP for it left to the LB).
fn serve(c: &Cluster) -> Servers {
    c.backends
        .iter()
        .map(|b| {
            let ip = lan_v4(b.index);
            b.ns.ip(&["addr", "add", &format!("{}/32", lan_v4(VIP)), "dev", "lo"])
                .expect("VIP on lo");
            b.ns.sysctl("net.ipv4.conf.eth0.arp_ignore", "1")
                .expect("arp_ignore");
            b.ns.sysctl("net.ipv4.conf.eth0.arp_announce", "2")
                .expect("arp_announce");
            (
                TcpServer::spawn(&b.ns, SocketAddr::new(ip, 80), &name(b.index)).expect("banner"),
                EchoServer::spawn(&b.ns, SocketAddr::new(ip, 81), &name(b.index)),
                // Any address: the VIP for clients, its own for health checks.
                EchoServer::spawn(&b.ns, SocketAddr::from(([0, 0, 0, 0], 82)), &name(b.index)),
            )
        })
        .collect()
}

/// What pinging a set of long-lived connections saw.
#[derive(Debug, Default)]
struct Pinged {
    rounds: u32,
    broken: Vec<String>,
    /// The longest round (a stall while the VIP moved).
    longest: Duration,
}

/// Pings every connection every 50 ms until stopped (each broken one counted once).
fn pinging(mut conns: Persistent) -> (Arc<AtomicBool>, JoinHandle<Pinged>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut seen = Pinged::default();
        let mut dead = [false; 12];
        while !flag.load(Ordering::Relaxed) {
            let t = Instant::now();
            for (i, r) in conns.ping().into_iter().enumerate() {
                if let Err(e) = r
                    && !std::mem::replace(&mut dead[i], true)
                {
                    seen.broken.push(e);
                }
            }
            seen.longest = seen.longest.max(t.elapsed());
            seen.rounds += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    });
    (stop, t)
}

/// Twelve long-lived connections to each echo VIP, pinged until the returned
/// function stops them: (NAT, DSR).
fn long_lived(c: &Cluster) -> impl FnOnce() -> (Pinged, Pinged) + use<> {
    let (nat_stop, nat) = pinging(Persistent::open(
        &c.client.ns,
        SocketAddr::new(lan_v4(VIP), 81),
        12,
    ));
    let (dsr_stop, dsr) = pinging(Persistent::open(
        &c.client.ns,
        SocketAddr::new(lan_v4(VIP), 82),
        12,
    ));
    move || {
        nat_stop.store(true, Ordering::Relaxed);
        dsr_stop.store(true, Ordering::Relaxed);
        (
            nat.join().expect("NAT pinger"),
            dsr.join().expect("DSR pinger"),
        )
    }
}

/// (state, transitions) of each node's instance.
fn vrrp(c: &Cluster) -> Vec<(String, u64)> {
    c.nodes
        .iter()
        .map(|n| {
            let s = n.status();
            let v = s.vrrp.first().expect("instance");
            (v.state.clone(), v.transitions)
        })
        .collect()
}

fn states(c: &Cluster) -> Vec<String> {
    vrrp(c).into_iter().map(|(s, _)| s).collect()
}

/// Waits until node 1 is MASTER and node 2 BACKUP.
fn master_and_backup(c: &Cluster, limit: Duration) -> Duration {
    eventually_or(
        "node 1 MASTER, node 2 BACKUP",
        limit,
        || states(c) == ["MASTER", "BACKUP"],
        || format!("{:?}", vrrp(c)),
    )
}

/// Waits until node 2 is MASTER after node 1's failure: within its Master_Down_Interval
/// (361 ms) on a quiet machine, the tests' slack allowed.
fn takeover(c: &Cluster) {
    eventually(
        "the backup takes over",
        Duration::from_secs(2) + TIMING_SLACK,
        || c.nodes[1].vrrp_state() == "MASTER",
    );
}

/// Servers of every backend.
type Servers = Vec<(TcpServer, EchoServer, EchoServer)>;

/// Two nodes (150 and 100), node 1 master, the backends serving.
fn cluster(on_sigterm: &str, advert: &str) -> (Cluster, Servers) {
    cluster_with(on_sigterm, false, advert)
}

fn cluster_with(on_sigterm: &str, sync: bool, advert: &str) -> (Cluster, Servers) {
    let mut c = Cluster::new(2);
    let servers = serve(&c);
    c.nodes[0].write_config(&config_with(1, 150, on_sigterm, sync, advert));
    c.nodes[1].write_config(&config_with(2, 100, on_sigterm, sync, advert));
    c.nodes[0].start();
    c.nodes[1].start();
    master_and_backup(&c, Duration::from_secs(10));
    c.served_by(0, SocketAddr::new(lan_v4(VIP), 80));
    (c, servers)
}

#[test]
fn a_restarted_master_keeps_the_vip_and_every_connection() {
    let (mut c, _servers) = cluster("handover", RESTART_ADVERT);

    for (round, how) in ["lb-agent restart", "SIGTERM, on_sigterm = restart"]
        .into_iter()
        .enumerate()
    {
        let pings = long_lived(&c);
        let stream = Stream::start(
            &c.client.ns,
            SocketAddr::new(lan_v4(VIP), 80),
            Duration::from_millis(5),
        );
        std::thread::sleep(Duration::from_millis(300));
        let backup_before = vrrp(&c)[1].clone();
        let left = Instant::now();
        if round == 0 {
            // The next agent reads on_sigterm = "restart" (for the second round).
            c.nodes[0].write_config(&config(1, 150, "restart", RESTART_ADVERT));
            let out = c.nodes[0].cli(&["restart"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            c.nodes[0].wait_exit();
        } else {
            c.nodes[0].terminate();
        }
        let gone = left.elapsed();
        c.nodes[0].start();
        let back = left.elapsed();
        std::thread::sleep(Duration::from_millis(800));
        let (nat, dsr) = pings();
        let seen = stream.stop();
        eprintln!(
            "{how}: old agent gone after {gone:?}, new one serving after {back:?}; \
             {} ping rounds of 12 NAT and 12 DSR connections (longest {:?} / {:?}), \
             {} new connections",
            nat.rounds,
            nat.longest,
            dsr.longest,
            seen.ok()
        );
        let log = c.nodes[0].log();
        let record = log
            .lines()
            .rfind(|l| l.contains("restart record of"))
            .unwrap_or("no restart record read");
        eprintln!("{how}: {record}");
        // What would have let a backup at 100 ms adverts take over: the successor's
        // first advert later than its Master_Down_Interval (361 ms) after the last one.
        let age: u64 = record
            .split("restart record of ")
            .nth(1)
            .and_then(|r| r.split(" ms").next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(u64::MAX);
        let allowed = Duration::from_millis(361) + TIMING_SLACK;
        assert!(
            Duration::from_millis(age) < allowed,
            "{how}: the successor read the restart record {age} ms after it was written, \
             above {allowed:?}"
        );
        assert!(
            log.contains("resuming as MASTER after a restart"),
            "{how}: the successor did not resume:\n{log}"
        );
        assert_eq!(
            vrrp(&c),
            [("MASTER".into(), 0), backup_before.clone()],
            "{how}: no VRRP state change on either node"
        );
        assert!(
            !c.nodes[1].log().contains("-> MASTER"),
            "{how}: the backup never took over:\n{}",
            c.nodes[1].log()
        );
        for (what, p) in [("NAT", &nat), ("DSR", &dsr)] {
            assert!(
                p.broken.is_empty(),
                "{how}: broken {what} connections: {:?}",
                p.broken
            );
            assert!(p.rounds > 10, "{how}: {what} {p:?}");
        }
        assert!(
            seen.failures.is_empty(),
            "{how}: failed new connections: {:?}",
            seen.failures
        );
        assert!(seen.ok() > 50, "{how}: {}", seen.ok());
    }

    // Planned maintenance: the master hands over at once and stays out.
    let t = Instant::now();
    let out = c.nodes[0].cli(&["handover"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Priority 0: the backup takes over after its skew (0.61 s at 1 s adverts).
    eventually_or(
        "the backup takes over at the handover",
        Duration::from_secs(1) + TIMING_SLACK,
        || c.nodes[1].vrrp_state() == "MASTER",
        || format!("{:?}", vrrp(&c)),
    );
    eprintln!("lb-agent handover: backup MASTER after {:?}", t.elapsed());
    // (An owner slower than 200 ms to confirm, a loaded debug build, only logs a
    // warning: the takeover goes on.)
    assert!(
        !c.nodes[0].log().contains("did not confirm"),
        "a resumed master does not ask its data plane:\n{}",
        c.nodes[0].log()
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        c.nodes[0].vrrp_state(),
        "FAULT",
        "held out, no preemption back"
    );
    assert!(c.nodes[0].status().vrrp[0].held);
    c.served_by(1, SocketAddr::new(lan_v4(VIP), 80));
    let out = c.nodes[0].cli(&["handover", "--undo"]);
    assert!(out.status.success());
    // Back in the election, it ignores the lower priority's adverts and preempts when
    // its Master_Down_Interval ends: 3 x 1 s + skew (0.41 s at priority 150).
    eventually_or(
        "preemption after --undo",
        Duration::from_secs(4) + TIMING_SLACK,
        || c.nodes[0].vrrp_state() == "MASTER",
        || format!("{:?}", vrrp(&c)),
    );
}

#[test]
fn a_dead_master_s_dsr_connections_go_on_through_the_backup_and_back() {
    let (mut c, _servers) = cluster("handover", ADVERT);
    let pings = long_lived(&c);
    std::thread::sleep(Duration::from_millis(300));

    // Power off: agent killed, frames dropped at the bridge, link up.
    let died = Instant::now();
    c.nodes[0].die();
    takeover(&c);
    let took_over = died.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let (nat, dsr) = pings();
    eprintln!(
        "master power-off: backup MASTER after {took_over:?}; DSR: {} of 12 broken, longest \
         stall {:?}; NAT: {} of 12 broken (this lab runs without flow sync)",
        dsr.broken.len(),
        dsr.longest,
        nat.broken.len()
    );
    let counters: Vec<String> = c.nodes[1]
        .status()
        .counters
        .iter()
        .filter(|x| x.value > 0)
        .map(|x| format!("{}={}", x.name, x.value))
        .collect();
    eprintln!("backup's counters: {counters:?}");
    assert!(
        dsr.broken.is_empty(),
        "DSR connections broke: {:?}",
        dsr.broken
    );
    assert!(
        dsr.longest < Duration::from_secs(1) + TIMING_SLACK,
        "DSR stall {:?}",
        dsr.longest
    );
    let midstream = c.nodes[1]
        .status()
        .counters
        .iter()
        .find(|x| x.name == "flow_midstream")
        .map_or(0, |x| x.value);
    assert!(
        midstream > 0,
        "the backup picked up flows it never saw begin"
    );

    // The old master comes back and preempts: the DSR connections stay.
    let pings = long_lived_dsr(&c);
    c.nodes[0].power_on();
    c.nodes[0].start();
    master_and_backup(&c, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let dsr = pings();
    eprintln!(
        "old master back and preempting: DSR {} of 12 broken, longest stall {:?}",
        dsr.broken.len(),
        dsr.longest
    );
    assert!(
        dsr.broken.is_empty(),
        "DSR connections broke: {:?}",
        dsr.broken
    );
    assert!(
        dsr.longest < Duration::from_secs(1) + TIMING_SLACK,
        "DSR stall {:?}",
        dsr.longest
    );
}

/// Twelve new long-lived connections to the DSR VIP, pinged until stopped.
fn long_lived_dsr(c: &Cluster) -> impl FnOnce() -> Pinged + use<> {
    let (stop, t) = pinging(Persistent::open(
        &c.client.ns,
        SocketAddr::new(lan_v4(VIP), 82),
        12,
    ));
    move || {
        stop.store(true, Ordering::Relaxed);
        t.join().expect("DSR pinger")
    }
}

/// The sync counters of node `i`.
fn sync_of(c: &Cluster, i: usize) -> lb_agent::status::SyncStatus {
    c.nodes[i].status().sync.expect("sync configured")
}

#[test]
fn with_flow_sync_a_dead_master_s_nat_connections_go_on_and_come_back() {
    let (mut c, _servers) = cluster_with("handover", true, ADVERT);
    let pings = long_lived(&c);
    // Past min_age (1 s) and a sender's pass (1 s): the backup holds the flows.
    eventually_or(
        "the backup learns the 24 flows",
        Duration::from_secs(5),
        || sync_of(&c, 1).records_learned >= 24,
        || format!("{:?}", sync_of(&c, 1)),
    );
    let learned = c.nodes[1].cli(&["flows", "--vip", "echo"]);
    let table = String::from_utf8_lossy(&learned.stdout);
    assert!(table.contains("established (learned)"), "{table}");

    // A forged message (another key) and a replayed one are rejected and counted.
    let forged = lb_agent::sync::wire::encode(
        &lb_agent::sync::wire::Header {
            kind: lb_agent::sync::wire::Kind::Resync,
            boot: 1,
            seq: 1,
            unix_ms: 0,
        },
        &[],
        &lb_agent::sync::wire::key(b"not the lab's key, but long enough"),
    );
    let to = SocketAddr::new(lan_v4(2), 4739);
    c.nodes[0]
        .lb
        .ns
        .run(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
            s.send_to(&forged, to).expect("send");
        })
        .expect("node 1 namespace");
    // A message signed with the lab's key, sent twice: the copy is a replay.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let valid = lb_agent::sync::wire::encode(
        &lb_agent::sync::wire::Header {
            kind: lb_agent::sync::wire::Kind::Flows,
            boot: 99,
            seq: 1,
            unix_ms: now_ms,
        },
        &[],
        &lb_agent::sync::wire::key(SYNC_KEY.as_bytes()),
    );
    c.nodes[0]
        .lb
        .ns
        .run(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
            s.send_to(&valid, to).expect("send");
            s.send_to(&valid, to).expect("send again");
        })
        .expect("node 1 namespace");
    eventually_or(
        "both messages counted as rejected",
        Duration::from_secs(2),
        || sync_of(&c, 1).rejected.values().sum::<u64>() >= 2,
        || format!("{:?}", sync_of(&c, 1).rejected),
    );
    let rejected = sync_of(&c, 1).rejected;
    assert_eq!(rejected.get("auth"), Some(&1), "{rejected:?}");
    assert_eq!(rejected.get("replayed"), Some(&1), "{rejected:?}");
    // /metrics serves the status published every second.
    let samples = [
        "lb_sync_messages_rejected_total{reason=\"auth\"} 1",
        "lb_sync_peer_last_heard_seconds{peer=\"198.18.1.1\"}",
        "lb_sync_records_learned_total ",
    ];
    eventually_or(
        "/metrics has the sync samples",
        Duration::from_secs(3),
        || {
            let metrics = c.nodes[1].http_get("/metrics", None).1;
            samples.iter().all(|s| metrics.contains(s))
        },
        || c.nodes[1].http_get("/metrics", None).1,
    );
    let out = c.nodes[1].cli(&["vrrp"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("flow sync: peers 198.18.1.1 (heard"),
        "{table}"
    );

    // The master loses power.
    let died = Instant::now();
    c.nodes[0].die();
    takeover(&c);
    let took_over = died.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let (nat, dsr) = pings();
    let s = sync_of(&c, 1);
    eprintln!(
        "flow sync, master power-off: backup MASTER after {took_over:?}; NAT {} of 12 broken \
         (longest stall {:?}), DSR {} of 12 broken (longest {:?}); the backup had received \
         {} messages, {} records ({} learned)",
        nat.broken.len(),
        nat.longest,
        dsr.broken.len(),
        dsr.longest,
        s.messages_received,
        s.records_received,
        s.records_learned
    );
    for (what, p) in [("NAT", &nat), ("DSR", &dsr)] {
        assert!(
            p.broken.is_empty(),
            "{what} connections broke: {:?}",
            p.broken
        );
        assert!(
            p.longest < Duration::from_secs(1) + TIMING_SLACK,
            "{what} stall {:?}",
            p.longest
        );
    }

    // The old master comes back, learns the flows from the new one and preempts.
    let pings = long_lived(&c);
    std::thread::sleep(Duration::from_millis(2500));
    c.nodes[0].power_on();
    c.nodes[0].start();
    master_and_backup(&c, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let (nat, dsr) = pings();
    eprintln!(
        "flow sync, old master back and preempting: NAT {} of 12 broken (longest {:?}), \
         DSR {} of 12 broken (longest {:?})",
        nat.broken.len(),
        nat.longest,
        dsr.broken.len(),
        dsr.longest
    );
    for (what, p) in [("NAT", &nat), ("DSR", &dsr)] {
        assert!(
            p.broken.is_empty(),
            "{what} connections broke: {:?}",
            p.broken
        );
        assert!(
            p.longest < Duration::from_secs(1) + TIMING_SLACK,
            "{what} stall {:?}",
            p.longest
        );
    }
    let s = sync_of(&c, 1);
    eprintln!(
        "sync overhead over the run (node 2): {} messages, {} records, {} bytes sent",
        s.messages_sent, s.records_sent, s.bytes_sent
    );
}
