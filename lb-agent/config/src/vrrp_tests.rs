//! `[[vrrp]]`: a good instance gets its defaults; every kind of mistake is named at
//! its line and key.

use std::{path::Path, time::Duration};

use lb_vrrp::packet::{V3Checksum, Version};

use super::*;

const BASE: &str = r#"[agent]
interfaces = ["eth0"]

[[vip]]
name = "web"
address = "198.18.1.10"
port = 80
snat_address = "198.18.1.2"
[[vip.backend]]
address = "198.18.1.11"
"#;

fn with(vrrp: &str) -> String {
    format!("{BASE}{vrrp}")
}

/// BASE has 10 lines; GOOD starts with an empty line.
const L: usize = 10;

const GOOD: &str = r#"
[[vrrp]]
name = "vi_1"
interface = "eth0"
vrid = 51
priority = 100
addresses = ["198.18.1.10/24"]
unicast_peers = ["198.18.1.3"]
[[vrrp.track]]
kind = "vip_healthy"
vip = "web"
weight = 6
[[vrrp.track]]
kind = "script"
command = ["/bin/true"]
interval = "1s"
weight = -10
fall = 2
"#;

fn one_error(text: &str, line: usize, key: &str, words: &str) {
    let e = match parse(text, Path::new("lb.toml")) {
        Ok(c) => panic!("accepted: {:?}", c.vrrp),
        Err(e) => e.0,
    };
    assert_eq!(e.len(), 1, "expected one error, got {e:?}");
    let e = &e[0];
    assert_eq!((e.line, e.key.as_str()), (line, key), "wrong place for {e}");
    assert!(e.message.contains(words), "{e} does not say {words:?}");
}

#[test]
fn a_good_instance_gets_its_defaults() {
    let c = parse(&with(GOOD), Path::new("lb.toml")).expect("valid");
    let v = &c.vrrp[0];
    assert_eq!((v.vrid, v.priority, v.version), (51, 100, Version::V3));
    assert_eq!(v.advert_interval, Duration::from_secs(1));
    assert!(v.preempt);
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_eq!(v.v3_checksum, V3Checksum::PseudoHeader);
    assert_eq!(v.addresses, vec![("198.18.1.10".parse().expect("ip"), 24)]);
    assert_eq!(v.garp_repeat, defaults::VRRP_GARP_REPEAT);
    assert_eq!(v.tracks.len(), 2);
    assert_eq!(
        v.tracks[0].kind,
        TrackKind::VipHealthy { vip: "web".into() }
    );
    assert_eq!(
        (v.tracks[1].weight, v.tracks[1].rise, v.tracks[1].fall),
        (-10, 1, 2)
    );
}

#[test]
fn each_mistake_is_named() {
    let g = |old: &str, new: &str| with(&GOOD.replacen(old, new, 1));
    one_error(
        &g("vrid = 51", "vrid = 256"),
        L + 5,
        "vrrp[0].vrid",
        "1..=255",
    );
    one_error(
        &g("priority = 100", "priority = 0"),
        L + 6,
        "vrrp[0].priority",
        "1..=255",
    );
    one_error(
        &g(
            "priority = 100",
            "priority = 100\nadvert_interval = \"15ms\"",
        ),
        L + 7,
        "vrrp[0].advert_interval",
        "multiple of 10ms",
    );
    one_error(
        &g(
            "priority = 100",
            "priority = 100\nversion = 2\nadvert_interval = \"1500ms\"",
        ),
        L + 8,
        "vrrp[0].advert_interval",
        "whole seconds",
    );
    one_error(
        &g("priority = 100", "priority = 100\nauth_pass = \"x\""),
        L + 7,
        "vrrp[0].auth_pass",
        "only version 2",
    );
    one_error(
        &g(
            "priority = 100",
            "priority = 100\nversion = 2\nauth_pass = \"123456789\"",
        ),
        L + 8,
        "vrrp[0].auth_pass",
        "1 to 8",
    );
    one_error(
        &g(
            "[\"198.18.1.10/24\"]",
            "[\"198.18.1.10/24\", \"fd00::10/64\"]",
        ),
        L + 7,
        "vrrp[0].addresses",
        "mixes IPv4 and IPv6",
    );
    one_error(
        &g("198.18.1.10/24", "198.18.1.10/33"),
        L + 7,
        "vrrp[0].addresses[0]",
        "0..=32",
    );
    one_error(
        &g("[\"198.18.1.3\"]", "[\"fd00::3\"]"),
        L + 8,
        "vrrp[0].unicast_peers[0]",
        "family",
    );
    one_error(
        &g("vip = \"web\"", "vip = \"nope\""),
        L + 11,
        "vrrp[0].track[0].vip",
        "no [[vip]]",
    );
    one_error(
        &g("weight = 6", "weight = 254"),
        L + 12,
        "vrrp[0].track[0].weight",
        "-253..=253",
    );
    one_error(
        &g("kind = \"script\"", "kind = \"scrpit\""),
        L + 14,
        "vrrp[0].track[1].kind",
        "expected one of",
    );
    one_error(
        &g("command = [\"/bin/true\"]", "command = []"),
        L + 15,
        "vrrp[0].track[1].command",
        "no shell",
    );
    one_error(
        &g("vip = \"web\"", "vip = \"web\"\ninterval = \"1s\""),
        L + 12,
        "vrrp[0].track[0].interval",
        "only script",
    );
    one_error(
        &g(
            "interface = \"eth0\"",
            "interface = \"eth0\"\nv3_checksum = \"none\"",
        ),
        L + 5,
        "vrrp[0].v3_checksum",
        "no-pseudo-header",
    );
    one_error(
        &g("vrid = 51", "vrid = 51\nprempt = false"),
        L + 6,
        "vrrp[0].prempt",
        "unknown field",
    );
    let twice = with(&format!("{GOOD}{}", GOOD.replace("vi_1", "vi_2")));
    one_error(&twice, L + 23, "vrrp[1].vrid", "already used on eth0");
}
