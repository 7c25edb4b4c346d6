//! Fuzzes the VRRP advert parser with every expectation (v2 with and without a
//! password, v3 with and without the IPv4 pseudo-header, IPv4 and IPv6 senders,
//! multicast and unicast): it must never panic, and whatever it accepts must
//! encode back to bytes it accepts again as the same advert.

#![no_main]

use std::net::IpAddr;

use lb_vrrp::packet::{Expect, V3Checksum, Version, auth_data, encode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let v6 = selector & 1 != 0;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    } else {
        ("192.168.1.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    };
    let expect = Expect {
        version: if selector & 2 != 0 { Version::V2 } else { Version::V3 },
        mode: if selector & 4 != 0 { V3Checksum::NoPseudoHeader } else { V3Checksum::PseudoHeader },
        auth: (selector & 8 != 0).then(|| auth_data("secret")),
        interval_s: 1,
    };
    let ttl = if selector & 16 != 0 { 255 } else { selector };
    let multicast = selector & 32 != 0;
    if let Ok(advert) = parse(msg, src, dst, ttl, multicast, &expect) {
        let again = encode(&advert, src, dst, expect.mode);
        assert_eq!(parse(&again, src, dst, 255, multicast, &expect), Ok(advert));
    }
});
