//! A stock host: the LB node's namespace starts with the kernel's defaults
//! (forwarding off), as Debian and Ubuntu ship. The agent turns on per-interface
//! forwarding itself and says so; told not to, it refuses to start naming the
//! sysctl; and `/ready`, `lb-agent status` and `lb_dataplane_ready` say when the
//! data plane cannot forward (a sysctl turned off under it, route lookups failing
//! with nothing forwarded). Needs root.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{AgentLab, BACKENDS, LB, VIP, eventually::eventually_some_or, name};
use lb_agent::lab::{TcpServer, connections, lan_v4};

fn config() -> String {
    let backends: String = BACKENDS
        .iter()
        .map(|b| format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(*b)))
        .collect();
    format!(
        "[[vip]]\nname = \"web\"\naddress = \"{}\"\nport = 80\nsnat_address = \"{}\"\n\
         [vip.check]\ntype = \"none\"\n{backends}",
        lan_v4(VIP),
        lan_v4(LB)
    )
}

fn sysctl(lab: &AgentLab, key: &str) -> String {
    lab.lb
        .ns
        .exec(&["sysctl", "-n", key])
        .expect("sysctl")
        .trim()
        .to_string()
}

/// Polls `/ready` until its code is `code`; returns the body.
fn ready_becomes(lab: &AgentLab, code: u16, limit: Duration) -> String {
    eventually_some_or(
        &format!("/ready answers {code}"),
        limit,
        || {
            let (c, body) = lab.http_get("/ready", None);
            (c == code).then_some(body)
        },
        || format!("/ready: {:?}", lab.http_get("/ready", None)),
    )
    .0
}

#[test]
fn a_stock_host_is_made_to_forward_and_readiness_follows_the_data_plane() {
    let mut lab = AgentLab::new();
    let _servers: Vec<TcpServer> = BACKENDS
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            TcpServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(b), 80),
                &name(b),
            )
            .expect("server")
        })
        .collect();
    assert_eq!(
        sysctl(&lab, "net.ipv4.conf.eth0.forwarding"),
        "0",
        "a stock namespace"
    );

    // Told not to touch sysctls, the agent refuses to start and names the one.
    lab.write_config(&format!("{}\n{}", config(), ""));
    let text = std::fs::read_to_string(&lab.config).expect("config");
    std::fs::write(
        &lab.config,
        text.replacen("[agent]\n", "[agent]\nmanage_forwarding = false\n", 1),
    )
    .expect("config");
    let log = lab.start_refused();
    assert!(
        log.contains("sysctl net.ipv4.conf.eth0.forwarding"),
        "{log}"
    );
    assert!(log.contains("manage_forwarding"), "{log}");
    assert!(!lab.pins.join("maps").exists(), "nothing was loaded");

    // By default it turns forwarding on for eth0 (nothing host-wide), and says so.
    lab.write_config(&config());
    lab.start();
    let log = lab.log();
    assert!(
        log.contains("sysctl net.ipv4.conf.eth0.forwarding = 1 (was 0"),
        "{log}"
    );
    assert_eq!(sysctl(&lab, "net.ipv4.conf.eth0.forwarding"), "1");
    assert_eq!(sysctl(&lab, "net.ipv4.conf.all.forwarding"), "0");
    let t = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        30,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    ready_becomes(&lab, 200, Duration::from_secs(3));

    // Someone turns it off: not ready, with the reason, in status and metrics.
    lab.lb
        .ns
        .sysctl("net.ipv4.conf.eth0.forwarding", "0")
        .expect("sysctl");
    let body = ready_becomes(&lab, 503, Duration::from_secs(3));
    assert!(
        body.contains("net.ipv4.conf.eth0.forwarding is 0"),
        "{body}"
    );
    let s = lab.status();
    assert!(
        s.dataplane_problems
            .iter()
            .any(|p| p.contains("net.ipv4.conf.eth0.forwarding")),
        "{:?}",
        s.dataplane_problems
    );
    assert!(
        lab.http_get("/metrics", None)
            .1
            .contains("lb_dataplane_ready 0")
    );
    let out = lab.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("net.ipv4.conf.eth0.forwarding is 0"),
        "{text}"
    );
    lab.lb
        .ns
        .sysctl("net.ipv4.conf.eth0.forwarding", "1")
        .expect("sysctl");
    ready_becomes(&lab, 200, Duration::from_secs(3));
    assert!(
        lab.http_get("/metrics", None)
            .1
            .contains("lb_dataplane_ready 1")
    );

    // Every route to the backends gone (blackholed): lookups fail, nothing is
    // forwarded, and /ready says so while clients keep trying.
    for b in BACKENDS {
        lab.lb
            .ns
            .ip(&["route", "add", "blackhole", &format!("{}/32", lan_v4(b))])
            .expect("blackhole route");
    }
    let client = {
        let ns = lab.client.ns.entry().expect("netns");
        std::thread::spawn(move || {
            ns.enter().expect("enter");
            for _ in 0..40 {
                let _ = lb_agent::lab::answer(
                    SocketAddr::new(lan_v4(VIP), 80),
                    Duration::from_millis(100),
                );
            }
        })
    };
    let body = ready_becomes(&lab, 503, Duration::from_secs(4));
    assert!(body.contains("route lookups are failing"), "{body}");
    client.join().expect("client");
}
