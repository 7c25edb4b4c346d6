//! Routed VIPs: a good one becomes its pools' services and a listener; each
//! mistake is named at its key.

use std::{path::Path, time::Duration};

use super::*;
use crate::{
    names::Pattern,
    proxy::{RouteBy, Version},
};

const ROUTED: &str = r#"
[agent]
interfaces = ["eth0"]

[[vip]]
name = "front"
address = "198.18.1.10"
port = 443
route_by = "sni"
otherwise = "b"
inspect_timeout = "2s"

[[vip.pool]]
name = "a"
names = ["*.a.lan", "a.lan"]
send_proxy = "v2"

[[vip.pool.backend]]
address = "198.18.1.11"
port = 8443

[[vip.pool]]
name = "b"

[vip.pool.check]
interval = "1s"

[[vip.pool.backend]]
address = "198.18.1.12"
port = 8443
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("lb.toml")) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn with(old: &str, new: &str) -> String {
    assert!(ROUTED.contains(old), "{old:?}");
    ROUTED.replacen(old, new, 1)
}

fn has(errors: &[String], words: &str) {
    assert!(
        errors.iter().any(|e| e.contains(words)),
        "no error says {words:?}: {errors:#?}"
    );
}

#[test]
fn a_routed_vip_becomes_its_pools_and_a_listener() {
    let c = parse(ROUTED, Path::new("lb.toml")).expect("good");
    let names: Vec<&str> = c.vips.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["front/a", "front/b"]);
    assert!(c.vips.iter().all(|v| v.routed.is_some()));
    // Not programmed into the data plane.
    assert!(c.services(|_, _| true).is_empty());
    let r = &c.routed[0];
    assert_eq!(
        (r.name.as_str(), r.port, r.by),
        ("front", 443, RouteBy::Sni)
    );
    assert_eq!(r.otherwise, Some(1));
    assert_eq!(r.inspect_timeout, Duration::from_secs(2));
    assert_eq!(r.pools[0].send_proxy, Some(Version::V2));
    assert_eq!(r.pools[1].send_proxy, None);
    assert_eq!(
        r.pools[0].names,
        [
            Pattern::parse("*.a.lan").expect("pattern"),
            Pattern::parse("a.lan").expect("pattern")
        ]
    );
    assert_eq!(c.vips[1].check.interval, Duration::from_secs(1));
}

#[test]
fn routed_mistakes_are_named() {
    has(
        &errors(&with("route_by = \"sni\"\n", "")),
        "vip[0].route_by: missing",
    );
    has(
        &errors(&with("route_by = \"sni\"", "route_by = \"sniff\"")),
        "vip[0].route_by",
    );
    has(
        &errors(&with("otherwise = \"b\"", "otherwise = \"c\"")),
        "expected \"reset\" or the name of one of its pools",
    );
    // Pool b has no names: reached only as `otherwise`.
    has(
        &errors(&with("otherwise = \"b\"", "otherwise = \"reset\"")),
        "vip[0].pool[1].names: missing",
    );
    has(
        &errors(&with(
            "names = [\"*.a.lan\", \"a.lan\"]",
            "names = [\"a.*.lan\"]",
        )),
        "wildcard",
    );
    has(
        &errors(&with("send_proxy = \"v2\"", "send_proxy = \"v3\"")),
        "vip[0].pool[0].send_proxy",
    );
    has(
        &errors(&with("port = 8443\n\n[[vip.pool]]", "\n[[vip.pool]]")),
        "a pool's backend needs a port",
    );
    has(
        &errors(&with(
            "inspect_timeout = \"2s\"",
            "snat_address = \"198.18.1.2\"",
        )),
        "`snat_address` does not apply",
    );
    has(
        &errors(&with("name = \"b\"", "name = \"a\"")),
        "\"a\" is used by another pool",
    );
    // The proxy's keys on a data-plane VIP.
    let plain = "[agent]\ninterfaces = [\"eth0\"]\n[[vip]]\nname = \"x\"\naddress = \"198.18.1.10\"\n\
                 port = 80\nsnat_address = \"198.18.1.2\"\ninspect_timeout = \"1s\"\n\
                 [[vip.backend]]\naddress = \"198.18.1.11\"\n";
    has(&errors(plain), "only for a routed VIP");
    // The same address and port as another VIP.
    let twice = format!(
        "{ROUTED}\n[[vip]]\nname = \"x\"\naddress = \"198.18.1.10\"\nport = 443\n\
         snat_address = \"198.18.1.2\"\n[[vip.backend]]\naddress = \"198.18.1.11\"\n"
    );
    has(&errors(&twice), "already a service of another [[vip]]");
    // An every-port data-plane VIP of the same address would take the port first.
    let every = format!(
        "{ROUTED}\n[[vip]]\nname = \"all\"\naddress = \"198.18.1.10\"\nport = 0\n\
         snat_address = \"198.18.1.2\"\n[vip.check]\nport = 80\n\
         [[vip.backend]]\naddress = \"198.18.1.11\"\n"
    );
    has(
        &errors(&every),
        "vip[0].address: VIP all takes every TCP port",
    );
    // A tracker names the routed VIP instead of a pool.
    let tracked = format!(
        "{ROUTED}\n[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\npriority = 100\n\
         addresses = [\"198.18.1.10/24\"]\n[[vrrp.track]]\nkind = \"vip_healthy\"\n\
         vip = \"front\"\nweight = -50\n"
    );
    has(
        &errors(&tracked),
        "is a routed VIP: track one of its pools (front/a, front/b)",
    );
}
