//! The codec against bytes checked by hand (the v2 sum worked on paper, all four
//! recomputed by an independent script), both directions, and every reject.

use std::net::IpAddr;

use super::packet::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal")
}

const V2_AUTH: [u8; 20] = [
    0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x7b, 0xcb, 0xc0, 0xa8, 0x01, 0x0a, 0x73, 0x65, 0x63, 0x72,
    0x65, 0x74, 0x00, 0x00,
];
const V3_V4_PSEUDO: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x7c, 0xc0, 0xa8, 0x01, 0x0a,
];
const V3_V4_NO_PSEUDO: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0xa8, 0xb4, 0xc0, 0xa8, 0x01, 0x0a,
];
const V3_V6: [u8; 24] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x6f, 0x37, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

fn advert(version: Version, addr: &str, auth: Option<[u8; 8]>) -> Advert {
    Advert {
        version,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        addrs: vec![ip(addr)],
        auth,
    }
}

fn expect(version: Version, mode: V3Checksum, auth: Option<[u8; 8]>) -> Expect {
    Expect {
        version,
        mode,
        auth,
        interval_s: 1,
    }
}

const MC4: &str = "224.0.0.18";

#[test]
fn v2_with_auth_matches_hand_checked_bytes() {
    let a = advert(Version::V2, "192.168.1.10", Some(auth_data("secret")));
    let (src, dst) = (ip("192.168.1.1"), ip(MC4));
    assert_eq!(encode(&a, src, dst, V3Checksum::PseudoHeader), V2_AUTH);
    let e = expect(
        Version::V2,
        V3Checksum::PseudoHeader,
        Some(auth_data("secret")),
    );
    assert_eq!(parse(&V2_AUTH, src, dst, 255, true, &e), Ok(a));
    // Only the first 8 characters count, as in keepalived.
    assert_eq!(auth_data("secret-and-more"), *b"secret-a");
}

#[test]
fn v3_ipv4_with_and_without_pseudo_header() {
    let a = advert(Version::V3, "192.168.1.10", None);
    let (src, dst) = (ip("192.168.1.1"), ip(MC4));
    assert_eq!(encode(&a, src, dst, V3Checksum::PseudoHeader), V3_V4_PSEUDO);
    assert_eq!(
        encode(&a, src, dst, V3Checksum::NoPseudoHeader),
        V3_V4_NO_PSEUDO
    );
    let with = expect(Version::V3, V3Checksum::PseudoHeader, None);
    let without = expect(Version::V3, V3Checksum::NoPseudoHeader, None);
    assert_eq!(
        parse(&V3_V4_PSEUDO, src, dst, 255, true, &with),
        Ok(a.clone())
    );
    assert_eq!(
        parse(&V3_V4_NO_PSEUDO, src, dst, 255, true, &without),
        Ok(a)
    );
    // A peer with the other setting is a checksum mismatch, counted as such.
    assert_eq!(
        parse(&V3_V4_PSEUDO, src, dst, 255, true, &without),
        Err(Reject::BadChecksum)
    );
    assert_eq!(
        parse(&V3_V4_NO_PSEUDO, src, dst, 255, true, &with),
        Err(Reject::BadChecksum)
    );
}

#[test]
fn v3_ipv6_matches_hand_checked_bytes() {
    let a = advert(Version::V3, "fd00::10", None);
    let (src, dst) = (ip("fe80::1"), ip("ff02::12"));
    // The IPv6 pseudo-header is always included, whatever the IPv4 setting.
    for mode in [V3Checksum::PseudoHeader, V3Checksum::NoPseudoHeader] {
        assert_eq!(encode(&a, src, dst, mode), V3_V6);
        assert_eq!(
            parse(
                &V3_V6,
                src,
                dst,
                255,
                true,
                &expect(Version::V3, mode, None)
            ),
            Ok(a.clone())
        );
    }
}

#[test]
fn centisecond_intervals_round_trip() {
    let (src, dst) = (ip("192.168.1.1"), ip(MC4));
    let e = expect(Version::V3, V3Checksum::PseudoHeader, None);
    for cs in [1u16, 10, 100, 4095] {
        let mut a = advert(Version::V3, "192.168.1.10", None);
        a.interval_cs = cs;
        let m = encode(&a, src, dst, V3Checksum::PseudoHeader);
        assert_eq!(
            parse(&m, src, dst, 255, true, &e).map(|a| a.interval_cs),
            Ok(cs)
        );
    }
}

#[test]
fn every_reject_has_its_reason() {
    let (src, dst) = (ip("192.168.1.1"), ip(MC4));
    let v3 = expect(Version::V3, V3Checksum::PseudoHeader, None);
    let v2 = expect(
        Version::V2,
        V3Checksum::PseudoHeader,
        Some(auth_data("secret")),
    );
    let p = |m: &[u8], ttl, e: &Expect| parse(m, src, dst, ttl, true, e);
    assert_eq!(p(&V3_V4_PSEUDO, 254, &v3), Err(Reject::BadTtl));
    // Unicast adverts are not held to TTL 255.
    assert!(parse(&V3_V4_PSEUDO, src, ip("192.168.1.2"), 64, false, &v3).is_err());
    assert_eq!(p(&V3_V4_PSEUDO[..7], 255, &v3), Err(Reject::TooShort));
    assert_eq!(p(&V3_V4_PSEUDO[..10], 255, &v3), Err(Reject::TooShort));
    assert_eq!(p(&V3_V4_PSEUDO, 255, &v2), Err(Reject::BadVersion));
    let mut t = V3_V4_PSEUDO;
    t[0] = 0x32;
    assert_eq!(p(&t, 255, &v3), Err(Reject::BadType));
    let mut c = V3_V4_PSEUDO;
    c[2] = 99;
    assert_eq!(p(&c, 255, &v3), Err(Reject::BadChecksum));
    let wrong = expect(
        Version::V2,
        V3Checksum::PseudoHeader,
        Some(auth_data("other")),
    );
    assert_eq!(p(&V2_AUTH, 255, &wrong), Err(Reject::AuthMismatch));
    let none = expect(Version::V2, V3Checksum::PseudoHeader, None);
    assert_eq!(p(&V2_AUTH, 255, &none), Err(Reject::AuthMismatch));
    let slow = Expect {
        interval_s: 2,
        ..v2
    };
    assert_eq!(p(&V2_AUTH, 255, &slow), Err(Reject::IntervalMismatch));
    for r in Reject::ALL {
        assert!(!r.label().is_empty());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap sweep here; the fuzz target (fuzz/) goes further.
    let (src, dst) = (ip("192.168.1.1"), ip(MC4));
    let e = expect(Version::V3, V3Checksum::PseudoHeader, None);
    let mut x: u32 = 0x1234_5678;
    for len in 0..64usize {
        for _ in 0..200 {
            let m: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse(&m, src, dst, 255, true, &e);
        }
    }
}
