//! Restarts lose nothing: under a steady stream of new connections and with
//! long-lived connections open, the agent is killed with `kill -9`, inspected while
//! down (the CLI reads the pinned maps), started again, stopped with SIGTERM and
//! started again. Not one connection fails, long-lived ones stay on their backend,
//! and health resumes from the maps instead of flapping. Needs root.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{
    AgentLab, BACKENDS, LB, VIP, name,
    servers::EchoServer,
    traffic::{Persistent, Stream},
};
use lb_agent::lab::{TcpServer, lan_v4};

fn config() -> String {
    let mut out = String::new();
    for (vip, port) in [("banner", 80), ("echo", 81)] {
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             [vip.check]\ninterval = \"300ms\"\nfall = 2\nrise = 2\n",
            lan_v4(VIP),
            lan_v4(LB)
        ));
        for b in BACKENDS {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
        }
    }
    out
}

#[test]
fn kill_9_sigterm_and_restarts_fail_no_connection() {
    let mut lab = AgentLab::new();
    lab.write_config(&config());
    // Backend 13 has no banner server: its health is down before and after restarts.
    let _banners: Vec<TcpServer> = (0..2)
        .map(|i| {
            TcpServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(BACKENDS[i]), 80),
                &name(BACKENDS[i]),
            )
            .expect("banner")
        })
        .collect();
    let _echo: Vec<EchoServer> = (0..3)
        .map(|i| {
            EchoServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(BACKENDS[i]), 81),
                &name(BACKENDS[i]),
            )
        })
        .collect();
    lab.start();
    lab.wait_for("health settled", Duration::from_secs(5), |s| {
        s.vip("banner").is_some_and(|v| v.up == 2) && s.vip("echo").is_some_and(|v| v.up == 3)
    });
    // A second agent for the same config is refused before it touches anything.
    let second = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.lb.ns.name()))
        .arg(common::AGENT)
        .args(["run", "--config"])
        .arg(&lab.config)
        .output()
        .expect("second agent");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another agent runs with this config"), "{err}");
    let first_log = lab.log().len();
    let mut long = Persistent::open(&lab.client.ns, SocketAddr::new(lan_v4(VIP), 81), 30);
    let before: Vec<String> = long
        .ping()
        .into_iter()
        .map(|r| r.expect("long-lived connection"))
        .collect();
    let stream = Stream::start(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        Duration::from_millis(2),
    );
    std::thread::sleep(Duration::from_millis(500));

    lab.kill9();
    std::thread::sleep(Duration::from_millis(300));
    // Down, and still inspectable: the CLI reads the pinned maps.
    let s = lab.status();
    assert_eq!(s.source, "pinned maps");
    let banner = s.vip("banner").expect("banner VIP from the maps");
    assert_eq!(banner.up, 2, "{banner:?}");
    assert!(banner.traffic.new_flows > 0, "{banner:?}");
    let flows = lab.cli(&["flows", "--vip", "echo", "--json"]);
    assert!(
        flows.status.success(),
        "{}",
        String::from_utf8_lossy(&flows.stderr)
    );
    let flows: serde_json::Value = serde_json::from_slice(&flows.stdout).expect("flows JSON");
    assert_eq!(flows["matched"], 30, "{flows}");
    std::thread::sleep(Duration::from_millis(700));

    lab.start();
    assert!(
        lab.log()[first_log..].contains("adopted the maps pinned under"),
        "{}",
        lab.log()
    );
    assert!(
        lab.log()[first_log..].contains("replaced atomically"),
        "{}",
        lab.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    lab.terminate();
    std::thread::sleep(Duration::from_millis(500));
    lab.start();
    std::thread::sleep(Duration::from_secs(1));

    let seen = stream.stop();
    eprintln!(
        "through kill -9, SIGTERM and two restarts: {:?}, {} failed",
        seen.answers,
        seen.failures.len()
    );
    assert!(
        seen.failures.is_empty(),
        "{} failed, first: {:?}",
        seen.failures.len(),
        seen.failures.first()
    );
    assert!(seen.ok() > 300, "{seen:?}");
    assert!(!seen.answers.contains_key(&name(13)), "{seen:?}");
    let after: Vec<String> = long
        .ping()
        .into_iter()
        .map(|r| r.expect("long-lived connection after restarts"))
        .collect();
    assert_eq!(before, after, "long-lived connections moved");
    // Health resumed from the maps: no backend flapped after the first start.
    let later = &lab.log()[first_log..];
    assert!(
        !later.contains(" DOWN: ") && !later.contains(" UP: "),
        "{later}"
    );
    let s = lab.status();
    assert_eq!(s.source, "daemon");
    assert!(s.adopted);
    assert_eq!(s.vip("banner").map(|v| v.up), Some(2));
}
