//! The XDP program's rare events in the agent's log (aya-log): a NAT VIP whose
//! backend's ports are all held drops new flows (`drop_snat_exhausted`), and the
//! program says so in the agent's log, naming the backend, at most once a second
//! per CPU while the counter counts every drop. `[agent] dataplane_log = false`
//! applied by a reload silences it at once. Needs root.

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use common::{AgentLab, BACKENDS, CLIENT, LB, VIP, eventually::eventually_or, name};
use lb_agent::lab::{UdpServer, lan_v4};

const PORTS: u16 = 4;

fn config(lab: &AgentLab, dataplane_log: bool) {
    lab.write_config(&format!(
        "[[vip]]\nname = \"dns\"\naddress = \"{}\"\nport = 53\nprotocol = \"udp\"\n\
         snat_address = \"{}\"\n[vip.check]\ntype = \"none\"\n[[vip.backend]]\naddress = \"{}\"\n",
        lan_v4(VIP),
        lan_v4(LB),
        lan_v4(BACKENDS[0])
    ));
    let text = std::fs::read_to_string(&lab.config).expect("config");
    let agent = format!(
        "[agent]\nsnat_port_range = \"3000-{}\"\ndataplane_log = {dataplane_log}\n",
        3000 + PORTS - 1
    );
    std::fs::write(&lab.config, text.replacen("[agent]\n", &agent, 1)).expect("config");
}

fn exhausted(lab: &AgentLab) -> u64 {
    lab.status()
        .counters
        .iter()
        .find(|c| c.name == "drop_snat_exhausted")
        .map_or(0, |c| c.value)
}

/// New UDP flows to the VIP, one datagram each from client ports `ports`.
fn flows(lab: &AgentLab, ports: std::ops::Range<u16>) {
    let vip = SocketAddr::new(lan_v4(VIP), 53);
    lab.client
        .ns
        .run(move || {
            for p in ports {
                let s = UdpSocket::bind(SocketAddr::new(lan_v4(CLIENT), p)).expect("bind");
                s.send_to(b"q", vip).expect("send");
            }
        })
        .expect("client namespace");
}

const LINE: &str = "drop_snat_exhausted: no free NAT port to backend 198.18.1.11:53 (VIP slot 0)";

#[test]
fn the_program_logs_exhausted_nat_ports_until_a_reload_turns_it_off() {
    let mut lab = AgentLab::new();
    let backend = SocketAddr::new(lan_v4(BACKENDS[0]), 53);
    let _server = UdpServer::spawn(&lab.backends[0].ns, backend, &name(BACKENDS[0])).expect("udp");
    config(&lab, true);
    lab.start();
    assert_eq!(lan_v4(BACKENDS[0]).to_string(), "198.18.1.11");

    // Every port held (UDP flows live 30 s), then 40 more flows: all dropped.
    flows(&lab, 40000..40000 + PORTS);
    flows(&lab, 41000..41040);
    eventually_or(
        "the program's line in the agent's log",
        Duration::from_secs(5),
        || lab.log().contains(LINE),
        || lab.log(),
    );
    let dropped = exhausted(&lab);
    assert_eq!(dropped, 40, "every flow beyond the ports is dropped");
    let log = lab.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(LINE)).collect();
    assert!(
        lines
            .iter()
            .all(|l| l.contains("WARN") && l.contains("lb_ebpf")),
        "{lines:#?}"
    );
    // Rate limited: 40 drops within a moment are at most one line per CPU.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        lines.len() <= cpus,
        "{} lines for 40 drops on {cpus} CPUs",
        lines.len()
    );

    // Off by a reload: the drops go on, counted, and nothing more is logged.
    config(&lab, false);
    lab.sighup();
    eventually_or(
        "the reload applied",
        Duration::from_secs(5),
        || lab.log().contains("reload: applied"),
        || lab.log(),
    );
    // Past the rate limit's second, so only the switch can keep the program quiet.
    std::thread::sleep(Duration::from_millis(1100));
    let logged = lab.log().matches(LINE).count();
    flows(&lab, 42000..42040);
    eventually_or(
        "the new drops counted",
        Duration::from_secs(5),
        || exhausted(&lab) == dropped + 40,
        || format!("{} dropped\n{}", exhausted(&lab), lab.log()),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.log().matches(LINE).count(),
        logged,
        "a line after dataplane_log = false:\n{}",
        lab.log()
    );

    // And back on.
    config(&lab, true);
    lab.sighup();
    eventually_or(
        "the second reload applied",
        Duration::from_secs(5),
        || lab.log().matches("reload: applied").count() == 2,
        || lab.log(),
    );
    flows(&lab, 43000..43040);
    eventually_or(
        "the program's line again",
        Duration::from_secs(5),
        || lab.log().matches(LINE).count() > logged,
        || lab.log(),
    );
}
