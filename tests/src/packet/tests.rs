//! Round trips of the builder through the decoder, and corrupted checksums.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{decode::verify, *};

const C4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const R4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const R6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);

/// (client, VIP) of each family.
fn pairs() -> [(IpAddr, IpAddr); 2] {
    [(C4.into(), V4.into()), (C6.into(), V6.into())]
}

fn dec(frame: &[u8]) -> Decoded {
    decode(frame).unwrap_or_else(|e| panic!("decode failed: {e}\n{}", hexdump(frame)))
}

fn flipped(frame: &[u8], at: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at] ^= 0x01;
    f
}

#[test]
fn checksum_known_answer() {
    // The classic example header 192.168.0.1 -> 192.168.0.199: checksum 0xb861.
    let mut h = [0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0].to_vec();
    h.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 199]);
    assert_eq!(checksum(&h), 0xb861);
    assert!(verify("IPv4 header", &[&h], 0).is_err());
    h[10..12].copy_from_slice(&[0xb8, 0x61]);
    assert_eq!(verify("IPv4 header", &[&h], 0xb861), Ok(()));
    assert_eq!(checksum(&h), 0, "a correct header sums to zero");
}

#[test]
fn tcp_round_trip() {
    for (src, dst) in pairs() {
        let f = Frame::tcp(src, 40000, dst, 80)
            .flags(PSH | ACK)
            .seq(7)
            .ack(9);
        let f = f.payload(b"hello").ttl(33).macs([1; 6], [2; 6]).build();
        let d = dec(&f);
        assert_eq!((d.src_mac, d.dst_mac, d.vlan), ([1; 6], [2; 6], None));
        assert_eq!((d.src, d.dst, d.proto, d.ttl), (src, dst, 6, 33));
        assert_eq!((d.sport, d.dport), (Some(40000), Some(80)));
        let tcp = (d.tcp_flags, d.seq, d.ack);
        assert_eq!(tcp, (Some(PSH | ACK), Some(7), Some(9)));
        assert_eq!((d.payload.as_slice(), d.icmp), (&b"hello"[..], None));
    }
}

#[test]
fn udp_round_trip_and_zero_checksum() {
    for (src, dst) in pairs() {
        let f = Frame::udp(src, 5353, dst, 53).payload(b"query").build();
        let d = dec(&f);
        let got = (d.proto, d.sport, d.dport, d.tcp_flags);
        assert_eq!(got, (17, Some(5353), Some(53), None));
        assert_eq!(d.payload, b"query");
        let mut zeroed = f.clone();
        let at = f.len() - 5 - 2; // the UDP checksum field
        zeroed[at..at + 2].copy_from_slice(&[0, 0]);
        match decode(&zeroed) {
            Ok(d) => assert!(src.is_ipv4() && d.sport == Some(5353)),
            Err(e) => assert!(src.is_ipv6() && e.starts_with("UDP checksum wrong"), "{e}"),
        }
    }
}

#[test]
fn vlan_tag_and_ip_part() {
    let b = Frame::udp(C4.into(), 1, V4.into(), 2).payload(b"v");
    let (plain, tagged) = (b.build(), b.clone().vlan(42).build());
    assert_eq!(tagged.len(), plain.len() + 4);
    assert_eq!(tagged[12..16], [0x81, 0x00, 0x00, 42]);
    assert_eq!(ip_part(&plain), ip_part(&tagged));
    assert_eq!(ip_part(&plain)[0], 0x45);
    assert_eq!((dec(&tagged).vlan, dec(&plain).vlan), (Some(42), None));
}

#[test]
fn ipv4_options_set_ihl() {
    let f = Frame::tcp(C4.into(), 1000, V4.into(), 80);
    let f = f.ipv4_options(&[1, 1, 1]).payload(b"x").build(); // 3 NOPs, padded to 4
    assert_eq!(f[14], 0x46);
    assert_eq!(u16::from_be_bytes([f[16], f[17]]), 24 + 20 + 1);
    let d = dec(&f);
    assert_eq!(
        (d.sport, d.dport, &d.payload[..]),
        (Some(1000), Some(80), &b"x"[..])
    );
}

#[test]
fn ipv4_fragments() {
    let b = Frame::udp(C4.into(), 1000, V4.into(), 53).payload(b"frag");
    assert_eq!(b.build()[20..22], [0x40, 0x00], "DF by default");
    let first = b.clone().ipv4_fragment(true, 0).build();
    assert_eq!(first[20..22], [0x20, 0x00]);
    assert_eq!(dec(&first).sport, Some(1000));
    let later = b.ipv4_fragment(false, 3).build();
    assert_eq!(later[20..22], [0x00, 0x03]);
    let d = dec(&later);
    assert_eq!((d.proto, d.sport, d.payload.len()), (17, None, 8 + 4));
}

#[test]
fn ipv6_extension_headers() {
    let b = Frame::tcp(C6.into(), 1000, V6.into(), 443).payload(b"abc");
    let f = b.clone().ipv6_ext(0, &ipv6_opts_ext());
    let f = f.ipv6_ext(60, &ipv6_opts_ext()).build();
    assert_eq!((f[14 + 6], f[54], f[62]), (0, 60, 6), "next-header chain");
    assert_eq!(u16::from_be_bytes([f[18], f[19]]), 16 + 20 + 3);
    let d = dec(&f);
    assert_eq!((d.proto, d.sport, d.dport), (6, Some(1000), Some(443)));
    assert_eq!(d.payload, b"abc");
    for (ext_type, ext, proto, sport) in [
        (44, ipv6_frag_ext(true, 0, 7), 6, Some(1000)),
        (44, ipv6_frag_ext(false, 2, 7), 6, None),
        (200, [0, 0, 1, 2, 3, 4, 5, 6], 200, None), // unknown: the upper layer
    ] {
        let d = dec(&b.clone().ipv6_ext(ext_type, &ext).build());
        assert_eq!((d.proto, d.sport), (proto, sport), "after type {ext_type}");
    }
}

#[test]
fn icmp_errors_quote_the_inner_packet() {
    let inner = Frame::tcp(V4.into(), 80, C4.into(), 40000).payload(&[9; 100]);
    let f = icmp4_frag_needed(R4, V4, 1400, ip_part(&inner.build()), 8);
    let d = dec(&f);
    let got = (d.src, d.dst, d.proto, d.payload.len());
    assert_eq!(got, (R4.into(), V4.into(), 1, 20 + 8));
    let i = d.icmp.expect("ICMP info");
    assert_eq!((i.ty, i.code, i.mtu), (3, 4, 1400));
    let (src, dst, proto) = (V4.into(), C4.into(), 6);
    let (sport, dport) = (Some(80), Some(40000));
    assert_eq!(
        i.inner,
        Some(Quoted {
            src,
            dst,
            proto,
            sport,
            dport
        })
    );

    let inner = Frame::udp(V6.into(), 53, C6.into(), 5000).payload(b"short");
    let f = icmp6_packet_too_big(R6, V6, 1280, ip_part(&inner.build()), 1000);
    let d = dec(&f);
    assert_eq!(
        (d.proto, d.payload.len()),
        (58, 40 + 8 + 5),
        "quote clamped"
    );
    let i = d.icmp.expect("ICMPv6 info");
    assert_eq!((i.ty, i.code, i.mtu), (2, 0, 1280));
    let (src, dst, proto) = (V6.into(), C6.into(), 17);
    let (sport, dport) = (Some(53), Some(5000));
    assert_eq!(
        i.inner,
        Some(Quoted {
            src,
            dst,
            proto,
            sport,
            dport
        })
    );
}

#[test]
fn icmp_echo_is_not_an_error() {
    for ((src, dst), ty) in pairs().into_iter().zip([8, 128]) {
        let d = dec(&icmp_echo(src, dst));
        let i = d.icmp.expect("ICMP info");
        assert_eq!((i.ty, i.code, i.mtu, i.inner), (ty, 0, 0, None));
        assert_eq!((d.sport, d.payload.as_slice()), (None, &b"ping"[..]));
    }
}

#[test]
fn corrupted_checksums_are_named() {
    let [(c4, v4), (c6, v6)] = pairs();
    let tcp4 = Frame::tcp(c4, 1, v4, 2).payload(b"p").build();
    let tcp6 = Frame::tcp(c6, 1, v6, 2).build();
    let udp4 = Frame::udp(c4, 1, v4, 2).build();
    let udp6 = Frame::udp(c6, 1, v6, 2).build();
    let (icmp4, icmp6) = (icmp_echo(c4, v4), icmp_echo(c6, v6));
    let bad_inner = flipped(ip_part(&tcp4), 10);
    let quoted = icmp4_frag_needed(V4, C4, 1400, &bad_inner, 8);
    let cases = [
        (flipped(&tcp4, 14 + 10), "IPv4 header checksum wrong"),
        (flipped(&tcp4, 14 + 20 + 17), "TCP checksum wrong"),
        (flipped(&tcp4, tcp4.len() - 1), "TCP checksum wrong"),
        (flipped(&tcp6, 14 + 40 + 16), "TCP checksum wrong"),
        (flipped(&udp4, 14 + 20 + 7), "UDP checksum wrong"),
        (flipped(&udp6, 14 + 40 + 6), "UDP checksum wrong"),
        (flipped(&icmp4, 14 + 20 + 2), "ICMPv4 checksum wrong"),
        (flipped(&icmp6, 14 + 40 + 3), "ICMPv6 checksum wrong"),
        (quoted, "quoted IPv4 header checksum wrong"),
    ];
    for (frame, want) in cases {
        let e = decode(&frame).expect_err(want);
        assert!(e.starts_with(want), "{e:?} should name {want:?}");
    }
}

#[test]
fn lengths_are_checked_and_truncation_never_panics() {
    let [(c4, v4), (c6, v6)] = pairs();
    let v6_tagged = Frame::udp(c6, 1, v6, 2).vlan(7).build();
    let cases = [
        (Frame::tcp(c4, 1, v4, 2).build(), "IPv4 total length"),
        (v6_tagged, "IPv6 payload length"),
    ];
    for (f, want) in cases {
        let longer = [&f[..], &[0]].concat();
        assert!(decode(&longer).expect_err(want).starts_with(want));
        for n in 0..f.len() {
            assert!(decode(&f[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }
    let arp = arp_request(C4, V4);
    assert_eq!((arp.len(), &arp[12..14]), (42, &[0x08, 0x06][..]));
    assert_eq!(decode(&arp), Err("not IP: ethertype 0x0806".to_string()));
    assert_eq!(non_ip_frame(0x88cc, &[1, 2])[12..], [0x88, 0xcc, 1, 2]);
}

#[test]
fn reports() {
    let dump = hexdump(&[0xab; 17]);
    let want = "0000  ab ab ab ab ab ab ab ab  ab ab ab ab ab ab ab ab\n0010  ab\n";
    assert_eq!(dump, want);
    let input = Frame::tcp(C4.into(), 1, V4.into(), 2).build();
    let actual = flipped(&input, 25);
    let r = diff_report(&input, &input, &actual);
    assert!(r.contains("first difference at offset 25 (0x0019)"), "{r}");
    let caret = format!("\n{}^^ first difference", " ".repeat(6 + 3 * 9 + 1));
    assert!(r.contains(&caret), "{r}");
    assert!(
        r.contains("does not decode: IPv4 header checksum wrong"),
        "{r}"
    );
    let r = diff_report(&input, &input, &input[..50]);
    let end = format!(
        "offset 50 (0x0032): expected {:#04x}, actual end",
        input[50]
    );
    assert!(r.contains(&end), "{r}");
    assert!(diff_report(&input, &input, &input).contains("identical"));
}
