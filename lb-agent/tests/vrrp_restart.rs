//! Restarting the master's agent keeps the VIP: two LB nodes on one bridge, VRRP
//! v3 at 100 ms adverts, a NAT VIP over three backends, twelve long-lived TCP
//! connections pinged every 50 ms and a stream of new connections. The master's
//! agent leaves for a restart (`lb-agent restart`, then SIGTERM with `on_sigterm =
//! "restart"`, as a static pod's container restart) and its successor starts at
//! once: neither node changes VRRP state, no connection breaks, no new connection
//! fails. `lb-agent handover` then hands the VIP over at once (priority 0) and holds
//! the node out until `--undo`. Needs root.

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
    BACKENDS, Cluster, VIP, name,
    servers::EchoServer,
    traffic::{Persistent, Stream},
};
use lb_agent::lab::{TcpServer, lan_v4};

fn config(node: u8, priority: u8, on_sigterm: &str) -> String {
    let mut out = String::new();
    for (vip, port) in [("banner", 80), ("echo", 81)] {
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             [vip.check]\ninterval = \"200ms\"\n",
            lan_v4(VIP),
            lan_v4(node)
        ));
        for b in BACKENDS {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
        }
    }
    out.push_str(&format!(
        "\n[[vrrp]]\nname = \"vi_web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{}/24\"]\n",
        lan_v4(VIP)
    ));
    // `[agent]` keys go before the services: the lab writes its own [agent] table.
    format!("on_sigterm = \"{on_sigterm}\"\n{out}")
}

/// Pings every long-lived connection every 50 ms until stopped: how many rounds,
/// and every failure.
fn pinging(mut conns: Persistent) -> (Arc<AtomicBool>, JoinHandle<(u32, Vec<String>)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let (mut rounds, mut broken) = (0, Vec::new());
        while !flag.load(Ordering::Relaxed) {
            for r in conns.ping() {
                if let Err(e) = r {
                    broken.push(e);
                }
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (rounds, broken)
    });
    (stop, t)
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

#[test]
fn a_restarted_master_keeps_the_vip_and_every_connection() {
    let mut c = Cluster::new(2);
    c.nodes[0].write_config(&config(1, 150, "handover"));
    c.nodes[1].write_config(&config(2, 100, "handover"));
    let _servers: Vec<(TcpServer, EchoServer)> = c
        .backends
        .iter()
        .map(|b| {
            let ip = lan_v4(b.index);
            (
                TcpServer::spawn(&b.ns, SocketAddr::new(ip, 80), &name(b.index)).expect("banner"),
                EchoServer::spawn(&b.ns, SocketAddr::new(ip, 81), &name(b.index)),
            )
        })
        .collect();
    c.nodes[0].start();
    c.nodes[1].start();
    let start = Instant::now();
    let states = |c: &Cluster| -> Vec<String> { vrrp(c).into_iter().map(|(s, _)| s).collect() };
    while states(&c) != ["MASTER", "BACKUP"] {
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", vrrp(&c));
        std::thread::sleep(Duration::from_millis(20));
    }
    c.served_by(0, SocketAddr::new(lan_v4(VIP), 80));

    for (round, how) in ["lb-agent restart", "SIGTERM, on_sigterm = restart"]
        .into_iter()
        .enumerate()
    {
        let conns = Persistent::open(&c.client.ns, SocketAddr::new(lan_v4(VIP), 81), 12);
        let (stop, pings) = pinging(conns);
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
            c.nodes[0].write_config(&config(1, 150, "restart"));
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
        stop.store(true, Ordering::Relaxed);
        let (rounds, broken) = pings.join().expect("pinger");
        let seen = stream.stop();
        eprintln!(
            "{how}: old agent gone after {gone:?}, new one serving after {back:?}; \
             {rounds} ping rounds of 12 connections, {} new connections",
            seen.ok()
        );
        let log = c.nodes[0].log();
        let record = log
            .lines()
            .rfind(|l| l.contains("restart record of"))
            .unwrap_or("no restart record read");
        eprintln!("{how}: {record}");
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
        assert!(broken.is_empty(), "{how}: broken connections: {broken:?}");
        assert!(rounds > 10, "{how}");
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
    while c.nodes[1].vrrp_state() != "MASTER" {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "no handover: {:?}",
            vrrp(&c)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("lb-agent handover: backup MASTER after {:?}", t.elapsed());
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
    let t = Instant::now();
    while c.nodes[0].vrrp_state() != "MASTER" {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "no preemption: {:?}",
            vrrp(&c)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
