//! Every kind of config error gives its message, line and key; a good file parses
//! with its defaults filled in.

use std::{path::Path, time::Duration};

use super::*;
use crate::service::{AttachMode, Forwarding, NoBackend, Protocol, SocketScope};

const GOOD: &str = r#"
[agent]
interfaces = ["eth0"]

[[vip]]
name = "k8s-api"
address = "198.18.1.10"
port = 6443
snat_address = "198.18.1.2"

[vip.check]
type = "https"
path = "/readyz"
interval = "1s"
fall = 2
rise = 3
tls_verify = false

[[vip.backend]]
address = "198.18.1.11"

[[vip.backend]]
address = "198.18.1.12"
weight = 2
state = "drain"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new("lb.toml")) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.0,
    }
}

/// The single error of `text`, which must be at `line` on `key` and mention `words`.
fn one_error(text: &str, line: usize, key: &str, words: &str) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:?}");
    let e = &e[0];
    assert_eq!((e.line, e.key.as_str()), (line, key), "wrong place for {e}");
    assert!(e.message.contains(words), "{e} does not say {words:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("lb.toml:{line}: {key}: ")),
        "{e}"
    );
}

/// GOOD with `old` replaced by `new`.
fn good_with(old: &str, new: &str) -> String {
    assert!(GOOD.contains(old), "{old:?} not in GOOD");
    GOOD.replacen(old, new, 1)
}

#[test]
fn a_good_file_gets_its_defaults() {
    let c = parse(GOOD, Path::new("lb.toml")).expect("good config");
    assert_eq!(c.agent.interfaces, ["eth0"]);
    assert_eq!(c.agent.xdp_mode, AttachMode::Auto);
    assert_eq!(c.agent.pin_path, Path::new(defaults::PIN_PATH));
    assert_eq!(c.agent.flow_table_size, defaults::FLOW_TABLE_SIZE);
    let v = &c.vips[0];
    assert_eq!(
        (v.protocol, v.forwarding, v.on_no_backend),
        (Protocol::Tcp, Forwarding::Nat, NoBackend::Reset)
    );
    assert_eq!(v.check.kind, CheckKind::Https);
    assert_eq!(
        (v.check.interval, v.check.fastinter, v.check.downinter),
        (
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1)
        )
    );
    assert_eq!(v.check.timeout, Duration::from_secs(1));
    assert_eq!((v.check.rise, v.check.fall), (3, 2));
    assert_eq!(v.check.expect_status, [200]);
    assert!(!v.check.tls_verify);
    assert_eq!(
        v.backends[0].port, 6443,
        "backend port defaults to the VIP's"
    );
    assert_eq!(
        (v.backends[0].weight, v.backends[0].state),
        (1, AdminState::Enabled)
    );
    assert_eq!(
        (v.backends[1].weight, v.backends[1].state),
        (2, AdminState::Drain)
    );
    let services = c.services(|_, _| true);
    assert_eq!(services[0].backends.len(), 2);
}

#[test]
fn unknown_keys_are_errors() {
    one_error(
        &good_with("fall = 2", "fall = 2\nintreval = \"1s\""),
        16,
        "vip[0].check.intreval",
        "unknown field",
    );
    one_error(
        &good_with("[agent]", "[agent]\nmystery = 1"),
        3,
        "agent.mystery",
        "unknown field",
    );
}

#[test]
fn syntax_and_type_errors_have_lines() {
    let e = errors(&good_with("port = 6443", "port = \"6443\""));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 8, "{}", e[0]);
    let e = errors("[agent\ninterfaces = []");
    assert_eq!(e[0].line, 1, "{}", e[0]);
}

#[test]
fn each_bad_value_names_its_key_and_line() {
    one_error(
        &good_with("port = 6443", "port = 70000"),
        8,
        "vip[0].port",
        "0..=65535",
    );
    one_error(
        &good_with("address = \"198.18.1.10\"", "address = \"198.18.1.10/32\""),
        7,
        "vip[0].address",
        "IPv4 or IPv6 address",
    );
    one_error(
        &good_with("type = \"https\"", "type = \"icmp\""),
        12,
        "vip[0].check.type",
        "\"tcp\", \"http\", \"https\", \"tls\", \"none\"",
    );
    one_error(
        &good_with("interval = \"1s\"", "interval = \"1 second\""),
        14,
        "vip[0].check.interval",
        "a duration like",
    );
    one_error(
        &good_with("fall = 2", "fall = 0"),
        15,
        "vip[0].check.fall",
        "1..=100",
    );
    one_error(
        &good_with("path = \"/readyz\"", "path = \"readyz\""),
        13,
        "vip[0].check.path",
        "starting with '/'",
    );
    one_error(
        &good_with("weight = 2", "weight = 5000"),
        24,
        "vip[0].backend[1].weight",
        "0..=1000",
    );
    one_error(
        &good_with("state = \"drain\"", "state = \"paused\""),
        25,
        "vip[0].backend[1].state",
        "\"enabled\", \"drain\", \"disabled\"",
    );
    one_error(
        &good_with("address = \"198.18.1.11\"", "address = \"fd00::11\""),
        20,
        "vip[0].backend[0].address",
        "address family",
    );
    one_error(
        &good_with("interfaces = [\"eth0\"]", "interfaces = [\"eth0/1\"]"),
        3,
        "agent.interfaces[0]",
        "not an interface name",
    );
}

#[test]
fn missing_required_keys_are_reported_where_they_belong() {
    one_error(
        &good_with("snat_address = \"198.18.1.2\"\n", ""),
        5,
        "vip[0].snat_address",
        "needs the LB address",
    );
    one_error(
        &good_with("interfaces = [\"eth0\"]\n", ""),
        2,
        "agent.interfaces",
        "missing",
    );
    one_error(
        &good_with("name = \"k8s-api\"\n", ""),
        5,
        "vip[0].name",
        "missing",
    );
}

#[test]
fn combinations_are_checked() {
    // DSR cannot change ports.
    let dsr = good_with("snat_address = \"198.18.1.2\"", "forwarding = \"dsr\"").replace(
        "address = \"198.18.1.11\"",
        "address = \"198.18.1.11\"\nport = 8443",
    );
    one_error(&dsr, 21, "vip[0].backend[0].port", "DSR");
    // UDP cannot reset.
    one_error(
        &good_with(
            "port = 6443",
            "port = 53\nprotocol = \"udp\"\non_no_backend = \"reset\"",
        )
        .replace("type = \"https\"\npath = \"/readyz\"", "type = \"tcp\"")
        .replace("tls_verify = false\n", ""),
        10,
        "vip[0].on_no_backend",
        "udp",
    );
    // TLS options need https.
    one_error(
        &good_with("type = \"https\"", "type = \"http\""),
        17,
        "vip[0].check.tls_verify",
        "only applies to type = \"https\"",
    );
    // Two services on the same VIP, port and protocol.
    let twice = format!(
        "{GOOD}\n[[vip]]\nname = \"again\"\naddress = \"198.18.1.10\"\nport = 6443\nsnat_address = \"198.18.1.2\"\n"
    );
    one_error(&twice, 30, "vip[1].port", "already a service");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = good_with("port = 6443", "port = -1")
        .replace("fall = 2", "fall = 0")
        .replace("weight = 2", "weight = -3");
    let keys: Vec<String> = errors(&text).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "vip[0].port",
            "vip[0].check.fall",
            "vip[0].backend[1].weight"
        ]
    );
}

#[test]
fn socket_balancing_and_forwarding_keys() {
    let c = parse(GOOD, Path::new("lb.toml")).expect("good config");
    let s = c.agent.socket_lb.expect("on by default");
    assert_eq!(s.cgroup, None);
    assert_eq!(s.scope, SocketScope::ThisNamespace);
    assert!(c.agent.manage_forwarding);
    let text = good_with(
        "interfaces = [\"eth0\"]",
        "interfaces = [\"eth0\"]\nsocket_lb_cgroup = \"/host/cgroup\"\nsocket_lb_namespaces = \"all\"\nmanage_forwarding = false",
    );
    let c = parse(&text, Path::new("lb.toml")).expect("config");
    let s = c.agent.socket_lb.expect("on");
    assert_eq!(s.cgroup.as_deref(), Some(Path::new("/host/cgroup")));
    assert_eq!(s.scope, SocketScope::Every);
    assert!(!c.agent.manage_forwarding);
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nsocket_lb_namespaces = \"mine\"",
        ),
        4,
        "agent.socket_lb_namespaces",
        "expected one of \"own\", \"all\"",
    );
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nsocket_lb = false\nsocket_lb_cgroup = \"/x\"",
        ),
        5,
        "agent.socket_lb_cgroup",
        "only applies with socket_lb = true",
    );
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nsocket_lb_cgroup = \"cgroup\"",
        ),
        4,
        "agent.socket_lb_cgroup",
        "expected an absolute path",
    );
}

const NODE_LOCAL: &str = r#"
[[vip]]
name = "k8s-api-local"
address = "127.0.0.1"
port = 6443

[[vip.backend]]
address = "198.18.1.11"
"#;

#[test]
fn node_local_vips_need_no_snat_and_cannot_be_dsr() {
    let c = parse(&format!("{GOOD}{NODE_LOCAL}"), Path::new("lb.toml")).expect("config");
    let v = &c.vips[1];
    assert!(v.node_local() && !c.vips[0].node_local());
    assert!(v.snat_addresses.is_empty());
    let v6 = NODE_LOCAL
        .replace("127.0.0.1", "::1")
        .replace("198.18.1.11", "fd00::11");
    let c = parse(&format!("{GOOD}{v6}"), Path::new("lb.toml")).expect("config");
    assert!(c.vips[1].node_local());

    let dsr = NODE_LOCAL.replace("port = 6443", "port = 6443\nforwarding = \"dsr\"");
    one_error(
        &format!("{GOOD}{dsr}"),
        31,
        "vip[1].forwarding",
        "node-local VIP (loopback address)",
    );
    let snat = NODE_LOCAL.replace("port = 6443", "port = 6443\nsnat_address = \"127.0.0.1\"");
    one_error(
        &format!("{GOOD}{snat}"),
        31,
        "vip[1].snat_address",
        "no SNAT address is used",
    );
    let off = good_with(
        "interfaces = [\"eth0\"]",
        "interfaces = [\"eth0\"]\nsocket_lb = false",
    );
    one_error(
        &format!("{off}{NODE_LOCAL}"),
        30,
        "vip[1].address",
        "socket_lb = false",
    );
}

#[test]
fn a_loopback_backend_of_a_network_vip_is_refused() {
    one_error(
        &good_with("address = \"198.18.1.11\"", "address = \"127.0.0.1\""),
        20,
        "vip[0].backend[0].address",
        "loopback address",
    );
    // Behind a node-local VIP it is fine (this node's sockets reach it).
    let text = format!("{GOOD}{}", NODE_LOCAL.replace("198.18.1.11", "127.0.0.2"));
    assert!(parse(&text, Path::new("lb.toml")).is_ok());
}

#[test]
fn timeouts_come_from_the_agent_and_a_vip_overrides_them() {
    let text = good_with(
        "interfaces = [\"eth0\"]",
        "interfaces = [\"eth0\"]\n[agent.timeouts]\ntcp_established = \"150m\"\nudp = \"10s\"",
    );
    let text = text.replacen(
        "[vip.check]",
        "[vip.timeouts]\nudp = \"5s\"\ntcp_time_wait = \"90s\"\n\n[vip.check]",
        1,
    );
    let c = parse(&text, Path::new("lb.toml")).expect("good config");
    let t = c.vips[0].timeouts;
    assert_eq!(t.tcp_established, Duration::from_secs(9000), "from [agent]");
    assert_eq!(t.udp, Duration::from_secs(5), "the VIP's own");
    assert_eq!(t.tcp_time_wait, Duration::from_secs(90));
    assert_eq!(t.tcp_syn, Duration::from_secs(10), "the default");
    assert_eq!(c.agent.timeouts.udp, Duration::from_secs(10));
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\n[agent.timeouts]\nudp = \"soon\"",
        ),
        5,
        "agent.timeouts.udp",
        "soon",
    );
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\n[agent.timeouts]\nudp_forever = \"1s\"",
        ),
        5,
        "agent.timeouts.udp_forever",
        "unknown field",
    );
}

#[test]
fn snat_port_ranges_and_addresses_are_checked() {
    let c = parse(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nsnat_port_range = \"2000-2999\"",
        ),
        Path::new("lb.toml"),
    )
    .expect("good config");
    assert_eq!(c.agent.snat_ports, 2000..=2999);
    for bad in ["\"2000\"", "\"3000-2000\"", "\"0-100\"", "\"1-70000\""] {
        one_error(
            &good_with(
                "interfaces = [\"eth0\"]",
                &format!("interfaces = [\"eth0\"]\nsnat_port_range = {bad}"),
            ),
            4,
            "agent.snat_port_range",
            "MIN-MAX",
        );
    }
    let c = parse(
        &good_with(
            "snat_address = \"198.18.1.2\"",
            "snat_addresses = [\"198.18.1.2\", \"198.18.1.3\"]",
        ),
        Path::new("lb.toml"),
    )
    .expect("good config");
    assert_eq!(c.vips[0].snat_addresses.len(), 2);
}

#[test]
fn a_flow_table_smaller_than_one_backends_ports_is_refused() {
    // 16,384 entries, but one backend may take 31,744 ports (the default range).
    one_error(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nflow_table_size = 16384",
        ),
        4,
        "agent.flow_table_size",
        "raise flow_table_size to at least 31744",
    );
    // Narrowing the range fits it.
    parse(
        &good_with(
            "interfaces = [\"eth0\"]",
            "interfaces = [\"eth0\"]\nflow_table_size = 16384\nsnat_port_range = \"1024-16383\"",
        ),
        Path::new("lb.toml"),
    )
    .expect("fits");
}

#[test]
fn flow_sync_needs_peers_and_a_long_enough_key() {
    let with = |sync: &str| {
        good_with(
            "interfaces = [\"eth0\"]\n",
            &format!("interfaces = [\"eth0\"]\n{sync}"),
        )
    };
    let c = parse(
        &with("on_sigterm = \"restart\"\n[agent.sync]\npeers = [\"198.18.1.2\"]\nkey = \"0123456789abcdef\"\n"),
        Path::new("lb.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = c.agent.sync.expect("sync");
    assert_eq!((s.port, s.min_age), (4739, Duration::from_secs(1)));
    assert_eq!(c.agent.on_sigterm, OnSigterm::Restart);
    one_error(
        &with("[agent.sync]\npeers = [\"198.18.1.2\"]\nkey = \"short\"\n"),
        6,
        "agent.sync.key",
        "5 bytes, expected at least 16",
    );
    one_error(
        &with("[agent.sync]\nkey = \"0123456789abcdef\"\n"),
        4,
        "agent.sync.peers",
        "missing",
    );
    one_error(
        &with("on_sigterm = \"later\"\n"),
        4,
        "agent.on_sigterm",
        "\"handover\"",
    );
}

#[test]
fn log_format_is_text_or_json() {
    let with = |key: &str| {
        good_with(
            "interfaces = [\"eth0\"]\n",
            &format!("interfaces = [\"eth0\"]\n{key}"),
        )
    };
    let text = parse(&with(""), Path::new("lb.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text.agent.log_format, LogFormat::Text);
    let json = parse(&with("log_format = \"json\"\n"), Path::new("lb.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json.agent.log_format, LogFormat::Json);
    one_error(
        &with("log_format = \"logfmt\"\n"),
        4,
        "agent.log_format",
        "got \"logfmt\", expected one of \"text\", \"json\"",
    );
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert!("JSON".parse::<LogFormat>().is_err());
}
