//! Packet tests of everything that is not a plain forward: traffic that is not ours,
//! malformed and truncated packets, fragments, no healthy backend, ICMP errors, an
//! unresolved next hop and NAT port exhaustion. Needs root; fails loudly otherwise.

use std::{collections::HashSet, net::IpAddr};

use lb_agent::dataplane::{BackendState, Capacities, ClientFlow, Forwarding, NoBackend, Protocol};
use lb_common::{Counter, NEIGH_META_MAGIC, maps::addr::to_words};
use tests::{
    harness::{
        Case, Expect, LB_MAC, PacketLab, Plan, XDP_DROP, XDP_PASS, XDP_TX, backend_index,
        backend_mac, ip, service, v4, v6,
    },
    packet::{
        ACK, Frame, RST, SYN, arp_request, icmp_echo, icmp4_frag_needed, icmp6_packet_too_big,
        ip_part, ipv6_frag_ext,
    },
};

fn unchanged(name: &str, input: Vec<u8>) -> Case {
    Case::new(name, input, XDP_PASS, Expect::Unchanged)
}

#[test]
fn traffic_that_is_not_for_a_vip_passes_untouched() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "web4", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p6, "web6", 80, Protocol::Tcp, Forwarding::Dsr),
    ]);
    let other4 = ip("198.18.0.50");
    let other6 = ip("fd00:1b::50");
    let cases = [
        unchanged(
            "IPv4 TCP to another host",
            Frame::tcp(p4.client, 1, other4, 80).build(),
        ),
        unchanged(
            "IPv6 TCP to another host",
            Frame::tcp(p6.client, 1, other6, 80).build(),
        ),
        unchanged(
            "IPv4 UDP to another host, VLAN tagged",
            Frame::udp(p4.client, 1, other4, 80).vlan(7).build(),
        ),
        unchanged(
            "ARP",
            arp_request(
                "198.18.0.100".parse().expect("v4"),
                "198.18.0.10".parse().expect("v4"),
            ),
        ),
        unchanged("ping to the VIP", icmp_echo(p4.client, p4.vip)),
        unchanged("ping6 to the VIP", icmp_echo(p6.client, p6.vip)),
        unchanged(
            "TCP to a VIP port with no service",
            Frame::tcp(p4.client, 1, p4.vip, 22).build(),
        ),
        unchanged(
            "UDP to a TCP-only VIP port",
            Frame::udp(p4.client, 1, p4.vip, 80).build(),
        ),
        unchanged("GRE to the VIP", Frame::raw(p4.client, p4.vip, 47).build()),
    ];
    for c in &cases {
        lab.check(c);
    }
    lab.assert_counters(&[
        (Counter::PassNotVip, 3),
        (Counter::PassNotIp, 1),
        (Counter::PassIcmpLocal, 2),
        (Counter::PassNoService, 3),
    ]);
}

#[test]
fn truncated_and_malformed_headers_pass_to_the_kernel_without_state() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "web4", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p6, "web6", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p4, "dns4", 53, Protocol::Udp, Forwarding::Nat),
    ]);
    let syn4 = Frame::tcp(p4.client, 40000, p4.vip, 80).flags(SYN).build();
    let syn6 = Frame::tcp(p6.client, 40000, p6.vip, 80).flags(SYN).build();
    let udp4 = Frame::udp(p4.client, 40000, p4.vip, 53).build();
    let tagged = Frame::tcp(p4.client, 40000, p4.vip, 80)
        .flags(SYN)
        .vlan(3)
        .build();
    let mut bad_ihl = syn4.clone();
    bad_ihl[14] = 0x44; // IHL 4 (< 5 words)
    let mut bad_version = syn4.clone();
    bad_version[14] = 0x65;
    let mut too_long = syn4.clone();
    too_long[16..18].copy_from_slice(&200u16.to_be_bytes()); // total length > frame
    let cases = [
        // BPF_PROG_TEST_RUN (like every driver) refuses frames under 14 bytes, so the
        // shortest Ethernet case is a header with nothing behind it.
        unchanged("Ethernet header only, IPv4 ethertype", syn4[..14].to_vec()),
        unchanged("VLAN tag cut", tagged[..16].to_vec()),
        unchanged("IPv4 header cut at 10 bytes", syn4[..24].to_vec()),
        unchanged("IPv6 header cut at 30 bytes", syn6[..44].to_vec()),
        unchanged("IPv4 IHL below 5", bad_ihl),
        unchanged("IPv4 version field 6", bad_version),
        unchanged("IPv4 total length beyond the frame", too_long),
        unchanged(
            "TCP header cut at 10 bytes (v4)",
            syn4[..14 + 20 + 10].to_vec(),
        ),
        unchanged(
            "TCP header cut at 19 bytes (v6)",
            syn6[..14 + 40 + 19].to_vec(),
        ),
        unchanged("UDP header cut at 6 bytes", udp4[..14 + 20 + 6].to_vec()),
    ];
    for mut c in cases {
        // Frames cut inside the IP header keep a total length that no longer fits:
        // either way they must pass untouched.
        c.name = format!("{} ({} bytes)", c.name, c.input.len());
        lab.check(&c);
    }
    // Nothing was bound: no flow for the client.
    let pinned = lab
        .dp
        .which_backend(&ClientFlow {
            client: p4.client,
            client_port: 40000,
            vip: p4.vip,
            port: 80,
            protocol: Protocol::Tcp,
        })
        .expect("simulate")
        .expect("backend");
    assert!(!pinned.pinned, "a truncated packet created a flow");
    lab.assert_counters(&[(Counter::PassParseError, 10)]);
}

#[test]
fn fragments_and_unknown_extension_headers_pass() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "dns4", 53, Protocol::Udp, Forwarding::Dsr),
        service(&p6, "dns6", 53, Protocol::Udp, Forwarding::Dsr),
    ]);
    let cases = [
        unchanged(
            "IPv4 first fragment (more fragments)",
            Frame::udp(p4.client, 5353, p4.vip, 53)
                .payload(&[7; 64])
                .ipv4_fragment(true, 0)
                .build(),
        ),
        unchanged(
            "IPv4 later fragment",
            Frame::udp(p4.client, 5353, p4.vip, 53)
                .payload(&[7; 64])
                .ipv4_fragment(false, 8)
                .build(),
        ),
        unchanged(
            "IPv6 fragment header",
            Frame::udp(p6.client, 5353, p6.vip, 53)
                .ipv6_ext(44, &ipv6_frag_ext(true, 0, 9))
                .build(),
        ),
        unchanged(
            "IPv6 routing header",
            Frame::udp(p6.client, 5353, p6.vip, 53)
                .ipv6_ext(43, &[0, 0, 0, 0, 0, 0, 0, 0])
                .build(),
        ),
    ];
    for c in &cases {
        lab.check(c);
    }
    lab.assert_counters(&[(Counter::PassFragment, 3), (Counter::PassIpv6Ext, 1)]);
}

#[test]
fn no_healthy_backend_drops_or_resets() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    let down = |mut s: lb_agent::dataplane::ServiceSpec, reset: bool| {
        for b in &mut s.backends {
            b.state = BackendState::Down;
        }
        s.on_no_backend = if reset {
            NoBackend::Reset
        } else {
            NoBackend::Drop
        };
        s
    };
    lab.apply(&[
        down(
            service(&p4, "drop4", 80, Protocol::Tcp, Forwarding::Nat),
            false,
        ),
        down(
            service(&p4, "reset4", 81, Protocol::Tcp, Forwarding::Nat),
            true,
        ),
        down(
            service(&p6, "reset6", 81, Protocol::Tcp, Forwarding::Dsr),
            true,
        ),
        down(
            service(&p4, "udp4", 53, Protocol::Udp, Forwarding::Nat),
            true,
        ),
    ]);
    lab.check(&Case::new(
        "SYN, no backend, drop",
        Frame::tcp(p4.client, 40000, p4.vip, 80).flags(SYN).build(),
        XDP_DROP,
        Expect::Unchanged,
    ));
    for plan in [p4, p6] {
        // A SYN is answered RST|ACK acking SYN (seq 1 -> ack 2), sequence 0.
        let (client, vip) = (plan.client, plan.vip);
        lab.check(&Case::new(
            format!("SYN, no backend, reset ({})", plan.vip),
            Frame::tcp(client, 40000, vip, 81)
                .flags(SYN)
                .ipv4_options_if_v4(&plan)
                .build(),
            XDP_TX,
            Expect::Decoded(Box::new(move |d| {
                assert_eq!((d.src, d.dst), (vip, client));
                assert_eq!((d.sport, d.dport), (Some(81), Some(40000)));
                assert_eq!(d.tcp_flags, Some(RST | ACK));
                assert_eq!((d.seq, d.ack), (Some(0), Some(2)));
                assert_eq!((d.src_mac, d.dst_mac), (LB_MAC, tests::harness::CLIENT_MAC));
                assert!(d.payload.is_empty());
            })),
        ));
        // A segment carrying an ACK is answered with seq = its ack, RST only.
        lab.check(&Case::new(
            format!("ACK with data, no backend, reset ({})", plan.vip),
            Frame::tcp(client, 40000, vip, 81)
                .flags(ACK)
                .seq(1000)
                .ack(777)
                .payload(b"GET / HTTP/1.1\r\n")
                .build(),
            XDP_TX,
            Expect::Decoded(Box::new(move |d| {
                assert_eq!(d.tcp_flags, Some(RST));
                assert_eq!((d.seq, d.ack), (Some(777), Some(0)));
            })),
        ));
    }
    lab.check(&Case::new(
        "a RST is never answered",
        Frame::tcp(p4.client, 40000, p4.vip, 81).flags(RST).build(),
        XDP_DROP,
        Expect::Unchanged,
    ));
    lab.check(&Case::new(
        "UDP with no backend is dropped even with reset",
        Frame::udp(p4.client, 40000, p4.vip, 53).build(),
        XDP_DROP,
        Expect::Unchanged,
    ));
    lab.assert_counters(&[
        (Counter::DropNoBackend, 3),
        (Counter::TxReset, 4),
        // The ACKs with data: no SYN seen, no flow.
        (Counter::FlowMidstream, 2),
    ]);
}

/// IPv4 options on the reset case prove the RST drops them; IPv6 has none.
trait OptionsIfV4 {
    fn ipv4_options_if_v4(self, plan: &Plan) -> Self;
}

impl OptionsIfV4 for Frame {
    fn ipv4_options_if_v4(self, plan: &Plan) -> Self {
        if plan.vip.is_ipv4() {
            self.ipv4_options(&[1, 1, 1, 1])
        } else {
            self
        }
    }
}

/// The reply the client received, as the quoted packet of an ICMP error.
fn quoted_reply(plan: &Plan, vport: u16, cport: u16) -> Vec<u8> {
    let reply = Frame::tcp(plan.vip, vport, plan.client, cport)
        .flags(ACK)
        .payload(&[0x55; 1200])
        .build();
    ip_part(&reply).to_vec()
}

fn icmp_too_big(plan: &Plan, router: IpAddr, quoted: &[u8]) -> Vec<u8> {
    match (router, plan.vip) {
        (IpAddr::V4(r), IpAddr::V4(v)) => icmp4_frag_needed(r, v, 1400, quoted, 64),
        (IpAddr::V6(r), IpAddr::V6(v)) => icmp6_packet_too_big(r, v, 1400, quoted, 64),
        _ => panic!("mixed families"),
    }
}

#[test]
fn icmp_too_big_reaches_the_flows_backend() {
    let mut lab = PacketLab::new();
    let (p4, p6) = (v4(), v6());
    lab.apply(&[
        service(&p4, "nat4", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p4, "dsr4", 81, Protocol::Tcp, Forwarding::Dsr),
        service(&p6, "nat6", 80, Protocol::Tcp, Forwarding::Nat),
        service(&p6, "dsr6", 81, Protocol::Tcp, Forwarding::Dsr),
    ]);
    for (plan, router) in [(p4, ip("198.18.0.200")), (p6, ip("fd00:1b::200"))] {
        // DSR: the error goes to the flow's backend unchanged but for the MACs.
        let syn = lab.run(
            &Frame::tcp(plan.client, 40000, plan.vip, 81)
                .flags(SYN)
                .build(),
        );
        assert_eq!(syn.verdict, XDP_TX);
        let b = (0..3)
            .find(|&i| syn.frame[..6] == backend_mac(i))
            .expect("sent to a backend");
        let mut expected = icmp_too_big(&plan, router, &quoted_reply(&plan, 81, 40000));
        let input = expected.clone();
        expected[..6].copy_from_slice(&backend_mac(b));
        expected[6..12].copy_from_slice(&LB_MAC);
        lab.check(&Case::new(
            format!("DSR: too-big for {} relayed to its backend", plan.vip),
            input,
            XDP_TX,
            Expect::Frame(expected),
        ));

        // NAT: the error is translated to what the backend sent.
        let syn = lab.run(
            &Frame::tcp(plan.client, 40001, plan.vip, 80)
                .flags(SYN)
                .build(),
        );
        assert_eq!(syn.verdict, XDP_TX);
        let sent = tests::packet::decode(&syn.frame).expect("forwarded SYN decodes");
        let backend = sent.dst;
        let snat_port = sent.sport.expect("port");
        let (lb, quoted) = (plan.lb, quoted_reply(&plan, 80, 40001));
        lab.check(&Case::new(
            format!("NAT: too-big for {} translated for the backend", plan.vip),
            icmp_too_big(&plan, router, &quoted),
            XDP_TX,
            Expect::Decoded(Box::new(move |d| {
                assert_eq!((d.src, d.dst), (lb, backend), "outer addresses");
                assert_eq!(d.dst_mac, backend_mac(backend_index_of(backend)));
                let icmp = d.icmp.as_ref().expect("ICMP");
                assert_eq!(icmp.mtu, 1400);
                let q = icmp.inner.as_ref().expect("quoted packet");
                assert_eq!((q.src, q.sport), (backend, Some(8080)), "quoted source");
                assert_eq!(
                    (q.dst, q.dport),
                    (lb, Some(snat_port)),
                    "quoted destination"
                );
            })),
        ));
        // An error about a flow we do not know goes to the kernel.
        lab.check(&unchanged(
            "too-big for an unknown NAT flow",
            icmp_too_big(&plan, router, &quoted_reply(&plan, 80, 49999)),
        ));
    }
    lab.assert_counters(&[
        (Counter::FwdToBackend, 4),
        (Counter::FwdIcmpError, 4),
        (Counter::PassIcmpLocal, 2),
    ]);
}

fn backend_index_of(addr: IpAddr) -> usize {
    let plan = if addr.is_ipv4() { v4() } else { v6() };
    backend_index(&plan, addr)
}

#[test]
fn unresolved_next_hop_goes_to_the_kernel_and_unroutable_is_dropped() {
    let mut lab = PacketLab::new();
    let plan = v4();
    let mut unresolved = service(&plan, "unresolved", 80, Protocol::Tcp, Forwarding::Dsr);
    unresolved.backends.truncate(1);
    unresolved.backends[0].addr = plan.unresolved;
    let mut unroutable = service(&plan, "unroutable", 81, Protocol::Tcp, Forwarding::Dsr);
    unroutable.backends.truncate(1);
    unroutable.backends[0].addr = plan.unroutable;
    lab.apply(&[unresolved, unroutable]);
    let input = Frame::tcp(plan.client, 40000, plan.vip, 80)
        .flags(SYN)
        .build();
    let out = lab.check(&Case::new(
        "next hop without neighbour",
        input,
        XDP_PASS,
        Expect::Unchanged,
    ));
    // The metadata tells the TC companion where to send it: magic, ifindex, next hop,
    // family (struct NeighMeta).
    assert_eq!(out.meta.len(), 28, "metadata {:?}", out.meta);
    let word = |i: usize| {
        u32::from_ne_bytes([
            out.meta[i],
            out.meta[i + 1],
            out.meta[i + 2],
            out.meta[i + 3],
        ])
    };
    assert_eq!(word(0), NEIGH_META_MAGIC);
    assert_eq!(word(4), lab.ifindex);
    assert_eq!(word(8), to_words(plan.unresolved).0[0]);
    assert_eq!(word(24), 4);
    lab.check(&Case::new(
        "backend without a route",
        Frame::tcp(plan.client, 40000, plan.vip, 81)
            .flags(SYN)
            .build(),
        XDP_DROP,
        Expect::Unchanged,
    ));
    lab.assert_counters(&[(Counter::PassNoNeigh, 1), (Counter::DropFibFailed, 1)]);
}

#[test]
fn nat_source_ports_never_collide_and_exhaustion_is_counted() {
    // 64 NAT ports for one backend, 200 clients: every forwarded flow gets its own
    // port, the rest are refused and counted.
    let mut lab = PacketLab::with_caps(Capacities {
        max_vips: 4,
        max_backends: 16,
        flow_table_size: 4096,
        snat_ports: 2000..=2063,
        ..Capacities::default()
    });
    let plan = v4();
    let mut one = service(&plan, "one", 80, Protocol::Tcp, Forwarding::Nat);
    one.backends.truncate(1);
    lab.apply(&[one]);
    let mut ports = HashSet::new();
    let mut refused = 0u64;
    for cport in 30000..30200u16 {
        let out = lab.run(
            &Frame::tcp(plan.client, cport, plan.vip, 80)
                .flags(SYN)
                .build(),
        );
        match out.verdict {
            XDP_TX => {
                let d = tests::packet::decode(&out.frame).expect("decodes");
                let p = d.sport.expect("port");
                assert!((2000..=2063).contains(&p), "port {p} outside the range");
                assert!(ports.insert(p), "port {p} handed out twice");
                // The same flow keeps its port.
                let again = lab.run(
                    &Frame::tcp(plan.client, cport, plan.vip, 80)
                        .flags(ACK)
                        .build(),
                );
                let d2 = tests::packet::decode(&again.frame).expect("decodes");
                assert_eq!(d2.sport, Some(p), "flow {cport} changed its NAT port");
            }
            XDP_DROP => refused += 1,
            v => panic!("unexpected verdict {v}"),
        }
    }
    assert!(
        ports.len() >= 48,
        "only {} of 64 ports used before refusing",
        ports.len()
    );
    assert_eq!(ports.len() as u64 + refused, 200);
    let forwarded = ports.len() as u64;
    lab.assert_counters(&[
        (Counter::FwdToBackend, forwarded * 2),
        (Counter::DropSnatExhausted, refused),
    ]);
}

#[test]
fn addresses_sharing_a_table_slot_are_told_apart() {
    use lb_common::{hash::addr_slot, maps::addr::to_words};
    let mut lab = PacketLab::new();
    let plan = v4();
    let slot_of = |a: IpAddr| {
        let (w, f) = to_words(a);
        addr_slot(&w, u32::from(f))
    };
    let target = slot_of(plan.vip);
    // Two more addresses in the lab's range whose slot is the VIP's.
    let colliding: Vec<IpAddr> = (0..=255u8)
        .flat_map(|x| (1..=254u8).map(move |y| ip(&format!("198.18.{x}.{y}"))))
        .filter(|a| *a != plan.vip && slot_of(*a) == target)
        .take(2)
        .collect();
    assert_eq!(colliding.len(), 2, "no colliding addresses found");
    let (second_vip, stranger) = (colliding[0], colliding[1]);
    let mut second = service(&plan, "second", 80, Protocol::Tcp, Forwarding::Dsr);
    second.vip = second_vip;
    lab.apply(&[
        service(&plan, "first", 80, Protocol::Tcp, Forwarding::Dsr),
        second,
    ]);
    for vip in [plan.vip, second_vip] {
        let out = lab.run(&Frame::tcp(plan.client, 40000, vip, 80).flags(SYN).build());
        assert_eq!(
            out.verdict, XDP_TX,
            "VIP {vip} in a shared slot was not forwarded"
        );
    }
    lab.check(&unchanged(
        "an address sharing the slot that is not ours",
        Frame::tcp(plan.client, 40000, stranger, 80)
            .flags(SYN)
            .build(),
    ));
    lab.assert_counters(&[(Counter::FwdToBackend, 2), (Counter::PassNotVip, 1)]);
}
