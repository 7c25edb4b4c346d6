//! Socket-level balancing on an LB node (the real agent in its namespace, real
//! servers on three backends): this node's own connects and UDP sends to a VIP are
//! balanced by the socket programs like packets from the network, its sockets see
//! the VIP as their peer, a VIP with no backend up refuses at once, node-local VIPs
//! (127.0.0.1) serve the node alone, sockets of other namespaces are left to the
//! XDP path, and a backend going down closes the node's sockets balanced to it.
//! Needs root.

mod common;

use std::{
    io::{ErrorKind, Read as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use common::{
    AgentLab, BACKENDS, LB, VIP, eventually::eventually, name, servers::EchoServer,
    traffic::Persistent,
};
use lb_agent::lab::{TcpServer, UdpServer, connections, lan_v4, lan_v6};

const INTERVAL_MS: u64 = 300;

fn config() -> String {
    let backends = |port: u16| {
        BACKENDS
            .iter()
            .map(|&b| {
                format!(
                    "[[vip.backend]]\naddress = \"{}\"\nport = {port}\n",
                    lan_v4(b)
                )
            })
            .collect::<String>()
    };
    let check = |kind: &str, port: Option<u16>| {
        let port = port.map(|p| format!("port = {p}\n")).unwrap_or_default();
        format!(
            "[vip.check]\ntype = \"{kind}\"\n{port}interval = \"{INTERVAL_MS}ms\"\nfall = 2\nrise = 2\n"
        )
    };
    let (vip, lb) = (lan_v4(VIP), lan_v4(LB));
    let backends6: String = BACKENDS
        .iter()
        .map(|&b| format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v6(b)))
        .collect();
    let web6 = format!(
        "[[vip]]\nname = \"web6\"\naddress = \"{}\"\nport = 80\nsnat_address = \"{}\"\n{}{backends6}\n",
        lan_v6(VIP),
        lan_v6(LB),
        check("tcp", None)
    );
    web6 + &format!(
        "[[vip]]\nname = \"web\"\naddress = \"{vip}\"\nport = 80\nsnat_address = \"{lb}\"\n{}{}\n\
         [[vip]]\nname = \"echo\"\naddress = \"{vip}\"\nport = 7\nsnat_address = \"{lb}\"\n{}{}\n\
         [[vip]]\nname = \"dns\"\naddress = \"{vip}\"\nport = 53\nprotocol = \"udp\"\nsnat_address = \"{lb}\"\n{}{}\n\
         [[vip]]\nname = \"local\"\naddress = \"127.0.0.1\"\nport = 6443\n{}{}\n\
         [[vip]]\nname = \"nothing\"\naddress = \"{vip}\"\nport = 9\nsnat_address = \"{lb}\"\n{}{}\n",
        check("tcp", None),
        backends(80),
        check("tcp", Some(81)),
        backends(7),
        check("none", None),
        backends(53),
        check("tcp", None),
        backends(80),
        check("tcp", None),
        backends(9),
    )
}

fn counter(lab: &AgentLab, name: &str) -> u64 {
    lab.status()
        .counters
        .iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.value)
}

#[test]
fn the_nodes_own_sockets_are_balanced_like_its_packets() {
    let mut lab = AgentLab::new();
    let vip = lan_v4(VIP);
    let web: Vec<TcpServer> = BACKENDS
        .iter()
        .map(|&b| {
            TcpServer::spawn(
                &lab.backends[b as usize - 11].ns,
                SocketAddr::new(lan_v4(b), 80),
                &name(b),
            )
            .expect("web")
        })
        .collect();
    let mut health: Vec<Option<TcpServer>> = BACKENDS
        .iter()
        .map(|&b| {
            Some(
                TcpServer::spawn(
                    &lab.backends[b as usize - 11].ns,
                    SocketAddr::new(lan_v4(b), 81),
                    "ok",
                )
                .expect("health"),
            )
        })
        .collect();
    let _echo: Vec<EchoServer> = BACKENDS
        .iter()
        .map(|&b| {
            EchoServer::spawn(
                &lab.backends[b as usize - 11].ns,
                SocketAddr::new(lan_v4(b), 7),
                &name(b),
            )
        })
        .collect();
    let _web6: Vec<TcpServer> = BACKENDS
        .iter()
        .map(|&b| {
            TcpServer::spawn(
                &lab.backends[b as usize - 11].ns,
                SocketAddr::new(lan_v6(b), 80),
                &name(b),
            )
            .expect("web6")
        })
        .collect();
    let _dns: Vec<UdpServer> = BACKENDS
        .iter()
        .map(|&b| {
            UdpServer::spawn(
                &lab.backends[b as usize - 11].ns,
                SocketAddr::new(lan_v4(b), 53),
                &name(b),
            )
            .expect("udp")
        })
        .collect();
    lab.write_config(&config());
    lab.start();
    lab.wait_for("backends up", Duration::from_secs(5), |s| {
        ["web", "web6", "echo", "dns", "local"]
            .iter()
            .all(|v| s.vip(v).is_some_and(|v| v.up == 3))
    });
    let status = lab.status();
    assert!(
        status.sockets.is_some(),
        "socket programs attached: {:?}",
        status.sockets
    );
    assert!(status.vip("local").expect("local").node_local);
    let log = lab.log();
    assert!(log.contains("socket programs attached to cgroup"), "{log}");
    // A stock namespace: the agent turned forwarding on for eth0 and said so.
    assert!(log.contains("net.ipv4.conf.eth0.forwarding = 1"), "{log}");

    // TCP from the node itself: every backend serves, none fails.
    let before = counter(&lab, "sock_balanced");
    let t = connections(
        &lab.lb.ns,
        SocketAddr::new(vip, 80),
        90,
        Duration::from_secs(2),
    )
    .expect("node client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(t.answers.len(), 3, "{:?}", t.answers);
    assert!(t.answers.values().all(|&n| n >= 10), "{:?}", t.answers);
    assert_eq!(counter(&lab, "sock_balanced") - before, 90);

    // IPv6: the same, through connect6.
    let vip6 = SocketAddr::new(lan_v6(VIP), 80);
    let t = connections(&lab.lb.ns, vip6, 60, Duration::from_secs(2)).expect("node client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(t.answers.len(), 3, "{:?}", t.answers);
    let peer6 = lab
        .lb
        .ns
        .run(move || {
            TcpStream::connect_timeout(&vip6, Duration::from_secs(2))
                .and_then(|s| s.peer_addr())
                .expect("connect")
        })
        .expect("node namespace");
    assert_eq!(peer6, vip6);

    // Its sockets see the VIP as their peer, also through an IPv4-mapped address on
    // a dual-stack socket.
    let peers = lab
        .lb
        .ns
        .run(move || {
            let s = TcpStream::connect_timeout(&SocketAddr::new(vip, 80), Duration::from_secs(2))
                .expect("connect");
            let v4 = s.peer_addr().expect("peer");
            let mapped = SocketAddr::new(
                IpAddr::V6(match vip {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                }),
                80,
            );
            let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
                .expect("v6 socket");
            sock.set_only_v6(false).expect("dual stack");
            sock.connect_timeout(&mapped.into(), Duration::from_secs(2))
                .expect("connect mapped");
            let mut s6: TcpStream = sock.into();
            let peer6 = s6.peer_addr().expect("peer");
            let mut banner = String::new();
            s6.read_to_string(&mut banner).expect("banner");
            (v4, peer6, mapped, banner)
        })
        .expect("node namespace");
    assert_eq!(peers.0, SocketAddr::new(vip, 80));
    assert_eq!(peers.1, peers.2);
    assert!(peers.3.starts_with("backend-"), "{:?}", peers.3);

    // UDP, unconnected and connected: answers come from the VIP.
    let udp = lab
        .lb
        .ns
        .run(move || {
            let target = SocketAddr::new(vip, 53);
            let mut names = std::collections::BTreeSet::new();
            let mut froms = std::collections::BTreeSet::new();
            for _ in 0..30 {
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                s.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                s.send_to(b"q", target).expect("send");
                let mut buf = [0u8; 64];
                let (n, from) = s.recv_from(&mut buf).expect("answer");
                names.insert(String::from_utf8_lossy(&buf[..n]).into_owned());
                froms.insert(from);
            }
            let c = UdpSocket::bind("0.0.0.0:0").expect("bind");
            c.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            c.connect(target).expect("connect");
            c.send(b"q").expect("send");
            let mut buf = [0u8; 64];
            let n = c.recv(&mut buf).expect("answer");
            (names, froms, c.peer_addr().expect("peer"), n)
        })
        .expect("node namespace");
    assert_eq!(udp.0.len(), 3, "every backend answered: {:?}", udp.0);
    assert_eq!(
        udp.1.into_iter().collect::<Vec<_>>(),
        vec![SocketAddr::new(vip, 53)]
    );
    assert_eq!(udp.2, SocketAddr::new(vip, 53));
    assert!(udp.3 > 0);

    // The node-local VIP serves the node.
    let t = connections(
        &lab.lb.ns,
        "127.0.0.1:6443".parse().expect("addr"),
        60,
        Duration::from_secs(2),
    )
    .expect("node client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(t.answers.len(), 3, "{:?}", t.answers);

    // Another namespace's connects are not the node's: they reach the VIP as
    // packets (XDP), the socket programs leave them alone.
    let before = counter(&lab, "sock_balanced");
    let fwd = counter(&lab, "fwd_to_backend");
    let t = connections(
        &lab.client.ns,
        SocketAddr::new(vip, 80),
        30,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(counter(&lab, "sock_balanced"), before);
    assert!(counter(&lab, "fwd_to_backend") >= fwd + 30);

    // A restart replaces the socket programs' links without a gap, and the node's
    // connects are balanced as before.
    lab.terminate();
    lab.start();
    let before = counter(&lab, "sock_balanced");
    let t = connections(
        &lab.lb.ns,
        SocketAddr::new(vip, 80),
        30,
        Duration::from_secs(2),
    )
    .expect("node client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(counter(&lab, "sock_balanced") - before, 30);
    let pinned = std::fs::read_dir(&lab.pins)
        .expect("pins")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("link_sock_"))
        .count();
    assert_eq!(pinned, 8, "one pinned link per socket program");

    // No backend up: refused at once.
    lab.wait_for("nothing down", Duration::from_secs(5), |s| {
        s.vip("nothing").is_some_and(|v| v.up == 0)
    });
    let refused = lab
        .lb
        .ns
        .run(move || {
            let start = Instant::now();
            let e = TcpStream::connect_timeout(&SocketAddr::new(vip, 9), Duration::from_secs(2))
                .expect_err("refused");
            (e.kind(), start.elapsed())
        })
        .expect("node namespace");
    assert_eq!(refused.0, ErrorKind::ConnectionRefused, "{refused:?}");
    assert!(refused.1 < Duration::from_millis(100), "{refused:?}");
    assert!(counter(&lab, "sock_no_backend") >= 1);

    // A backend goes down (its check fails, its echo server stays): the node's
    // sockets balanced to it are closed at once, the others keep working.
    let mut conns = Persistent::open(&lab.lb.ns, SocketAddr::new(vip, 7), 24);
    let first: Vec<String> = conns.ping().into_iter().map(|r| r.expect("ping")).collect();
    let on_11 = first.iter().filter(|n| **n == name(11)).count();
    assert!(on_11 > 0, "{first:?}");
    let down_at = Instant::now();
    health[0] = None;
    lab.wait_for("backend 11 down", Duration::from_secs(3), |s| {
        s.vip("echo")
            .and_then(|v| {
                v.backends
                    .iter()
                    .find(|b| b.address == lan_v4(11).to_string())
            })
            .is_some_and(|b| b.state == "down")
    });
    eventually(
        "the agent logs the sockets closed",
        Duration::from_secs(2),
        || lab.log().contains("closed"),
    );
    eprintln!(
        "sockets to the down backend closed {:?} after its check server stopped",
        down_at.elapsed()
    );
    let after = conns.ping();
    for (before, now) in first.iter().zip(&after) {
        if *before == name(11) {
            assert!(
                now.is_err(),
                "a socket on the down backend still works: {now:?}"
            );
        } else {
            assert_eq!(
                now.as_deref(),
                Ok(before.as_str()),
                "a socket on an up backend broke"
            );
        }
    }
    let closed = lab.log();
    assert!(
        closed.contains(&format!("closed {on_11} local sockets")),
        "{on_11} sockets expected closed:\n{closed}"
    );
    drop(web);
}

/// The agent in a cgroup namespace of its own, as in a container: the cgroup root
/// it sees is its own cgroup, so it refuses to start (nothing loaded) unless told
/// where the host's hierarchy is; told, it balances the node's connects.
#[test]
fn in_a_cgroup_namespace_the_host_hierarchy_must_be_named() {
    use std::process::{Command, Stdio};

    let lab = AgentLab::new();
    let vip = lan_v4(VIP);
    let _web: Vec<TcpServer> = BACKENDS
        .iter()
        .map(|&b| {
            TcpServer::spawn(
                &lab.backends[b as usize - 11].ns,
                SocketAddr::new(lan_v4(b), 80),
                &name(b),
            )
            .expect("web")
        })
        .collect();
    let web = |extra: &str| {
        let backends: String = BACKENDS
            .iter()
            .map(|&b| format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)))
            .collect();
        lab.write_config(&format!(
            "[[vip]]\nname = \"web\"\naddress = \"{vip}\"\nport = 80\nsnat_address = \"{}\"\n\
             [vip.check]\ntype = \"none\"\n{backends}",
            lan_v4(LB)
        ));
        let text = std::fs::read_to_string(&lab.config).expect("config");
        std::fs::write(
            &lab.config,
            text.replacen("[agent]\n", &format!("[agent]\n{extra}"), 1),
        )
        .expect("config");
    };
    let agent = || {
        Command::new("unshare")
            .arg("--cgroup")
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.lb.ns.name()))
            .arg(common::AGENT)
            .args(["run", "--config"])
            .arg(&lab.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare the agent")
    };

    web("");
    let out = agent().wait_with_output().expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(
        err.contains("cgroup namespace of its own") && err.contains("socket_lb_cgroup"),
        "{err}"
    );
    assert!(!lab.pins.join("maps").exists(), "nothing may be loaded");

    let root = lb_agent::dataplane::cgroup2_root().expect("the host's cgroup v2 root");
    web(&format!("socket_lb_cgroup = \"{}\"\n", root.display()));
    let mut child = agent();
    eventually("the agent comes up", Duration::from_secs(20), || {
        let out = lab.cli(&["status", "--json"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"daemon\"")
    });
    let t = connections(
        &lab.lb.ns,
        SocketAddr::new(vip, 80),
        30,
        Duration::from_secs(2),
    )
    .expect("node client");
    let balanced = counter(&lab, "sock_balanced");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert_eq!(t.answers.len(), 3, "{:?}", t.answers);
    assert_eq!(balanced, 30);
}
