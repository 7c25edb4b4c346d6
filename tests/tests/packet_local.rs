//! Packet tests of backends on the LB node itself (stacked control planes): the
//! XDP program hands their packets to the local stack (NAT: destination rewritten,
//! client kept; DSR: untouched), and the TC egress companion turns their replies
//! back into the VIP's. The backend address is put on the test namespace's loopback,
//! so the data plane finds it local exactly as the agent would on a node.

use lb_agent::dataplane::{ClientFlow, Forwarding, Protocol, ServiceSpec};
use lb_common::Counter;
use tests::{
    harness::{
        CLIENT_MAC, Case, Expect, LB_MAC, PacketLab, Plan, TC_ACT_OK, XDP_PASS, XDP_TX,
        backend_index, service, v4, v6,
    },
    packet::{ACK, Frame, SYN},
};

/// Makes `addr` an address of the lab's node (on `lo`).
fn make_local(lab: &PacketLab, addr: std::net::IpAddr) {
    let prefix = if addr.is_ipv4() { 32 } else { 128 };
    lab.ns
        .ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", "lo"])
        .expect("add a local address");
}

/// A service whose only backend is the plan's first one.
fn only_first(
    plan: &Plan,
    name: &str,
    port: u16,
    protocol: Protocol,
    f: Forwarding,
) -> ServiceSpec {
    let mut s = service(plan, name, port, protocol, f);
    s.backends.truncate(1);
    s
}

#[test]
fn local_nat_backends_get_the_packets_and_their_replies_leave_as_the_vip() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    make_local(&lab, p4.backends[0]);
    make_local(&lab, p6.backends[0]);
    lab.apply(&[
        only_first(&p4, "nat-v4", 80, Protocol::Tcp, Forwarding::Nat),
        only_first(&p6, "nat-v6", 80, Protocol::Tcp, Forwarding::Nat),
        only_first(&p4, "udp-v4", 53, Protocol::Udp, Forwarding::Nat),
    ]);
    let local = lab.dp.local_backends().clone();
    assert!(
        local.contains(&p4.backends[0]) && local.contains(&p6.backends[0]),
        "{local:?}"
    );
    for (plan, protocol, port) in [
        (p4, Protocol::Tcp, 80),
        (p6, Protocol::Tcp, 80),
        (p4, Protocol::Udp, 53),
    ] {
        let b = plan.backends[0];
        let (first, later, reply, back) = match protocol {
            Protocol::Tcp => (
                Frame::tcp(plan.client, 40000, plan.vip, port)
                    .flags(SYN)
                    .payload(b"hello"),
                Frame::tcp(plan.client, 40000, plan.vip, port)
                    .flags(ACK)
                    .seq(2)
                    .ack(2),
                Frame::tcp(b, 8080, plan.client, 40000)
                    .flags(SYN | ACK)
                    .ack(2),
                Frame::tcp(plan.vip, port, plan.client, 40000)
                    .flags(SYN | ACK)
                    .ack(2),
            ),
            Protocol::Udp => (
                Frame::udp(plan.client, 40000, plan.vip, port).payload(b"query"),
                Frame::udp(plan.client, 40000, plan.vip, port).payload(b"again"),
                Frame::udp(b, 8080, plan.client, 40000).payload(b"answer"),
                Frame::udp(plan.vip, port, plan.client, 40000).payload(b"answer"),
            ),
        };
        // In: only the destination changes (address and port); the client stays,
        // and the frame goes up the local stack (its MACs are the LB's already).
        let retarget = |f: &Frame| f.clone().dst(b, 8080);
        lab.check(&Case::new(
            format!("{protocol:?} to local backend {b}"),
            first.build(),
            XDP_PASS,
            Expect::Frame(retarget(&first).build()),
        ));
        lab.check(&Case::new(
            format!("{protocol:?} established, local backend {b}"),
            later.build(),
            XDP_PASS,
            Expect::Frame(retarget(&later).build()),
        ));
        // Out: the backend's reply leaves as the VIP's, checksums right.
        lab.check_egress(&Case::new(
            format!("{protocol:?} reply of local backend {b}"),
            reply.macs(LB_MAC, CLIENT_MAC).build(),
            TC_ACT_OK,
            Expect::Frame(back.macs(LB_MAC, CLIENT_MAC).build()),
        ));
    }
    // The node's own traffic from the same address, not a reply of a VIP flow,
    // leaves untouched; so does traffic from other addresses.
    for (name, frame) in [
        (
            "another connection of the local backend's address",
            Frame::tcp(p4.backends[0], 22, p4.client, 50000).flags(ACK),
        ),
        (
            "traffic from the LB's own address",
            Frame::tcp(p4.lb, 8080, p4.client, 40000).flags(ACK),
        ),
    ] {
        lab.check_egress(&Case::new(
            name,
            frame.macs(LB_MAC, CLIENT_MAC).build(),
            TC_ACT_OK,
            Expect::Unchanged,
        ));
    }
    lab.assert_counters(&[(Counter::FwdToLocal, 6), (Counter::TcLocalReply, 3)]);
    let slot = lab
        .dp
        .backend_slot(p4.vip, 80, Protocol::Tcp, p4.backends[0], 8080)
        .expect("backend slot");
    let t = lab.dp.backend_traffic(slot).expect("backend counters");
    assert_eq!((t.packets, t.new_flows), (2, 1), "{t:?}");
}

#[test]
fn a_local_dsr_backend_gets_the_packet_untouched() {
    let mut lab = PacketLab::new();
    for plan in [v4(), v6()] {
        make_local(&lab, plan.backends[0]);
    }
    lab.apply(&[
        only_first(&v4(), "dsr-v4", 81, Protocol::Tcp, Forwarding::Dsr),
        only_first(&v6(), "dsr-v6", 81, Protocol::Tcp, Forwarding::Dsr),
    ]);
    for plan in [v4(), v6()] {
        for flags in [SYN, ACK] {
            lab.check(&Case::new(
                format!("DSR to local backend, flags {flags:#x}, {}", plan.vip),
                Frame::tcp(plan.client, 40001, plan.vip, 81)
                    .flags(flags)
                    .build(),
                XDP_PASS,
                Expect::Unchanged,
            ));
        }
    }
    lab.assert_counters(&[(Counter::FwdToLocal, 4)]);
}

#[test]
fn a_mixed_service_routes_remote_backends_and_passes_the_local_one() {
    let mut lab = PacketLab::new();
    let plan = v4();
    make_local(&lab, plan.backends[0]);
    lab.apply(&[service(&plan, "web", 80, Protocol::Tcp, Forwarding::Nat)]);
    let (mut local, mut remote) = (0, 0);
    for cport in 40000..40300 {
        let sim = lab
            .dp
            .which_backend(&ClientFlow {
                client: plan.client,
                client_port: cport,
                vip: plan.vip,
                port: 80,
                protocol: Protocol::Tcp,
            })
            .expect("simulate")
            .expect("a backend");
        let got = lab.run(
            &Frame::tcp(plan.client, cport, plan.vip, 80)
                .flags(SYN)
                .build(),
        );
        if backend_index(&plan, sim.backend) == 0 {
            assert_eq!(got.verdict, XDP_PASS, "port {cport} to the local backend");
            local += 1;
        } else {
            assert_eq!(got.verdict, XDP_TX, "port {cport} to a remote backend");
            remote += 1;
        }
    }
    // Maglev gives each of the three about a third.
    assert!((70..=130).contains(&local), "{local} local of 300");
    lab.assert_counters(&[
        (Counter::FwdToLocal, local),
        (Counter::FwdToBackend, remote),
    ]);
}

#[test]
fn an_address_that_becomes_local_later_is_noticed() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let spec = only_first(&plan, "web", 80, Protocol::Tcp, Forwarding::Nat);
    lab.apply(std::slice::from_ref(&spec));
    let syn = |port| {
        Frame::tcp(plan.client, port, plan.vip, 80)
            .flags(SYN)
            .build()
    };
    assert_eq!(lab.run(&syn(40000)).verdict, XDP_TX);
    assert!(
        !lab.dp
            .local_backends_changed(std::slice::from_ref(&spec))
            .expect("addresses")
    );
    make_local(&lab, plan.backends[0]);
    assert!(
        lab.dp
            .local_backends_changed(std::slice::from_ref(&spec))
            .expect("addresses")
    );
    lab.apply(std::slice::from_ref(&spec));
    assert_eq!(lab.run(&syn(40001)).verdict, XDP_PASS);
}

#[test]
fn a_dsr_vip_this_node_does_not_hold_leaves_new_flows_to_the_stack() {
    // Stacked DSR: every node is a backend with the VIP on its loopback, and the
    // holder sends it flows as to any backend. A node that does not hold the VIP
    // (VRRP backup) must not balance such a flow again.
    let mut lab = PacketLab::new();
    let plan = v4();
    let mut dsr = service(&plan, "dsr", 81, Protocol::Tcp, Forwarding::Dsr);
    lab.apply(std::slice::from_ref(&dsr));
    let syn = |port| {
        Frame::tcp(plan.client, port, plan.vip, 81)
            .flags(SYN)
            .build()
    };
    assert_eq!(lab.run(&syn(40000)).verdict, XDP_TX, "held: balanced");
    dsr.standby = true;
    lab.apply(std::slice::from_ref(&dsr));
    lab.check(&Case::new(
        "new DSR flow while standby",
        syn(40001),
        XDP_PASS,
        Expect::Unchanged,
    ));
    // A flow it balanced while holding the VIP keeps its backend (a client with a
    // stale ARP entry still reaches it through this node).
    assert_eq!(
        lab.run(&syn(40000)).verdict,
        XDP_TX,
        "established: still forwarded"
    );
    // NAT services are not affected (their packets never come here unless to us).
    let nat = service(&plan, "nat", 80, Protocol::Tcp, Forwarding::Nat);
    lab.apply(&[
        dsr.clone(),
        ServiceSpec {
            standby: true,
            ..nat
        },
    ]);
    let got = lab.run(
        &Frame::tcp(plan.client, 40002, plan.vip, 80)
            .flags(SYN)
            .build(),
    );
    assert_eq!(got.verdict, XDP_TX);
    lab.assert_counters(&[(Counter::FwdToBackend, 3), (Counter::PassStandby, 1)]);
}
