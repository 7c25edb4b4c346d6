//! The program attached in native mode to a real veth, real TCP servers behind it:
//! a client namespace, an LB namespace, three backend namespaces on one bridge.
//! Many connections to the VIP reach every backend in proportion to its weight and
//! get the right answer, in NAT and in DSR mode, over IPv4 and IPv6.
//! Needs root and the kernel's veth/bridge/XDP; fails loudly otherwise.

use std::{net::SocketAddr, time::Duration};

use lb_agent::{
    dataplane::{
        AttachMode, BackendSpec, BackendState, Capacities, Dataplane, FlowTimeouts, Forwarding,
        NoBackend, Protocol, ServiceSpec,
    },
    lab::{Host, Lan, PeerPass, TcpServer, connections, lan_v4, lan_v6},
};
use lb_common::Counter;
use tests::harness::chain;

const VIP: u8 = 10;
const LB: u8 = 1;
const CLIENT: u8 = 100;
const BACKENDS: [u8; 3] = [11, 12, 13];
const WEIGHTS: [u32; 3] = [1, 2, 3];
const CONNECTIONS: u32 = 600;

struct Lab {
    dp: Dataplane,
    _peer: PeerPass,
    _servers: Vec<TcpServer>,
    client: Host,
    _lb: Host,
    _backends: Vec<Host>,
    _lan: Lan,
}

fn lab(forwarding: Forwarding) -> Lab {
    let lan = Lan::new().expect("switch");
    let lb = lan.host("lblb", LB).expect("lb host");
    let peer = PeerPass::attach(&lan.switch, &lb.port).expect("XDP on the LB's switch port");
    let client = lan.host("lbcl", CLIENT).expect("client host");
    let backends: Vec<Host> = BACKENDS
        .iter()
        .map(|&n| lan.host("lbbe", n).expect("backend host"))
        .collect();
    let (vip4, vip6) = (lan_v4(VIP), lan_v6(VIP));
    // The LB owns the VIP on its interface (answers ARP/ND for it) and forwards.
    lb.ns
        .ip(&["addr", "add", &format!("{vip4}/32"), "dev", "eth0"])
        .expect("vip4");
    lb.ns
        .ip(&[
            "addr",
            "add",
            &format!("{vip6}/128"),
            "dev",
            "eth0",
            "nodad",
        ])
        .expect("vip6");
    lb.ns
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("forwarding");
    lb.ns
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding6");
    let mut servers = Vec::new();
    for b in &backends {
        if forwarding == Forwarding::Dsr {
            // DSR backends hold the VIP on loopback and never answer ARP for it.
            b.ns.ip(&["addr", "add", &format!("{vip4}/32"), "dev", "lo"])
                .expect("vip on lo");
            b.ns.ip(&["addr", "add", &format!("{vip6}/128"), "dev", "lo"])
                .expect("vip6 on lo");
            for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                for dev in ["all", "eth0"] {
                    b.ns.sysctl(&format!("net.ipv4.conf.{dev}.{k}"), v)
                        .expect("arp sysctl");
                }
            }
        }
        let name = format!("backend-{}", b.index);
        servers.push(
            TcpServer::spawn(&b.ns, "[::]:80".parse().expect("addr"), &name).expect("server"),
        );
    }
    // Load and attach from the LB's namespace (this test's thread lives there now).
    lb.ns.enter_current_thread().expect("enter lb");
    let caps = Capacities {
        max_vips: 4,
        max_backends: 16,
        flow_table_size: 8192,
        ..Capacities::default()
    };
    let mut dp = Dataplane::load(caps).unwrap_or_else(|e| panic!("load: {}", chain(&e)));
    let mode = dp
        .attach("eth0", AttachMode::Native)
        .unwrap_or_else(|e| panic!("attach native: {}", chain(&e)));
    assert_eq!(mode, AttachMode::Native);
    let services: Vec<ServiceSpec> = [(vip4, lan_v4(LB)), (vip6, lan_v6(LB))]
        .into_iter()
        .map(|(vip, snat)| ServiceSpec {
            name: format!("web-{vip}"),
            vip,
            port: 80,
            protocol: Protocol::Tcp,
            forwarding,
            snat: vec![snat],
            on_no_backend: NoBackend::Reset,
            standby: false,
            timeouts: FlowTimeouts::default(),
            backends: BACKENDS
                .iter()
                .zip(WEIGHTS)
                .map(|(&n, weight)| BackendSpec {
                    addr: if vip.is_ipv4() { lan_v4(n) } else { lan_v6(n) },
                    port: 0,
                    weight,
                    state: BackendState::Up,
                })
                .collect(),
        })
        .collect();
    dp.apply(&services)
        .unwrap_or_else(|e| panic!("apply: {}", chain(&e)));
    Lab {
        dp,
        _peer: peer,
        _servers: servers,
        client,
        _lb: lb,
        _backends: backends,
        _lan: lan,
    }
}

fn spread_follows_weights(forwarding: Forwarding) {
    let mut lab = lab(forwarding);
    for vip in [lan_v4(VIP), lan_v6(VIP)] {
        let tally = connections(
            &lab.client.ns,
            SocketAddr::new(vip, 80),
            CONNECTIONS,
            Duration::from_secs(3),
        )
        .expect("client");
        if tally.failures != 0 {
            let c = lab.dp.global_counters().expect("counters");
            let counters: Vec<String> = Counter::ALL
                .iter()
                .filter(|k| c.get(**k) != 0)
                .map(|k| format!("{}={}", k.label(), c.get(*k)))
                .collect();
            panic!(
                "{forwarding:?} {vip}: {} of {CONNECTIONS} connections failed, first: {:?}; \
                 LB counters: {}",
                tally.failures,
                tally.first_failure,
                counters.join(" ")
            );
        }
        let total: u32 = WEIGHTS.iter().sum();
        for (n, w) in BACKENDS.iter().zip(WEIGHTS) {
            let got = tally
                .answers
                .get(&format!("backend-{n}"))
                .copied()
                .unwrap_or(0);
            let share = got as f64 / f64::from(CONNECTIONS);
            let want = f64::from(w) / f64::from(total);
            assert!(
                (share - want).abs() < 0.07,
                "{forwarding:?} {vip}: backend {n} (weight {w}) got {got} of {CONNECTIONS} \
                 ({share:.3}, expected {want:.3}): {:?}",
                tally.answers
            );
        }
        eprintln!(
            "{forwarding:?} {vip}: {CONNECTIONS} connections in {:?}: {:?}",
            tally.elapsed, tally.answers
        );
    }
    let c = lab.dp.global_counters().expect("counters");
    // Every connection's client packets went through XDP to a backend; with NAT the
    // replies came back through it too.
    assert!(c.get(Counter::FwdToBackend) >= u64::from(CONNECTIONS) * 2 * 3);
    if forwarding == Forwarding::Nat {
        assert!(c.get(Counter::FwdNatReply) >= u64::from(CONNECTIONS) * 2 * 2);
    } else {
        assert_eq!(c.get(Counter::FwdNatReply), 0);
    }
    // The LB had no neighbour entries for the backends at first: those packets went
    // through the kernel's neighbour resolution (TC companion), none were lost.
    assert!(
        c.get(Counter::PassNoNeigh) >= 1 && c.get(Counter::TcRedirectNeigh) >= 1,
        "neighbour resolution path not exercised: {c:?}"
    );
    assert_eq!(c.get(Counter::DropFibFailed), 0);
    assert_eq!(c.get(Counter::DropNoBackend), 0);
}

#[test]
fn nat_connections_spread_by_weight() {
    spread_follows_weights(Forwarding::Nat);
}

#[test]
fn dsr_connections_spread_by_weight() {
    spread_follows_weights(Forwarding::Dsr);
}
