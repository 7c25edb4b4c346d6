//! Reload applies a changed config whole: adding and removing backends breaks no
//! connection except those on the removed backend, new connections reach the added
//! one at once, `drain` keeps a backend's flows, and an invalid config is rejected
//! with its errors while the running one stays. Needs root.

mod common;

use std::{fs, net::SocketAddr, time::Duration};

use common::{
    AgentLab, BACKENDS, LB, VIP, name,
    servers::EchoServer,
    traffic::{Persistent, Stream},
};
use lb_agent::lab::{TcpServer, lan_v4};

/// Two VIPs over the given backends (by host index).
fn config(banner: &[u8], echo: &[u8]) -> String {
    let mut out = String::new();
    for (vip, port, backends) in [("banner", 80, banner), ("echo", 81, echo)] {
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             [vip.check]\ninterval = \"300ms\"\n",
            lan_v4(VIP),
            lan_v4(LB)
        ));
        for b in backends {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(*b)));
        }
    }
    out
}

#[test]
fn reload_breaks_only_the_removed_backends_connections() {
    let mut lab = AgentLab::new();
    lab.write_config(&config(&[11, 12], &[11, 12]));
    let _servers: Vec<(TcpServer, EchoServer)> = (0..3)
        .map(|i| {
            let (ns, ip, n) = (&lab.backends[i].ns, lan_v4(BACKENDS[i]), name(BACKENDS[i]));
            (
                TcpServer::spawn(ns, SocketAddr::new(ip, 80), &n).expect("banner"),
                EchoServer::spawn(ns, SocketAddr::new(ip, 81), &n),
            )
        })
        .collect();
    lab.start();
    lab.wait_for("up", Duration::from_secs(5), |s| {
        s.vips.iter().all(|v| v.up == 2)
    });
    let mut long = Persistent::open(&lab.client.ns, SocketAddr::new(lan_v4(VIP), 81), 60);
    let before: Vec<String> = long.ping().into_iter().map(|r| r.expect("ping")).collect();
    assert!(before.iter().any(|b| *b == name(11)) && before.iter().any(|b| *b == name(12)));
    let stream = Stream::start(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        Duration::from_millis(2),
    );
    std::thread::sleep(Duration::from_millis(300));

    // Echo: 11 removed, 13 added. Banner: 13 added.
    lab.write_config(&config(&[11, 12, 13], &[12, 13]));
    let out = lab.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("applied: 2 services, 5 backends"), "{msg}");
    // (`reload` answers once the maps are written; the status follows.)
    lab.wait_for("the status shows the reload", Duration::from_secs(5), |s| {
        s.vip("banner").map(|v| v.total) == Some(3) && s.last_reload.as_ref().is_some_and(|r| r.ok)
    });

    let after = long.ping();
    for (was, now) in before.iter().zip(&after) {
        if *was == name(12) {
            assert_eq!(
                now.as_deref(),
                Ok(name(12).as_str()),
                "a connection on a kept backend broke"
            );
        } else {
            assert!(
                now.is_err(),
                "a connection on the removed backend survived: {now:?}"
            );
        }
    }
    let s = lab.status();
    assert_eq!(s.vip("banner").map(|v| v.total), Some(3));
    assert!(s.last_reload.as_ref().is_some_and(|r| r.ok));

    // The control socket is root's only.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            common::AGENT,
            "drain",
            "echo",
            "198.18.1.12",
            "--config",
        ])
        .arg(&lab.config)
        .output()
        .expect("setpriv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");

    // An invalid config is rejected whole; the running config stays.
    let good = fs::read_to_string(&lab.config).expect("config");
    fs::write(
        &lab.config,
        format!("{good}\n[[vip.backend]]\naddress = \"198.18.1.14\"\nwieght = 2\n"),
    )
    .expect("config");
    let out = lab.cli(&["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = format!(
        "lb.toml:{}: vip[1].backend[2].wieght: unknown field",
        good.lines().count() + 4
    );
    assert!(err.contains(&line), "expected {line:?} in: {err}");
    let s = lab.status();
    assert_eq!(s.vip("echo").map(|v| v.total), Some(2));
    assert!(s.last_reload.as_ref().is_some_and(|r| !r.ok));
    fs::write(&lab.config, &good).expect("config");

    // Drain through the CLI: the backend keeps its flows and gets no new ones.
    let out = lab.cli(&["drain", "echo", "198.18.1.12"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = long.ping();
    for (was, now) in before.iter().zip(&kept) {
        if *was == name(12) {
            assert_eq!(
                now.as_deref(),
                Ok(name(12).as_str()),
                "drain broke a connection"
            );
        }
    }
    let fresh: Vec<String> = Persistent::open(&lab.client.ns, SocketAddr::new(lan_v4(VIP), 81), 20)
        .ping()
        .into_iter()
        .map(|r| r.expect("new connection while draining"))
        .collect();
    assert!(fresh.iter().all(|b| *b == name(13)), "{fresh:?}");
    let out = lab.cli(&["enable", "echo", "198.18.1.12"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = stream.stop();
    eprintln!(
        "new connections through a reload, a rejected reload, drain and enable: {:?}",
        seen.answers
    );
    assert!(
        seen.failures.is_empty(),
        "{} failed, first: {:?}",
        seen.failures.len(),
        seen.failures.first()
    );
    assert!(
        seen.answers.get(&name(13)).copied().unwrap_or(0) > 10,
        "the added backend got no new connections: {:?}",
        seen.answers
    );

    // SIGHUP reloads too (after the stream: removing banner's backend 13 may break
    // a connection in flight to it, which is allowed).
    lab.write_config(&config(&[11, 12], &[12, 13]));
    lab.sighup();
    lab.wait_for("SIGHUP reload", Duration::from_secs(3), |s| {
        s.vip("banner").is_some_and(|v| v.total == 2)
    });
}
