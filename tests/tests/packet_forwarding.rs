//! Packet tests of the forwarding paths: the compiled XDP program, run by the kernel
//! through BPF_PROG_TEST_RUN in a namespace with real routes and neighbours.
//! Needs root (CI runs it as root); fails loudly otherwise.

use lb_agent::dataplane::{BackendState, ClientFlow, Forwarding, Protocol};
use lb_common::{Counter, FlowKey, hash::flow_hash, maglev, maps::addr::to_words};
use tests::{
    harness::{
        CLIENT_MAC, Case, Expect, LB_MAC, PacketLab, Plan, XDP_TX, backend_index, backend_mac,
        service, v4, v6,
    },
    packet::{ACK, Frame, SYN, ipv6_opts_ext},
};

/// The backend (index in the plan) the program will give this flow.
fn chosen(
    lab: &mut PacketLab,
    plan: &Plan,
    cport: u16,
    port: u16,
    protocol: Protocol,
) -> (usize, bool) {
    let sim = lab
        .dp
        .which_backend(&ClientFlow {
            client: plan.client,
            client_port: cport,
            vip: plan.vip,
            port,
            protocol,
        })
        .expect("simulate")
        .expect("a backend");
    (backend_index(plan, sim.backend), sim.pinned)
}

/// `want`: the backend (index in the plan) this flow must get, a literal recorded from
/// the program (golden, as Katran's fixtures have). Checks that the agent's simulation
/// agrees and returns it for the expected frame, which the program's output must
/// match: a change of the flow hash, the Maglev seeds or the ring fails the test
/// instead of moving the expectation along with it. The NAT source ports next to these
/// calls are golden in the same way (the program's first pick for the flow).
fn golden(
    lab: &mut PacketLab,
    plan: &Plan,
    cport: u16,
    port: u16,
    protocol: Protocol,
    want: usize,
) -> usize {
    let (b, _) = chosen(lab, plan, cport, port, protocol);
    assert_eq!(
        b, want,
        "{}:{cport} -> :{port} {protocol:?}: the simulation picks backend {b}, the golden value is {want}",
        plan.vip
    );
    want
}

#[test]
fn syn_to_vip_in_nat_and_dsr_mode_v4_and_v6() {
    let mut lab = PacketLab::new();
    let mut services = Vec::new();
    for (plan, fam) in [(v4(), "v4"), (v6(), "v6")] {
        services.push(service(
            &plan,
            &format!("nat-{fam}"),
            80,
            Protocol::Tcp,
            Forwarding::Nat,
        ));
        services.push(service(
            &plan,
            &format!("dsr-{fam}"),
            81,
            Protocol::Tcp,
            Forwarding::Dsr,
        ));
        services.push(service(
            &plan,
            &format!("udp-{fam}"),
            53,
            Protocol::Udp,
            Forwarding::Nat,
        ));
    }
    lab.apply(&services);
    // Golden (backend, NAT port) of the NAT flow, backend of the DSR flow, (backend,
    // NAT port) of the UDP flow.
    for (plan, (nat_b, nat_port), dsr_b, (udp_b, udp_port)) in [
        (v4(), (0, 6976), 0, (2, 15344)),
        (v6(), (1, 13816), 1, (1, 5417)),
    ] {
        // NAT: destination becomes the backend, source the LB address and a NAT port.
        assert!(!chosen(&mut lab, &plan, 40000, 80, Protocol::Tcp).1);
        let b = golden(&mut lab, &plan, 40000, 80, Protocol::Tcp, nat_b);
        let sport = nat_port;
        lab.check(&Case::new(
            format!("NAT SYN {}", plan.vip),
            Frame::tcp(plan.client, 40000, plan.vip, 80)
                .flags(SYN)
                .payload(b"hello")
                .build(),
            XDP_TX,
            Expect::Frame(
                Frame::tcp(plan.lb, sport, plan.backends[b], 8080)
                    .flags(SYN)
                    .payload(b"hello")
                    .macs(LB_MAC, backend_mac(b))
                    .build(),
            ),
        ));
        assert_eq!(chosen(&mut lab, &plan, 40000, 80, Protocol::Tcp), (b, true));

        // DSR: only the MACs change.
        let b = golden(&mut lab, &plan, 40001, 81, Protocol::Tcp, dsr_b);
        let input = Frame::tcp(plan.client, 40001, plan.vip, 81).flags(SYN);
        lab.check(&Case::new(
            format!("DSR SYN {}", plan.vip),
            input.build(),
            XDP_TX,
            Expect::Frame(input.macs(LB_MAC, backend_mac(b)).build()),
        ));

        // UDP, NAT.
        let b = golden(&mut lab, &plan, 5353, 53, Protocol::Udp, udp_b);
        let sport = udp_port;
        lab.check(&Case::new(
            format!("NAT UDP {}", plan.vip),
            Frame::udp(plan.client, 5353, plan.vip, 53)
                .payload(b"query")
                .build(),
            XDP_TX,
            Expect::Frame(
                Frame::udp(plan.lb, sport, plan.backends[b], 8080)
                    .payload(b"query")
                    .macs(LB_MAC, backend_mac(b))
                    .build(),
            ),
        ));
    }
    lab.assert_counters(&[(Counter::FwdToBackend, 6)]);
    let nat4 = lab
        .dp
        .service_slot(v4().vip, 80, Protocol::Tcp)
        .expect("slot of nat-v4");
    let t = lab.dp.vip_traffic(nat4).expect("vip counters");
    assert_eq!((t.packets, t.new_flows), (1, 1), "nat-v4 traffic {t:?}");
}

#[test]
fn nat_replies_are_translated_back_to_the_client() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "nat-v4", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p6, "nat-v6", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p4, "udp-v4", 53, Protocol::Udp, Forwarding::Nat),
    ]);
    // With golden backends and NAT ports.
    for (plan, protocol, port, b, sport) in [
        (p4, Protocol::Tcp, 80, 0, 6976),
        (p6, Protocol::Tcp, 80, 1, 13816),
        (p4, Protocol::Udp, 53, 1, 26224),
    ] {
        let b = golden(&mut lab, &plan, 40000, port, protocol, b);
        let syn = match protocol {
            Protocol::Tcp => Frame::tcp(plan.client, 40000, plan.vip, port).flags(SYN),
            Protocol::Udp => Frame::udp(plan.client, 40000, plan.vip, port),
        };
        assert_eq!(lab.run(&syn.build()).verdict, XDP_TX);
        let (reply, back) = match protocol {
            Protocol::Tcp => (
                Frame::tcp(plan.backends[b], 8080, plan.lb, sport)
                    .flags(SYN | ACK)
                    .ack(2),
                Frame::tcp(plan.vip, port, plan.client, 40000)
                    .flags(SYN | ACK)
                    .ack(2),
            ),
            Protocol::Udp => (
                Frame::udp(plan.backends[b], 8080, plan.lb, sport).payload(b"answer"),
                Frame::udp(plan.vip, port, plan.client, 40000).payload(b"answer"),
            ),
        };
        lab.check(&Case::new(
            format!("{protocol:?} reply from {}", plan.backends[b]),
            reply.macs(backend_mac(b), LB_MAC).build(),
            XDP_TX,
            Expect::Frame(back.macs(LB_MAC, CLIENT_MAC).build()),
        ));
    }
    // The LB's own traffic to its address (health checks) is not a NAT reply.
    let own = Case::new(
        "LB's own connection",
        Frame::tcp(p4.backends[0], 8080, p4.lb, 45000)
            .flags(SYN | ACK)
            .macs(backend_mac(0), LB_MAC)
            .build(),
        tests::harness::XDP_PASS,
        Expect::Unchanged,
    );
    lab.check(&own);
    lab.assert_counters(&[
        (Counter::FwdToBackend, 3),
        (Counter::FwdNatReply, 3),
        (Counter::PassNatNoEntry, 1),
    ]);
}

#[test]
fn established_flows_keep_their_backend_when_the_set_changes() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let mut two = service(&plan, "web", 80, Protocol::Tcp, Forwarding::Dsr);
    two.backends.truncate(2);
    lab.apply(&[two]);
    let ports: Vec<u16> = (40000..40200).collect();
    let mut before = Vec::new();
    for &p in &ports {
        let (b, _) = chosen(&mut lab, &plan, p, 80, Protocol::Tcp);
        assert!(b < 2);
        assert_eq!(
            lab.run(&Frame::tcp(plan.client, p, plan.vip, 80).flags(SYN).build())
                .verdict,
            XDP_TX
        );
        before.push(b);
    }
    let three = service(&plan, "web", 80, Protocol::Tcp, Forwarding::Dsr);
    lab.apply(std::slice::from_ref(&three));
    // Independently of the program: which flows would the new ring move? (The ring's
    // keys are "address:port" of each backend as configured: port 0 for DSR.)
    let names: Vec<String> = three
        .backends
        .iter()
        .map(|b| format!("{}:{}", b.addr, b.port))
        .collect();
    let members: Vec<maglev::MaglevBackend<'_>> = names
        .iter()
        .map(|n| maglev::MaglevBackend {
            key: n.as_bytes(),
            weight: 1,
        })
        .collect();
    let ring = maglev::build(&members, lab.dp.capacities().ring_size).expect("ring");
    let mut moved_by_ring = 0;
    for (&p, &b) in ports.iter().zip(&before) {
        let key = FlowKey {
            src: to_words(plan.client).0,
            dst: to_words(plan.vip).0,
            sport: p.to_be(),
            dport: 80u16.to_be(),
            proto: 6,
            family: lb_common::FAMILY_V4,
            _pad: [0; 2],
        };
        let fresh = ring[(flow_hash(&key) % ring.len() as u32) as usize] as usize;
        if fresh != b {
            moved_by_ring += 1;
        }
        // The established flow stays where it was.
        let input = Frame::tcp(plan.client, p, plan.vip, 80).flags(ACK).ack(2);
        lab.check(&Case::new(
            format!("established flow {p} after adding a backend"),
            input.build(),
            XDP_TX,
            Expect::Frame(input.macs(LB_MAC, backend_mac(b)).build()),
        ));
    }
    // Golden: about a third of 200 flows, exactly this many with today's hash and ring.
    assert_eq!(
        moved_by_ring, 69,
        "the new ring should move about a third of 200 flows, moved {moved_by_ring}"
    );
    // New flows do reach the new backend.
    let newcomers = (41000..41100)
        .filter(|&p| chosen(&mut lab, &plan, p, 80, Protocol::Tcp).0 == 2)
        .count();
    // Golden, as above (about a third).
    assert_eq!(
        newcomers, 38,
        "{newcomers} of 100 new flows would go to the new backend"
    );
    lab.assert_counters(&[(Counter::FwdToBackend, 400)]);
}

#[test]
fn drain_keeps_flows_and_down_moves_them() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let mut spec = service(&plan, "web", 80, Protocol::Tcp, Forwarding::Dsr);
    lab.apply(&[spec.clone()]);
    let mut flows = Vec::new();
    for p in 40000..40090u16 {
        let (b, _) = chosen(&mut lab, &plan, p, 80, Protocol::Tcp);
        assert_eq!(
            lab.run(&Frame::tcp(plan.client, p, plan.vip, 80).flags(SYN).build())
                .verdict,
            XDP_TX
        );
        flows.push((p, b));
    }
    let victim = 1;
    let on_victim: Vec<u16> = flows
        .iter()
        .filter(|f| f.1 == victim)
        .map(|f| f.0)
        .collect();
    // Golden: about a third of 90 flows.
    assert_eq!(
        on_victim.len(),
        36,
        "{} flows on the victim",
        on_victim.len()
    );

    // Drain: its flows stay, new flows avoid it.
    spec.backends[victim].state = BackendState::Drain;
    lab.apply(&[spec.clone()]);
    for &p in &on_victim {
        let input = Frame::tcp(plan.client, p, plan.vip, 80).flags(ACK);
        lab.check(&Case::new(
            format!("draining backend keeps flow {p}"),
            input.build(),
            XDP_TX,
            Expect::Frame(input.macs(LB_MAC, backend_mac(victim)).build()),
        ));
    }
    for p in 50000..50100u16 {
        let out = lab.run(&Frame::tcp(plan.client, p, plan.vip, 80).flags(SYN).build());
        assert_eq!(out.verdict, XDP_TX);
        assert_ne!(
            out.frame[..6],
            backend_mac(victim),
            "new flow {p} went to the draining backend"
        );
    }

    // Down: its flows move at once, new flows avoid it.
    spec.backends[victim].state = BackendState::Down;
    lab.apply(&[spec]);
    for &p in &on_victim {
        let out = lab.run(&Frame::tcp(plan.client, p, plan.vip, 80).flags(ACK).build());
        assert_eq!(out.verdict, XDP_TX);
        assert_ne!(
            out.frame[..6],
            backend_mac(victim),
            "flow {p} stayed on a down backend"
        );
        assert!(
            chosen(&mut lab, &plan, p, 80, Protocol::Tcp).1,
            "flow {p} re-pinned"
        );
    }
    let total = 90 + on_victim.len() as u64 * 2 + 100;
    lab.assert_counters(&[
        (Counter::FwdToBackend, total),
        (Counter::FlowRehashed, on_victim.len() as u64),
    ]);
}

#[test]
fn ipv4_options_vlan_tags_and_ipv6_extension_headers() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "nat-v4", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p4, "dsr-v4", 81, Protocol::Tcp, Forwarding::Dsr),
        service(&p6, "nat-v6", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p6, "dsr-v6", 81, Protocol::Tcp, Forwarding::Dsr),
    ]);
    // IPv4 options (a no-op and a timestamp-sized blob): kept, checksums fixed.
    let opts = [1u8, 1, 1, 0, 0x44, 4, 5, 0];
    let b = golden(&mut lab, &p4, 40000, 80, Protocol::Tcp, 0);
    let sport = 6976;
    lab.check(&Case::new(
        "NAT SYN with IPv4 options",
        Frame::tcp(p4.client, 40000, p4.vip, 80)
            .flags(SYN)
            .ipv4_options(&opts)
            .build(),
        XDP_TX,
        Expect::Frame(
            Frame::tcp(p4.lb, sport, p4.backends[b], 8080)
                .flags(SYN)
                .ipv4_options(&opts)
                .macs(LB_MAC, backend_mac(b))
                .build(),
        ),
    ));
    // One 802.1Q tag: kept on the way out.
    let b = golden(&mut lab, &p4, 40001, 81, Protocol::Tcp, 0);
    let tagged = Frame::tcp(p4.client, 40001, p4.vip, 81).flags(SYN).vlan(42);
    lab.check(&Case::new(
        "DSR SYN with a VLAN tag",
        tagged.build(),
        XDP_TX,
        Expect::Frame(tagged.macs(LB_MAC, backend_mac(b)).build()),
    ));
    // IPv6 hop-by-hop and destination options are walked.
    let b = golden(&mut lab, &p6, 40002, 81, Protocol::Tcp, 2);
    let ext = Frame::tcp(p6.client, 40002, p6.vip, 81)
        .flags(SYN)
        .ipv6_ext(0, &ipv6_opts_ext())
        .ipv6_ext(60, &ipv6_opts_ext());
    lab.check(&Case::new(
        "DSR SYN over IPv6 with hop-by-hop and destination options",
        ext.build(),
        XDP_TX,
        Expect::Frame(ext.macs(LB_MAC, backend_mac(b)).build()),
    ));
    let b = golden(&mut lab, &p6, 40003, 80, Protocol::Tcp, 1);
    let sport = 21114;
    lab.check(&Case::new(
        "NAT SYN over IPv6 with destination options",
        Frame::tcp(p6.client, 40003, p6.vip, 80)
            .flags(SYN)
            .ipv6_ext(60, &ipv6_opts_ext())
            .build(),
        XDP_TX,
        Expect::Frame(
            Frame::tcp(p6.lb, sport, p6.backends[b], 8080)
                .flags(SYN)
                .ipv6_ext(60, &ipv6_opts_ext())
                .macs(LB_MAC, backend_mac(b))
                .build(),
        ),
    ));
    lab.assert_counters(&[(Counter::FwdToBackend, 4)]);
}

#[test]
fn any_port_vip_keeps_the_destination_port() {
    let mut lab = PacketLab::new();
    let plan = v4();
    lab.apply(&[service(&plan, "any", 0, Protocol::Tcp, Forwarding::Nat)]);
    // Golden backends and NAT ports.
    for (port, b, sport) in [(22u16, 0, 25453), (4444, 0, 11255), (65535, 2, 9380)] {
        let b = golden(&mut lab, &plan, 40000, port, Protocol::Tcp, b);
        lab.check(&Case::new(
            format!("any-port VIP, port {port}"),
            Frame::tcp(plan.client, 40000, plan.vip, port)
                .flags(SYN)
                .build(),
            XDP_TX,
            Expect::Frame(
                Frame::tcp(plan.lb, sport, plan.backends[b], port)
                    .flags(SYN)
                    .macs(LB_MAC, backend_mac(b))
                    .build(),
            ),
        ));
    }
    lab.assert_counters(&[(Counter::FwdToBackend, 3)]);
}

#[test]
fn service_changes_reach_established_flows() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let web = service(&plan, "web", 80, Protocol::Tcp, Forwarding::Nat);
    let other = service(&plan, "other", 443, Protocol::Tcp, Forwarding::Nat);
    lab.apply(&[web.clone(), other.clone()]);
    let syn = Frame::tcp(plan.client, 40000, plan.vip, 80)
        .flags(SYN)
        .build();
    assert_eq!(lab.run(&syn).verdict, XDP_TX);

    // NAT -> DSR: the established flow is forwarded DSR-style from its next packet on.
    let mut dsr = web.clone();
    dsr.forwarding = Forwarding::Dsr;
    for b in &mut dsr.backends {
        b.port = 0;
    }
    lab.apply(&[dsr, other.clone()]);
    let b = golden(&mut lab, &plan, 40000, 80, Protocol::Tcp, 2);
    let ack = Frame::tcp(plan.client, 40000, plan.vip, 80).flags(ACK);
    lab.check(&Case::new(
        "established flow after NAT -> DSR",
        ack.build(),
        XDP_TX,
        Expect::Frame(ack.clone().macs(LB_MAC, backend_mac(b)).build()),
    ));

    // The service goes while the VIP address stays (port 443): its flows stop at once.
    lab.apply(&[other]);
    lab.check(&Case::new(
        "established flow of a removed service",
        ack.build(),
        tests::harness::XDP_PASS,
        Expect::Unchanged,
    ));
    lab.assert_counters(&[
        (Counter::FwdToBackend, 2),
        (Counter::FlowRehashed, 2),
        (Counter::PassNoService, 1),
    ]);
}

#[test]
fn an_invalid_service_set_changes_nothing() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let web = service(&plan, "web", 80, Protocol::Tcp, Forwarding::Dsr);
    lab.apply(std::slice::from_ref(&web));
    let b = golden(&mut lab, &plan, 40000, 80, Protocol::Tcp, 2);
    // A valid change (drop a backend) bundled with an invalid service: all refused.
    let mut smaller = web.clone();
    smaller.backends.truncate(1);
    let mut broken = service(&plan, "broken", 81, Protocol::Tcp, Forwarding::Nat);
    broken.snat = Vec::new();
    let err = lab
        .dp
        .apply(&[smaller, broken])
        .expect_err("a NAT service without a SNAT address must be refused");
    assert!(err.to_string().contains("broken"), "{err}");
    assert_eq!(chosen(&mut lab, &plan, 40000, 80, Protocol::Tcp).0, b);
    let syn = Frame::tcp(plan.client, 40000, plan.vip, 80).flags(SYN);
    lab.check(&Case::new(
        "after a refused change",
        syn.build(),
        XDP_TX,
        Expect::Frame(syn.macs(LB_MAC, backend_mac(b)).build()),
    ));
    lab.check(&Case::new(
        "the refused service does not exist",
        Frame::tcp(plan.client, 40000, plan.vip, 81)
            .flags(SYN)
            .build(),
        tests::harness::XDP_PASS,
        Expect::Unchanged,
    ));
}

#[test]
fn a_backend_behind_another_interface_is_reached_by_redirect() {
    let mut lab = PacketLab::new();
    let plan = v4();
    lab.apply(&[service(&plan, "web", 80, Protocol::Tcp, Forwarding::Dsr)]);
    // The packet arrives on peer0; the route to the backends leaves through lb0.
    let peer0 = lab.ns.ifindex("peer0").expect("peer0 ifindex");
    let b = golden(&mut lab, &plan, 40000, 80, Protocol::Tcp, 2);
    let syn = Frame::tcp(plan.client, 40000, plan.vip, 80).flags(SYN);
    let out = lab.run_on(peer0, &syn.build());
    assert_eq!(
        out.verdict,
        tests::harness::XDP_REDIRECT,
        "{}",
        tests::harness::verdict_name(out.verdict)
    );
    assert_eq!(out.frame, syn.macs(LB_MAC, backend_mac(b)).build());
    lab.assert_counters(&[(Counter::FwdToBackend, 1)]);
}
