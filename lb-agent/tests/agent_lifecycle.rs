//! The connection lifecycle under the real agent, through one NAT VIP with one
//! backend and few NAT ports (short timeouts in the config, as the docs allow for
//! labs): churn far beyond the port range never runs out while flows end, a port
//! is taken over the moment its binding expires, and a flow idle past its lifetime
//! is chosen again cleanly, never sent with a binding another flow owns. Needs root.

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use common::{AgentLab, BACKENDS, LB, VIP, name, servers::EchoServer, traffic::Persistent};
use lb_agent::lab::{UdpServer, lan_v4};

/// The config: `[agent]` extras, then one NAT VIP to backend 11 only.
fn config(lab: &AgentLab, agent: &str, vip: &str) {
    lab.write_config(vip);
    let text = std::fs::read_to_string(&lab.config).expect("config");
    std::fs::write(
        &lab.config,
        text.replacen("[agent]\n", &format!("[agent]\n{agent}"), 1),
    )
    .expect("config");
}

fn counter(lab: &AgentLab, name: &str) -> u64 {
    lab.status()
        .counters
        .iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.value)
}

#[test]
fn udp_churn_ten_times_the_port_range_never_runs_out() {
    const PORTS: u16 = 128;
    const WAVES: u16 = 10;
    let mut lab = AgentLab::new();
    let backend = SocketAddr::new(lan_v4(BACKENDS[0]), 53);
    let server = UdpServer::spawn(&lab.backends[0].ns, backend, &name(BACKENDS[0])).expect("udp");
    config(
        &lab,
        &format!("snat_port_range = \"2000-{}\"\n", 2000 + PORTS - 1),
        &format!(
            "[[vip]]\nname = \"dns\"\naddress = \"{}\"\nport = 53\nprotocol = \"udp\"\n\
             snat_address = \"{}\"\n[vip.timeouts]\nudp = \"1s\"\nudp_replied = \"1s\"\n\
             [vip.check]\ntype = \"none\"\n[[vip.backend]]\naddress = \"{}\"\n",
            lan_v4(VIP),
            lan_v4(LB),
            lan_v4(BACKENDS[0])
        ),
    );
    lab.start();
    let log = lab.log();
    assert!(
        log.contains("capacity of VIP dns: 1 SNAT address x 128 ports"),
        "{log}"
    );
    let vip = SocketAddr::new(lan_v4(VIP), 53);
    // Each wave: as many new flows as there are ports (one datagram each, each from
    // a client port of its own), the first wave 20 more; then they go idle.
    let mut client_port = 20000u16;
    let mut sent = 0u64;
    let before = server.served();
    for wave in 0..WAVES {
        let extra = if wave == 0 { 20 } else { 0 };
        let ports: Vec<u16> = (client_port..client_port + PORTS + extra).collect();
        client_port += PORTS + extra;
        sent += ports.len() as u64;
        lab.client
            .ns
            .run(move || {
                for p in ports {
                    let s =
                        UdpSocket::bind(SocketAddr::new(lan_v4(common::CLIENT), p)).expect("bind");
                    s.send_to(b"q", vip).expect("send");
                }
            })
            .expect("client namespace");
        // Past the lifetime (1 s, whole ticks of 1.07 s, plus the tick it is noticed).
        std::thread::sleep(Duration::from_millis(2600));
    }
    let forwarded = server.served() - before;
    let refused = counter(&lab, "drop_snat_exhausted");
    eprintln!(
        "{sent} UDP flows over {WAVES} waves through {PORTS} ports: {forwarded} forwarded, \
         {refused} refused, {} ports taken over at once",
        counter(&lab, "nat_port_reused")
    );
    assert_eq!(refused, 20, "refused only beyond the capacity");
    assert_eq!(
        forwarded,
        sent - 20,
        "every flow forwarded once its predecessors expired"
    );
    assert!(counter(&lab, "nat_port_reused") > 0);
    // After the timeouts the sweep finds (almost) nothing in use.
    lab.wait_for("bindings back near zero", Duration::from_secs(15), |s| {
        s.flow_table
            .as_ref()
            .is_some_and(|f| f.sweeps > 1 && f.bindings <= 2)
    });
    let s = lab.status();
    let f = s.flow_table.expect("flow table status");
    eprintln!(
        "after the churn: {} flows, {} bindings; swept {:?} / {:?}",
        f.flows, f.bindings, f.flows_removed, f.bindings_removed
    );
    let metrics = lab.http_get("/metrics", None).1;
    assert!(
        metrics.contains("lb_nat_ports_per_backend{vip=\"dns\"} 128"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lb_flow_table_capacity 65536"),
        "{metrics}"
    );
}

#[test]
fn tcp_churn_at_the_capacitys_rate_fails_nothing() {
    const PORTS: u16 = 64;
    let mut lab = AgentLab::new();
    let _echo = EchoServer::spawn(
        &lab.backends[0].ns,
        SocketAddr::new(lan_v4(BACKENDS[0]), 7),
        &name(BACKENDS[0]),
    );
    config(
        &lab,
        &format!("snat_port_range = \"3000-{}\"\n", 3000 + PORTS - 1),
        &format!(
            "[[vip]]\nname = \"echo\"\naddress = \"{}\"\nport = 7\nsnat_address = \"{}\"\n\
             [vip.timeouts]\ntcp_closing = \"2s\"\ntcp_time_wait = \"2s\"\n\
             [vip.check]\ntype = \"tcp\"\ninterval = \"1s\"\n[[vip.backend]]\naddress = \"{}\"\n",
            lan_v4(VIP),
            lan_v4(LB),
            lan_v4(BACKENDS[0])
        ),
    );
    lab.start();
    lab.wait_for("backend up", Duration::from_secs(5), |s| {
        s.vip("echo").is_some_and(|v| v.up == 1)
    });
    // A closed flow keeps its port 2 s (2 ticks), noticed within another: about
    // 3.3 s. The client closes first (the backend closes passively, no TIME_WAIT on
    // its side), at the rate the ports allow, for several lifetimes.
    let per_s = f64::from(PORTS) / 3.4;
    let run = Duration::from_secs(12);
    let target = SocketAddr::new(lan_v4(VIP), 7);
    let (done, failures) = lab
        .client
        .ns
        .run(move || {
            use std::io::{BufRead as _, BufReader, Write as _};
            let start = Instant::now();
            let (mut done, mut failures) = (0u64, Vec::new());
            while start.elapsed() < run {
                let due = Duration::from_secs_f64(done as f64 / per_s);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                let one = || -> Result<(), String> {
                    let began = Instant::now();
                    let mut s =
                        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))
                            .map_err(|e| format!("connect: {e}"))?;
                    // A SYN the backend left unanswered (it still held the port's
                    // previous connection) shows as a retransmission a second later.
                    let took = began.elapsed();
                    if took > Duration::from_millis(900) {
                        return Err(format!("connect took {took:?}: a SYN went unanswered"));
                    }
                    s.set_read_timeout(Some(Duration::from_secs(2)))
                        .map_err(|e| e.to_string())?;
                    writeln!(s, "ping").map_err(|e| format!("write: {e}"))?;
                    let mut line = String::new();
                    BufReader::new(&s)
                        .read_line(&mut line)
                        .map_err(|e| format!("read: {e}"))?;
                    if line.trim().is_empty() {
                        return Err("no answer".into());
                    }
                    // The client closes first.
                    s.shutdown(std::net::Shutdown::Both)
                        .map_err(|e| e.to_string())
                };
                if let Err(e) = one() {
                    failures.push(e);
                }
                done += 1;
            }
            (done, failures)
        })
        .expect("client namespace");
    let reused = counter(&lab, "nat_port_reused");
    eprintln!(
        "{done} TCP connections in {run:?} at {per_s:.1}/s through {PORTS} ports: {} failed, \
         {reused} ports taken over at once",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(done > u64::from(PORTS) * 2, "only {done} connections");
    assert_eq!(counter(&lab, "drop_snat_exhausted"), 0);
    assert!(reused > 0, "the ports were reused");
}

#[test]
fn an_idle_flow_past_its_lifetime_is_chosen_again_never_sent_stale() {
    let mut lab = AgentLab::new();
    let _echo = EchoServer::spawn(
        &lab.backends[0].ns,
        SocketAddr::new(lan_v4(BACKENDS[0]), 7),
        &name(BACKENDS[0]),
    );
    // One NAT port: whoever holds it, nobody else gets it.
    config(
        &lab,
        "snat_port_range = \"4000-4000\"\n",
        &format!(
            "[[vip]]\nname = \"echo\"\naddress = \"{}\"\nport = 7\nsnat_address = \"{}\"\n\
             [vip.timeouts]\ntcp_established = \"3s\"\n\
             [vip.check]\ntype = \"tcp\"\ninterval = \"1s\"\n[[vip.backend]]\naddress = \"{}\"\n",
            lan_v4(VIP),
            lan_v4(LB),
            lan_v4(BACKENDS[0])
        ),
    );
    lab.start();
    lab.wait_for("backend up", Duration::from_secs(5), |s| {
        s.vip("echo").is_some_and(|v| v.up == 1)
    });
    let target = SocketAddr::new(lan_v4(VIP), 7);
    let mut a = Persistent::open(&lab.client.ns, target, 1);
    assert_eq!(a.ping(), vec![Ok(name(BACKENDS[0]))]);
    // Idle below its lifetime: it simply goes on.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.ping(), vec![Ok(name(BACKENDS[0]))]);
    assert_eq!(counter(&lab, "flow_expired"), 0);
    // Idle past it: its next packet finds the flow expired and chooses again; its
    // own binding (expired, still its own) comes back, and the connection goes on.
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(a.ping(), vec![Ok(name(BACKENDS[0]))]);
    // Counted as expired, or, when the sweep removed the entry first, as a flow the
    // table did not hold.
    assert_eq!(
        counter(&lab, "flow_expired") + counter(&lab, "flow_midstream"),
        1
    );
    // Idle past it again, and meanwhile another connection takes the only port:
    // the first is refused (its packets dropped), not sent with the second's port.
    std::thread::sleep(Duration::from_millis(5500));
    let mut b = Persistent::open(&lab.client.ns, target, 1);
    assert_eq!(b.ping(), vec![Ok(name(BACKENDS[0]))]);
    assert!(counter(&lab, "nat_port_reused") >= 1);
    let stale = a.ping();
    assert!(stale[0].is_err(), "the stale flow got through: {stale:?}");
    assert!(counter(&lab, "drop_snat_exhausted") >= 1);
    assert_eq!(
        b.ping(),
        vec![Ok(name(BACKENDS[0]))],
        "the port's owner is untouched"
    );
}
