//! Packet tests of the connection lifecycle: every state a flow and its NAT binding
//! pass through, with the lifetime each state gives them; expiry; a port taken over
//! the moment its binding expired; a flow past its lifetime chosen cleanly again,
//! never forwarded with a stale binding.
//!
//! Time: the program reads the kernel's coarse clock; the tests move the entries'
//! clocks back instead (`Dataplane::age_flows`), as if that long had passed without a
//! packet. No test-only branch in the program.

use std::time::Duration;

use lb_agent::dataplane::{
    Capacities, FlowTimeouts, Forwarding, Protocol, ServiceSpec, Sweeper, state_name, ticks,
};
use lb_common::{Counter, FlowEntry, FlowKey, NAT_RECLAIM_TICKS, NatEntry, maps::addr::to_words};
use tests::{
    harness::{LB_MAC, PacketLab, Plan, XDP_DROP, XDP_PASS, XDP_TX, backend_mac, service, v4, v6},
    packet::{ACK, Frame, SYN, decode},
};

const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// One NAT service whose only backend is the plan's first, with short, distinct
/// lifetimes (whole ticks apart) so each state's can be told from the others.
fn nat_service(plan: &Plan, protocol: Protocol, port: u16) -> ServiceSpec {
    let mut s = service(plan, "life", port, protocol, Forwarding::Nat);
    s.backends.truncate(1);
    s.timeouts = timeouts();
    s
}

fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp_syn: Duration::from_secs(3),
        tcp_established: Duration::from_secs(100),
        tcp_closing: Duration::from_secs(6),
        tcp_time_wait: Duration::from_secs(12),
        tcp_reset: Duration::from_secs(2),
        udp: Duration::from_secs(5),
        udp_replied: Duration::from_secs(20),
    }
}

fn lab(ports: std::ops::RangeInclusive<u16>) -> PacketLab {
    PacketLab::with_caps(Capacities {
        max_vips: 4,
        max_backends: 16,
        flow_table_size: 4096,
        snat_ports: ports,
        ..Capacities::default()
    })
}

fn client_key(plan: &Plan, cport: u16, vport: u16, proto: Protocol) -> FlowKey {
    let (src, family) = to_words(plan.client);
    FlowKey {
        src,
        dst: to_words(plan.vip).0,
        sport: cport.to_be(),
        dport: vport.to_be(),
        proto: proto.number(),
        family,
        _pad: [0; 2],
    }
}

fn flow(lab: &mut PacketLab, key: &FlowKey) -> Option<FlowEntry> {
    lab.dp
        .flows()
        .expect("flows")
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, e)| e)
}

/// The binding of the client flow `key` (by its client side).
fn binding(lab: &mut PacketLab, key: &FlowKey) -> Option<(FlowKey, NatEntry)> {
    lab.dp
        .nat_bindings()
        .expect("bindings")
        .into_iter()
        .find(|(_, b)| b.client == key.src && b.client_port == key.sport && b.vip_port == key.dport)
}

/// `(state, lifetime in ticks)` of an entry.
fn life(state: u8, seen: u32, expires: u32) -> (&'static str, u32) {
    (state_name(state), expires.wrapping_sub(seen))
}

fn t(d: Duration) -> u32 {
    ticks(d)
}

/// Sends a client packet; asserts it was forwarded; returns the NAT source port.
fn client(lab: &PacketLab, plan: &Plan, cport: u16, vport: u16, flags: u8) -> u16 {
    let out = lab.run(
        &Frame::tcp(plan.client, cport, plan.vip, vport)
            .flags(flags)
            .build(),
    );
    assert_eq!(out.verdict, XDP_TX, "client flags {flags:#x} not forwarded");
    decode(&out.frame).expect("decodes").sport.expect("port")
}

/// Sends a backend reply to NAT port `sport`; returns the verdict.
fn reply(lab: &PacketLab, plan: &Plan, sport: u16, flags: u8) -> u32 {
    lab.run(
        &Frame::tcp(plan.backends[0], 8080, plan.lb, sport)
            .flags(flags)
            .macs(backend_mac(0), LB_MAC)
            .build(),
    )
    .verdict
}

#[test]
fn tcp_states_follow_both_directions_with_their_lifetimes() {
    let to = timeouts();
    for plan in [v4(), v6()] {
        let mut lab = lab(1024..=32767);
        lab.apply(&[nat_service(&plan, Protocol::Tcp, 80)]);
        let key = client_key(&plan, 40000, 80, Protocol::Tcp);
        let flow_life = |lab: &mut PacketLab| {
            let e = flow(lab, &key).expect("flow entry");
            life(e.state, e.seen, e.expires)
        };
        let binding_life = |lab: &mut PacketLab| {
            let (_, b) = binding(lab, &key).expect("binding");
            life(b.state, b.seen, b.expires)
        };

        // SYN: both sides "syn", with the SYN lifetime.
        let port = client(&lab, &plan, 40000, 80, SYN);
        assert_eq!(flow_life(&mut lab), ("syn", t(to.tcp_syn)), "{}", plan.vip);
        assert_eq!(binding_life(&mut lab), ("syn", t(to.tcp_syn)));
        // The backend's SYN-ACK: the binding is established.
        assert_eq!(reply(&lab, &plan, port, SYN | ACK), XDP_TX);
        assert_eq!(
            binding_life(&mut lab),
            ("established", t(to.tcp_established))
        );
        // The client's ACK: the flow too.
        assert_eq!(client(&lab, &plan, 40000, 80, ACK), port);
        assert_eq!(flow_life(&mut lab), ("established", t(to.tcp_established)));
        // The client closes first: both "closing" (the backend closes passively).
        assert_eq!(client(&lab, &plan, 40000, 80, FIN | ACK), port);
        assert_eq!(flow_life(&mut lab), ("closing", t(to.tcp_closing)));
        assert_eq!(binding_life(&mut lab), ("closing", t(to.tcp_closing)));
        // The backend's FIN after: still the client's close.
        assert_eq!(reply(&lab, &plan, port, FIN | ACK), XDP_TX);
        assert_eq!(binding_life(&mut lab), ("closing", t(to.tcp_closing)));

        // Another connection the backend closes first: its binding keeps the port
        // for the backend's TIME_WAIT.
        let key2 = client_key(&plan, 40001, 80, Protocol::Tcp);
        let port2 = client(&lab, &plan, 40001, 80, SYN);
        assert_eq!(reply(&lab, &plan, port2, SYN | ACK), XDP_TX);
        assert_eq!(client(&lab, &plan, 40001, 80, ACK), port2);
        assert_eq!(reply(&lab, &plan, port2, FIN | ACK), XDP_TX);
        let (_, b) = binding(&mut lab, &key2).expect("binding");
        assert_eq!(
            life(b.state, b.seen, b.expires),
            ("time_wait", t(to.tcp_time_wait))
        );
        assert_eq!(client(&lab, &plan, 40001, 80, FIN | ACK), port2);
        let (_, b) = binding(&mut lab, &key2).expect("binding");
        assert_eq!(
            life(b.state, b.seen, b.expires),
            ("time_wait", t(to.tcp_time_wait))
        );

        // A reset from either side: "reset", seconds.
        let key3 = client_key(&plan, 40002, 80, Protocol::Tcp);
        let port3 = client(&lab, &plan, 40002, 80, SYN);
        assert_eq!(reply(&lab, &plan, port3, RST | ACK), XDP_TX);
        let (_, b) = binding(&mut lab, &key3).expect("binding");
        assert_eq!(life(b.state, b.seen, b.expires), ("reset", t(to.tcp_reset)));
        assert_eq!(client(&lab, &plan, 40002, 80, RST), port3);
        let e = flow(&mut lab, &key3).expect("flow");
        assert_eq!(life(e.state, e.seen, e.expires), ("reset", t(to.tcp_reset)));
    }
}

#[test]
fn udp_is_one_way_until_the_backend_replies() {
    let to = timeouts();
    let plan = v4();
    let mut lab = lab(1024..=32767);
    lab.apply(&[nat_service(&plan, Protocol::Udp, 53)]);
    let key = client_key(&plan, 5353, 53, Protocol::Udp);
    let out = lab.run(
        &Frame::udp(plan.client, 5353, plan.vip, 53)
            .payload(b"q")
            .build(),
    );
    assert_eq!(out.verdict, XDP_TX);
    let port = decode(&out.frame).expect("decodes").sport.expect("port");
    let e = flow(&mut lab, &key).expect("flow");
    assert_eq!(life(e.state, e.seen, e.expires), ("udp", t(to.udp)));
    let (_, b) = binding(&mut lab, &key).expect("binding");
    assert_eq!(life(b.state, b.seen, b.expires), ("udp", t(to.udp)));
    let answer = Frame::udp(plan.backends[0], 8080, plan.lb, port)
        .payload(b"a")
        .macs(backend_mac(0), LB_MAC)
        .build();
    assert_eq!(lab.run(&answer).verdict, XDP_TX);
    let (_, b) = binding(&mut lab, &key).expect("binding");
    assert_eq!(
        life(b.state, b.seen, b.expires),
        ("udp_replied", t(to.udp_replied))
    );
}

#[test]
fn an_expired_flow_is_chosen_again_and_counted() {
    let plan = v4();
    let mut lab = lab(1024..=32767);
    lab.apply(&[nat_service(&plan, Protocol::Tcp, 80)]);
    let port = client(&lab, &plan, 40000, 80, SYN);
    assert_eq!(reply(&lab, &plan, port, SYN | ACK), XDP_TX);
    assert_eq!(client(&lab, &plan, 40000, 80, ACK), port);
    // Idle below its lifetime: still the same flow and binding.
    lab.dp.age_flows(t(Duration::from_secs(90))).expect("age");
    assert_eq!(client(&lab, &plan, 40000, 80, ACK), port);
    lab.assert_counters(&[(Counter::FwdToBackend, 3), (Counter::FwdNatReply, 1)]);
    // Idle past it: the flow is chosen again (counted), with a binding of its own.
    lab.dp.age_flows(t(Duration::from_secs(101))).expect("age");
    let again = client(&lab, &plan, 40000, 80, ACK);
    assert_eq!(lab.counter(Counter::FlowExpired), 1);
    // Its old binding expired too, and is still this client's: the flow gets it
    // back, renewed (no other flow's binding was taken).
    assert_eq!(
        again, port,
        "the flow's own expired binding is its first choice"
    );
    assert_eq!(lab.counter(Counter::NatPortReused), 0);
    // A reply through the renewed binding is translated for the flow.
    assert_eq!(reply(&lab, &plan, port, ACK), XDP_TX);
}

#[test]
fn an_expired_binding_is_taken_over_at_once_and_never_used_stale() {
    // One NAT port for one backend: a second flow is refused while the first lives,
    // and gets the port the moment the first's binding expires.
    let plan = v4();
    let mut lab = lab(2000..=2000);
    lab.apply(&[nat_service(&plan, Protocol::Udp, 53)]);
    let send = |lab: &PacketLab, cport: u16| {
        lab.run(
            &Frame::udp(plan.client, cport, plan.vip, 53)
                .payload(b"q")
                .build(),
        )
    };
    let a = send(&lab, 5000);
    assert_eq!(a.verdict, XDP_TX);
    assert_eq!(decode(&a.frame).expect("decodes").sport, Some(2000));
    assert_eq!(send(&lab, 5001).verdict, XDP_DROP, "the only port is taken");
    lab.dp.age_flows(t(Duration::from_secs(6))).expect("age");
    let b = send(&lab, 5001);
    assert_eq!(b.verdict, XDP_TX, "the expired binding is taken over");
    assert_eq!(decode(&b.frame).expect("decodes").sport, Some(2000));
    // The first flow comes back: its entry expired, it is chosen again, and finds
    // its port taken by a live flow: refused, not sent with the stale binding.
    assert_eq!(send(&lab, 5000).verdict, XDP_DROP);
    lab.assert_counters(&[
        (Counter::FwdToBackend, 2),
        (Counter::DropSnatExhausted, 2),
        (Counter::FlowExpired, 1),
        (Counter::NatPortReused, 1),
    ]);
    // The port's binding is the second flow's.
    let (_, owner) = lab
        .dp
        .nat_bindings()
        .expect("bindings")
        .into_iter()
        .next()
        .expect("one");
    assert_eq!(u16::from_be(owner.client_port), 5001);
}

#[test]
fn the_sweep_removes_expired_flows_at_once_and_bindings_only_past_their_reclaim_window() {
    // One NAT port: whether a claim gets it says who holds the binding.
    let plan = v4();
    let mut lab = lab(2000..=2000);
    lab.apply(&[nat_service(&plan, Protocol::Udp, 53)]);
    let send = |lab: &PacketLab, cport: u16| {
        lab.run(
            &Frame::udp(plan.client, cport, plan.vip, 53)
                .payload(b"q")
                .build(),
        )
        .verdict
    };
    let mut sweeper = Sweeper::of(&lab.dp, u64::MAX).expect("sweeper");
    assert_eq!(send(&lab, 5000), XDP_TX);
    let live = sweeper.pass().expect("sweep");
    assert_eq!((live.flows.entries(), live.bindings.entries()), (1, 1));
    assert_eq!(live.in_use.values().sum::<u64>(), 1);
    // Expired: the flow entry goes at once; the binding stays (its port free).
    lab.dp.age_flows(t(Duration::from_secs(6))).expect("age");
    let pass = sweeper.pass().expect("sweep");
    assert_eq!(pass.flows.removed.iter().sum::<u64>(), 1);
    assert_eq!(pass.bindings.removed.iter().sum::<u64>(), 0);
    assert_eq!((pass.bindings.entries(), pass.bindings.expired), (0, 1));
    assert!(lab.dp.flows().expect("flows").is_empty());
    // Within the window the program takes it over.
    assert_eq!(send(&lab, 5001), XDP_TX);
    assert_eq!(lab.counter(Counter::NatPortReused), 1);
    // Past the window the program leaves it alone (refused: the only port is the
    // sweep's to delete) ...
    lab.dp
        .age_flows(NAT_RECLAIM_TICKS + 2 + t(Duration::from_secs(5)))
        .expect("age");
    assert_eq!(send(&lab, 5002), XDP_DROP);
    assert_eq!(lab.counter(Counter::DropSnatExhausted), 1);
    // ... and the sweep deletes it, after which a claim gets the port afresh.
    let pass = sweeper.pass().expect("sweep");
    assert_eq!(pass.bindings.removed.iter().sum::<u64>(), 1);
    assert!(lab.dp.nat_bindings().expect("bindings").is_empty());
    assert_eq!(send(&lab, 5003), XDP_TX);
    lab.assert_counters(&[
        (Counter::NatPortReused, 1),
        (Counter::FwdToBackend, 3),
        (Counter::DropSnatExhausted, 1),
    ]);
}

#[test]
fn the_port_range_fills_to_its_last_port_and_is_reused_whole() {
    // As many concurrent flows as ports: every one gets a port, the next is
    // refused; once they expired, as many new flows take all of them over.
    const PORTS: u16 = 256;
    let plan = v4();
    let mut lab = lab(3000..=3000 + PORTS - 1);
    lab.apply(&[nat_service(&plan, Protocol::Udp, 53)]);
    let wave = |lab: &PacketLab, first: u16| -> (std::collections::BTreeSet<u16>, u32) {
        let (mut ports, mut refused) = (std::collections::BTreeSet::new(), 0);
        for cport in first..first + PORTS {
            let out = lab.run(
                &Frame::udp(plan.client, cport, plan.vip, 53)
                    .payload(b"q")
                    .build(),
            );
            match out.verdict {
                XDP_TX => {
                    ports.insert(decode(&out.frame).expect("decodes").sport.expect("port"));
                }
                _ => refused += 1,
            }
        }
        (ports, refused)
    };
    let (ports, refused) = wave(&lab, 10000);
    assert_eq!((ports.len(), refused), (usize::from(PORTS), 0));
    assert_eq!(
        lab.run(
            &Frame::udp(plan.client, 9999, plan.vip, 53)
                .payload(b"q")
                .build()
        )
        .verdict,
        XDP_DROP,
        "one flow more than ports"
    );
    lab.dp.age_flows(t(Duration::from_secs(6))).expect("age");
    let (again, refused) = wave(&lab, 20000);
    assert_eq!((again.len(), refused), (usize::from(PORTS), 0));
    lab.assert_counters(&[
        (Counter::FwdToBackend, 2 * u64::from(PORTS)),
        (Counter::DropSnatExhausted, 1),
        (Counter::NatPortReused, u64::from(PORTS)),
    ]);
}

#[test]
fn several_snat_addresses_each_add_a_port_range() {
    // Two addresses of 4 ports each: 8 concurrent flows, every (address, port)
    // used once; the 9th refused; a reply to either address is translated back.
    for plan in [v4(), v6()] {
        let second: std::net::IpAddr = match plan.lb {
            std::net::IpAddr::V4(_) => "198.18.0.2".parse().expect("address"),
            std::net::IpAddr::V6(_) => "fd00:1b::2".parse().expect("address"),
        };
        let mut lab = lab(4000..=4003);
        let mut svc = nat_service(&plan, Protocol::Udp, 53);
        svc.snat = vec![plan.lb, second];
        lab.apply(&[svc]);
        let send = |lab: &PacketLab, cport: u16| {
            lab.run(
                &Frame::udp(plan.client, cport, plan.vip, 53)
                    .payload(b"q")
                    .build(),
            )
        };
        let mut used = std::collections::BTreeSet::new();
        for cport in 5000..5008 {
            let out = send(&lab, cport);
            assert_eq!(out.verdict, XDP_TX, "flow {cport}");
            let d = decode(&out.frame).expect("decodes");
            used.insert((d.src, d.sport.expect("port")));
        }
        assert_eq!(used.len(), 8, "{used:?}");
        assert_eq!(
            used.iter().filter(|(a, _)| *a == second).count(),
            4,
            "{used:?}"
        );
        assert_eq!(send(&lab, 5008).verdict, XDP_DROP, "9 flows, 8 ports");
        for (addr, port) in [used.first(), used.last()].into_iter().flatten() {
            let answer = Frame::udp(plan.backends[0], 8080, *addr, *port)
                .payload(b"a")
                .macs(backend_mac(0), LB_MAC)
                .build();
            let out = lab.run(&answer);
            assert_eq!(out.verdict, XDP_TX, "reply to {addr}:{port}");
            let d = decode(&out.frame).expect("decodes");
            assert_eq!((d.src, d.dst), (plan.vip, plan.client));
        }
    }
}

#[test]
fn a_tcp_packet_of_a_flow_the_table_lost_is_counted_and_forwarded() {
    let plan = v4();
    let mut lab = lab(1024..=32767);
    lab.apply(&[nat_service(&plan, Protocol::Tcp, 80)]);
    // No SYN seen: the flow's entry was lost (or it began through another node).
    let port = client(&lab, &plan, 40000, 80, ACK);
    assert_eq!(lab.counter(Counter::FlowMidstream), 1);
    let e = flow(&mut lab, &client_key(&plan, 40000, 80, Protocol::Tcp)).expect("flow");
    assert_eq!(state_name(e.state), "established");
    // Its next packets find the flow; a new connection's SYN is not counted.
    assert_eq!(client(&lab, &plan, 40000, 80, ACK), port);
    client(&lab, &plan, 40001, 80, SYN);
    assert_eq!(lab.counter(Counter::FlowMidstream), 1);
}

#[test]
fn a_syn_reusing_a_closed_flow_starts_a_new_one() {
    let plan = v4();
    let mut lab = lab(1024..=32767);
    lab.apply(&[nat_service(&plan, Protocol::Tcp, 80)]);
    let key = client_key(&plan, 40000, 80, Protocol::Tcp);
    let port = client(&lab, &plan, 40000, 80, SYN);
    assert_eq!(client(&lab, &plan, 40000, 80, RST), port);
    // The client reuses its port: a new connection, chosen afresh.
    client(&lab, &plan, 40000, 80, SYN);
    assert_eq!(lab.counter(Counter::FlowExpired), 1);
    let e = flow(&mut lab, &key).expect("flow");
    assert_eq!(state_name(e.state), "syn");
}

#[test]
fn a_reply_to_an_expired_binding_is_not_translated() {
    let plan = v4();
    let mut lab = lab(1024..=32767);
    lab.apply(&[nat_service(&plan, Protocol::Tcp, 80)]);
    let port = client(&lab, &plan, 40000, 80, SYN);
    lab.dp.age_flows(t(Duration::from_secs(4))).expect("age");
    assert_eq!(reply(&lab, &plan, port, SYN | ACK), XDP_PASS);
    assert_eq!(lab.counter(Counter::PassNatExpired), 1);
}

#[test]
fn dsr_flows_move_on_the_clients_packets() {
    let to = timeouts();
    let plan = v4();
    let mut lab = lab(1024..=32767);
    let mut dsr = service(&plan, "dsr", 81, Protocol::Tcp, Forwarding::Dsr);
    dsr.timeouts = to;
    lab.apply(&[dsr]);
    let key = client_key(&plan, 40000, 81, Protocol::Tcp);
    let send = |lab: &PacketLab, flags| {
        lab.run(
            &Frame::tcp(plan.client, 40000, plan.vip, 81)
                .flags(flags)
                .build(),
        )
        .verdict
    };
    for (flags, state, lifetime) in [
        (SYN, "syn", to.tcp_syn),
        (ACK, "established", to.tcp_established),
        (FIN | ACK, "closing", to.tcp_closing),
    ] {
        assert_eq!(send(&lab, flags), XDP_TX);
        let e = flow(&mut lab, &key).expect("flow");
        assert_eq!(life(e.state, e.seen, e.expires), (state, t(lifetime)));
    }
    // DSR has no binding: nothing holds a port.
    assert!(lab.dp.nat_bindings().expect("bindings").is_empty());
}
