//! Checks every value of the raw file and fills in defaults. All problems are
//! collected (not just the first), each with its key path.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    defaults as d, duration,
    locate::KeyPath,
    model::{
        AdminState, AgentConfig, BackendConfig, CheckConfig, CheckKind, Config, LogFormat,
        OnSigterm, SocketLb, StatsAuth, SyncConfig, VipConfig,
    },
    raw,
};
use crate::{
    service::{AttachMode, Forwarding, NoBackend, Protocol, SocketScope},
    timeouts::FlowTimeouts,
};

/// Problems found so far: (key path, what is wrong / expected).
#[derive(Default)]
pub struct Problems(pub Vec<(KeyPath, String)>);

impl Problems {
    pub(super) fn add(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.0.push((at.clone(), message.into()));
    }
}

/// One of a fixed set of words.
pub(super) fn choice<T: Copy>(
    p: &mut Problems,
    at: &KeyPath,
    value: Option<&str>,
    default: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let v = value.unwrap_or(default);
    match options.iter().find(|(name, _)| *name == v) {
        Some((_, t)) => Some(*t),
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            p.add(
                at,
                format!("got \"{v}\", expected one of {}", names.join(", ")),
            );
            None
        }
    }
}

pub(super) fn ip(p: &mut Problems, at: &KeyPath, value: Option<&str>) -> Option<IpAddr> {
    let Some(v) = value else {
        p.add(at, "missing: expected an IPv4 or IPv6 address");
        return None;
    };
    match v.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                at,
                format!("got \"{v}\", expected an IPv4 or IPv6 address (no prefix length)"),
            );
            None
        }
    }
}

pub(super) fn int_in(
    p: &mut Problems,
    at: &KeyPath,
    value: i64,
    lo: i64,
    hi: i64,
    what: &str,
) -> Option<i64> {
    if (lo..=hi).contains(&value) {
        Some(value)
    } else {
        p.add(at, format!("got {value}, expected {what} in {lo}..={hi}"));
        None
    }
}

pub(super) fn dur(
    p: &mut Problems,
    at: &KeyPath,
    value: Option<&str>,
    default: Duration,
) -> Option<Duration> {
    let Some(v) = value else {
        return Some(default);
    };
    match duration::parse(v) {
        Some(x) if !x.is_zero() => Some(x),
        Some(_) => {
            p.add(at, "expected a duration above zero");
            None
        }
        None => {
            p.add(at, format!("got \"{v}\", expected {}", duration::EXPECTED));
            None
        }
    }
}

fn abs_path(p: &mut Problems, at: &KeyPath, value: Option<&str>, default: &str) -> Option<PathBuf> {
    let v = value.unwrap_or(default);
    if Path::new(v).is_absolute() {
        Some(PathBuf::from(v))
    } else {
        p.add(at, format!("got \"{v}\", expected an absolute path"));
        None
    }
}

/// `[*.timeouts]`: each key given replaces the one of `base`.
fn timeouts(
    p: &mut Problems,
    at: &KeyPath,
    t: Option<&raw::Timeouts>,
    base: FlowTimeouts,
) -> FlowTimeouts {
    let Some(t) = t else {
        return base;
    };
    let mut one = |key: &str, v: &Option<String>, default| {
        dur(p, &at.key(key), v.as_deref(), default).unwrap_or(default)
    };
    FlowTimeouts {
        tcp_syn: one("tcp_syn", &t.tcp_syn, base.tcp_syn),
        tcp_established: one("tcp_established", &t.tcp_established, base.tcp_established),
        tcp_closing: one("tcp_closing", &t.tcp_closing, base.tcp_closing),
        tcp_time_wait: one("tcp_time_wait", &t.tcp_time_wait, base.tcp_time_wait),
        tcp_reset: one("tcp_reset", &t.tcp_reset, base.tcp_reset),
        udp: one("udp", &t.udp, base.udp),
        udp_replied: one("udp_replied", &t.udp_replied, base.udp_replied),
    }
}

/// `"MIN-MAX"`, ports.
fn port_range(
    p: &mut Problems,
    at: &KeyPath,
    v: Option<&str>,
) -> Option<std::ops::RangeInclusive<u16>> {
    let Some(v) = v else {
        return Some(d::SNAT_PORT_RANGE.0..=d::SNAT_PORT_RANGE.1);
    };
    let parsed = v
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((a, b)) if a >= 1 && a <= b => Some(a..=b),
        _ => {
            p.add(
                at,
                format!("got \"{v}\", expected \"MIN-MAX\" with 1 <= MIN <= MAX <= 65535"),
            );
            None
        }
    }
}

/// The whole file.
pub fn file(p: &mut Problems, f: &raw::File) -> Option<Config> {
    let root = KeyPath::default();
    let agent = match &f.agent {
        Some(a) => agent(p, &root.key("agent"), a),
        None => {
            p.add(
                &root.key("agent"),
                "missing: expected an [agent] table with `interfaces`",
            );
            None
        }
    };
    let mut vips = Vec::new();
    let mut names = HashSet::new();
    let mut services = HashSet::new();
    let base = agent.as_ref().map_or_else(d::timeouts, |a| a.timeouts);
    let mut routed = Vec::new();
    // The [[vip]] each entry of `vips` came from (a routed VIP gives several).
    let mut from = Vec::new();
    for (i, v) in f.vip.iter().enumerate() {
        let at = root.key("vip").index(i);
        if v.route_by.is_some() || !v.pool.is_empty() {
            let Some((listener, pools)) = super::routed::vip(p, &at, v, base) else {
                continue;
            };
            if !services.insert((listener.address, listener.port, Protocol::Tcp)) {
                p.add(
                    &at.key("port"),
                    format!(
                        "{} port {} Tcp is already a service of another [[vip]]",
                        listener.address, listener.port
                    ),
                );
            }
            for name in std::iter::once(&listener.name).chain(pools.iter().map(|s| &s.name)) {
                if !names.insert(name.clone()) {
                    p.add(
                        &at.key("name"),
                        format!("\"{name}\" is used by another [[vip]]"),
                    );
                }
            }
            from.extend(std::iter::repeat_n(i, pools.len()));
            vips.extend(pools);
            routed.push((i, listener));
            continue;
        }
        if let Some(v) = vip(p, &at, v, base) {
            if !names.insert(v.name.clone()) {
                p.add(
                    &at.key("name"),
                    format!("\"{}\" is used by another [[vip]]", v.name),
                );
            }
            if !services.insert((v.address, v.port, v.protocol)) {
                p.add(
                    &at.key("port"),
                    format!(
                        "{} port {} {:?} is already a service of another [[vip]]",
                        v.address, v.port, v.protocol
                    ),
                );
            }
            from.push(i);
            vips.push(v);
        }
    }
    // An every-port service of the address would take the routed port's packets
    // in the data plane before they reach the proxy.
    for (i, r) in &routed {
        if let Some(v) = vips.iter().find(|v| {
            v.routed.is_none()
                && v.address == r.address
                && v.port == 0
                && v.protocol == Protocol::Tcp
        }) {
            p.add(
                &root.key("vip").index(*i).key("address"),
                format!(
                    "VIP {} takes every TCP port of {} in the data plane, port {} included: \
                     give the routed VIP another address, or that VIP explicit ports",
                    v.name, r.address, r.port
                ),
            );
        }
    }
    let routed: Vec<_> = routed.into_iter().map(|(_, r)| r).collect();
    // Node-local VIPs exist only through the socket programs.
    let socket_lb_off = f.agent.as_ref().and_then(|a| a.socket_lb) == Some(false);
    if socket_lb_off {
        for (v, &i) in vips.iter().zip(&from) {
            if v.node_local() {
                p.add(
                    &root.key("vip").index(i).key("address"),
                    format!(
                        "{} is node-local (loopback), served by the socket programs alone, \
                         but [agent] socket_lb = false",
                        v.address
                    ),
                );
            }
        }
    }
    if let Some(a) = &agent {
        table_holds_ports(p, &root, a, &vips);
    }
    let vrrp = super::vrrp::instances(p, &root, &f.vrrp, &vips);
    Some(Config {
        agent: agent?,
        vips,
        routed,
        vrrp,
    })
}

/// The NAT table (`flow_table_size` entries) must hold every port of one backend of
/// each NAT VIP: a smaller table evicts live bindings (breaking their connections)
/// before the ports run out, so the capacity the config states could never be had.
fn table_holds_ports(p: &mut Problems, root: &KeyPath, a: &AgentConfig, vips: &[VipConfig]) {
    let ports = u64::from(*a.snat_ports.end() - *a.snat_ports.start()) + 1;
    for v in vips
        .iter()
        .filter(|v| v.forwarding == Forwarding::Nat && !v.node_local())
    {
        let per_backend = v.snat_addresses.len() as u64 * ports;
        if per_backend > u64::from(a.flow_table_size) {
            p.add(
                &root.key("agent").key("flow_table_size"),
                format!(
                    "{} is smaller than VIP {}'s concurrent flows per backend, {per_backend} \
                     ({} SNAT address(es) x {ports} ports of snat_port_range): live NAT \
                     bindings would be evicted before its ports run out; raise \
                     flow_table_size to at least {per_backend}, or narrow snat_port_range",
                    a.flow_table_size,
                    v.name,
                    v.snat_addresses.len()
                ),
            );
        }
    }
}

fn agent(p: &mut Problems, at: &KeyPath, a: &raw::Agent) -> Option<AgentConfig> {
    let interfaces = match &a.interfaces {
        Some(list) if !list.is_empty() => {
            for (i, name) in list.iter().enumerate() {
                let bad = name.is_empty()
                    || name.len() > 15
                    || name.contains(['/', ' ', ':'])
                    || name == "."
                    || name == "..";
                if bad {
                    p.add(
                        &at.key("interfaces").index(i),
                        format!("\"{name}\" is not an interface name"),
                    );
                }
            }
            Some(list.clone())
        }
        _ => {
            p.add(
                &at.key("interfaces"),
                "missing: expected a list of interface names, e.g. [\"eth0\"]",
            );
            None
        }
    };
    let xdp_mode = choice(
        p,
        &at.key("xdp_mode"),
        a.xdp_mode.as_deref(),
        d::XDP_MODE,
        &[
            ("auto", AttachMode::Auto),
            ("native", AttachMode::Native),
            ("generic", AttachMode::Generic),
        ],
    );
    let pin_path = abs_path(p, &at.key("pin_path"), a.pin_path.as_deref(), d::PIN_PATH);
    let api = a.api_listen.as_deref().unwrap_or(d::API_LISTEN);
    let api_listen = match api.parse::<SocketAddr>() {
        Ok(s) => Some(s),
        Err(_) => {
            p.add(
                &at.key("api_listen"),
                format!("got \"{api}\", expected address:port, e.g. \"127.0.0.1:9100\""),
            );
            None
        }
    };
    let control_socket = abs_path(
        p,
        &at.key("control_socket"),
        a.control_socket.as_deref(),
        d::CONTROL_SOCKET,
    );
    let flow_table_size = match a.flow_table_size {
        Some(n) => int_in(
            p,
            &at.key("flow_table_size"),
            n,
            1024,
            1 << 26,
            "a number of flows",
        )
        .map(|n| n as u32),
        None => Some(d::FLOW_TABLE_SIZE),
    };
    let stats_auth = a.stats_auth.as_ref().and_then(|s| {
        let at = at.key("stats_auth");
        let mut need = |k: &str, v: &Option<String>| match v {
            Some(x) if !x.is_empty() => Some(x.clone()),
            _ => {
                p.add(&at.key(k), "missing: expected a non-empty string");
                None
            }
        };
        let user = need("user", &s.user);
        let password = need("password", &s.password);
        Some(StatsAuth {
            user: user?,
            password: password?,
        })
    });
    let socket_lb = match a.socket_lb.unwrap_or(d::SOCKET_LB) {
        true => {
            let scope = choice(
                p,
                &at.key("socket_lb_namespaces"),
                a.socket_lb_namespaces.as_deref(),
                d::SOCKET_LB_NAMESPACES,
                &[
                    ("own", SocketScope::ThisNamespace),
                    ("all", SocketScope::Every),
                ],
            );
            let cgroup = a
                .socket_lb_cgroup
                .as_deref()
                .and_then(|c| abs_path(p, &at.key("socket_lb_cgroup"), Some(c), "/"));
            scope.map(|scope| SocketLb { cgroup, scope })
        }
        false => {
            for (key, set) in [
                ("socket_lb_cgroup", a.socket_lb_cgroup.is_some()),
                ("socket_lb_namespaces", a.socket_lb_namespaces.is_some()),
            ] {
                if set {
                    p.add(&at.key(key), "only applies with socket_lb = true");
                }
            }
            None
        }
    };
    let snat_ports = port_range(p, &at.key("snat_port_range"), a.snat_port_range.as_deref());
    let sync = a
        .sync
        .as_ref()
        .and_then(|raw| sync(p, &at.key("sync"), raw));
    let on_sigterm = choice(
        p,
        &at.key("on_sigterm"),
        a.on_sigterm.as_deref(),
        d::ON_SIGTERM,
        &[
            ("handover", OnSigterm::Handover),
            ("restart", OnSigterm::Restart),
        ],
    );
    let log_format = choice(
        p,
        &at.key("log_format"),
        a.log_format.as_deref(),
        d::LOG_FORMAT,
        &LogFormat::NAMES,
    );
    let timeouts = timeouts(p, &at.key("timeouts"), a.timeouts.as_ref(), d::timeouts());
    Some(AgentConfig {
        log_format: log_format?,
        dataplane_log: a.dataplane_log.unwrap_or(d::DATAPLANE_LOG),
        socket_lb,
        manage_forwarding: a.manage_forwarding.unwrap_or(d::MANAGE_FORWARDING),
        snat_ports: snat_ports?,
        timeouts,
        on_sigterm: on_sigterm?,
        sync,
        interfaces: interfaces?,
        xdp_mode: xdp_mode?,
        pin_path: pin_path?,
        api_listen: api_listen?,
        control_socket: control_socket?,
        flow_table_size: flow_table_size?,
        stats_auth,
    })
}

/// `[agent.sync]`: peers (addresses, at least one), a key of at least
/// `SYNC_KEY_MIN` bytes, the port, the minimum age.
fn sync(p: &mut Problems, at: &KeyPath, raw: &raw::Sync) -> Option<SyncConfig> {
    let peers: Vec<IpAddr> = match &raw.peers {
        Some(list) if !list.is_empty() => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| ip(p, &at.key("peers").index(i), Some(s)))
            .collect(),
        _ => {
            p.add(
                &at.key("peers"),
                "missing: expected the peers' addresses (the other LB nodes)",
            );
            Vec::new()
        }
    };
    if peers.iter().any(|a| a.is_ipv4() != peers[0].is_ipv4()) {
        p.add(
            &at.key("peers"),
            "peers of both address families: flow sync uses one socket, give one family",
        );
    }
    let key = match &raw.key {
        Some(k) if k.len() >= d::SYNC_KEY_MIN => Some(k.as_bytes().to_vec()),
        Some(k) => {
            p.add(
                &at.key("key"),
                format!(
                    "{} bytes, expected at least {} (the same on every node; e.g. `openssl rand -hex 32`)",
                    k.len(),
                    d::SYNC_KEY_MIN
                ),
            );
            None
        }
        None => {
            p.add(
                &at.key("key"),
                "missing: expected the pre-shared key that authenticates sync messages",
            );
            None
        }
    };
    let port = match raw.port {
        Some(n) => int_in(p, &at.key("port"), n, 1, 65535, "a port").map(|n| n as u16),
        None => Some(d::SYNC_PORT),
    };
    let min_age = dur(
        p,
        &at.key("min_age"),
        raw.min_age.as_deref(),
        d::SYNC_MIN_AGE,
    );
    Some(SyncConfig {
        peers,
        key: key?,
        port: port?,
        min_age: min_age?,
    })
}

/// A `name` key: letters, digits, '-', '_' or '.'.
pub(super) fn name_of(p: &mut Problems, at: &KeyPath, name: Option<&String>) -> Option<String> {
    match name {
        Some(n)
            if !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Some(n.clone())
        }
        Some(n) => {
            p.add(
                &at.key("name"),
                format!("got \"{n}\", expected letters, digits, '-', '_' or '.'"),
            );
            None
        }
        None => {
            p.add(&at.key("name"), "missing: expected a name");
            None
        }
    }
}

fn vip(p: &mut Problems, at: &KeyPath, v: &raw::Vip, base: FlowTimeouts) -> Option<VipConfig> {
    let name = name_of(p, at, v.name.as_ref());
    // The proxy path's keys belong to routed VIPs only.
    for (key, given) in [
        ("otherwise", v.otherwise.is_some()),
        ("inspect_timeout", v.inspect_timeout.is_some()),
        ("connect_timeout", v.connect_timeout.is_some()),
        ("idle_timeout", v.idle_timeout.is_some()),
        ("max_connections", v.max_connections.is_some()),
    ] {
        if given {
            p.add(
                &at.key(key),
                "only for a routed VIP (route_by = \"sni\" or \"host\", with [[vip.pool]]s)",
            );
        }
    }
    let address = ip(p, &at.key("address"), v.address.as_deref());
    let port = match v.port {
        Some(n) => {
            int_in(p, &at.key("port"), n, 0, 65535, "a port (0 = every port)").map(|n| n as u16)
        }
        None => {
            p.add(&at.key("port"), "missing: expected a port (0 = every port)");
            None
        }
    };
    let protocol = choice(
        p,
        &at.key("protocol"),
        v.protocol.as_deref(),
        d::PROTOCOL,
        &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
    );
    let forwarding = choice(
        p,
        &at.key("forwarding"),
        v.forwarding.as_deref(),
        d::FORWARDING,
        &[("nat", Forwarding::Nat), ("dsr", Forwarding::Dsr)],
    );
    let default_no_backend = match protocol {
        Some(Protocol::Udp) => d::ON_NO_BACKEND_UDP,
        _ => d::ON_NO_BACKEND_TCP,
    };
    let on_no_backend = choice(
        p,
        &at.key("on_no_backend"),
        v.on_no_backend.as_deref(),
        default_no_backend,
        &[("drop", NoBackend::Drop), ("reset", NoBackend::Reset)],
    );
    if protocol == Some(Protocol::Udp) && on_no_backend == Some(NoBackend::Reset) {
        p.add(
            &at.key("on_no_backend"),
            "\"reset\" answers TCP with a RST; a udp service can only \"drop\"",
        );
    }
    let node_local = address.is_some_and(|a| a.is_loopback());
    if node_local && forwarding == Some(Forwarding::Dsr) {
        p.add(
            &at.key("forwarding"),
            "a node-local VIP (loopback address) is served to this node's own sockets: \
             there is no packet to forward with \"dsr\"",
        );
    }
    // `snat_address = "A"` or `snat_addresses = ["A", "B"]`: one key or the other.
    let (snat_key, snat_given): (&str, Vec<&String>) = match (&v.snat_address, &v.snat_addresses) {
        (Some(one), None) => ("snat_address", vec![one]),
        (None, Some(list)) => ("snat_addresses", list.iter().collect()),
        (None, None) => ("snat_address", Vec::new()),
        (Some(_), Some(_)) => {
            p.add(
                &at.key("snat_addresses"),
                "give snat_address or snat_addresses, not both",
            );
            ("snat_addresses", Vec::new())
        }
    };
    if node_local && !snat_given.is_empty() {
        p.add(
            &at.key(snat_key),
            "a node-local VIP (loopback address) sends this node's own connects straight \
             to a backend: no SNAT address is used",
        );
    }
    if forwarding == Some(Forwarding::Nat) && !node_local {
        if snat_given.is_empty() {
            p.add(
                &at.key(snat_key),
                if v.snat_addresses.is_some() {
                    "expected at least one address: forwarding = \"nat\" needs the LB address backends reply to"
                } else {
                    "missing: forwarding = \"nat\" needs the LB address backends reply to"
                },
            );
        } else if snat_given.len() > lb_common::MAX_SNAT_ADDRS as usize {
            p.add(
                &at.key(snat_key),
                format!(
                    "{} addresses, at most {}",
                    snat_given.len(),
                    lb_common::MAX_SNAT_ADDRS
                ),
            );
        }
    }
    let mut snat_addresses = Vec::new();
    for (i, s) in snat_given.iter().enumerate() {
        let key = if snat_key == "snat_addresses" {
            at.key(snat_key).index(i)
        } else {
            at.key(snat_key)
        };
        let Some(a) = ip(p, &key, Some(s)) else {
            continue;
        };
        if let Some(vip) = address
            && vip.is_ipv4() != a.is_ipv4()
        {
            p.add(
                &key,
                format!("{a} is not of the VIP's address family ({vip})"),
            );
        }
        if snat_addresses.contains(&a) {
            p.add(&key, format!("{a} is listed twice"));
        }
        snat_addresses.push(a);
    }
    let check = check(p, &at.key("check"), v.check.as_ref());
    let mut backends = Vec::new();
    let mut seen = HashSet::new();
    for (i, b) in v.backend.iter().enumerate() {
        let bat = at.key("backend").index(i);
        if let Some(b) = backend(p, &bat, b, address, port, forwarding) {
            if !seen.insert((b.address, b.port)) {
                p.add(
                    &bat.key("address"),
                    format!("{}:{} is listed twice", b.address, b.port),
                );
            }
            backends.push(b);
        }
    }
    if let Some(c) = &check
        && c.kind != CheckKind::None
        && port == Some(0)
        && c.port.is_none()
        && backends.iter().any(|b| b.port == 0)
    {
        p.add(
            &at.key("check").key("port"),
            "missing: an every-port VIP's backends have no port to check",
        );
    }
    Some(VipConfig {
        name: name?,
        address: address?,
        port: port?,
        protocol: protocol?,
        forwarding: forwarding?,
        snat_addresses: match forwarding? {
            Forwarding::Nat if !node_local => snat_addresses,
            _ => Vec::new(),
        },
        on_no_backend: on_no_backend?,
        all_backups: v.all_backups.unwrap_or(false),
        timeouts: timeouts(p, &at.key("timeouts"), v.timeouts.as_ref(), base),
        check: check?,
        backends,
        routed: None,
    })
}

pub(super) fn check(p: &mut Problems, at: &KeyPath, c: Option<&raw::Check>) -> Option<CheckConfig> {
    let empty = raw::Check::default();
    let c = c.unwrap_or(&empty);
    let kind = choice(
        p,
        &at.key("type"),
        c.kind.as_deref(),
        d::CHECK_TYPE,
        &[
            ("tcp", CheckKind::Tcp),
            ("http", CheckKind::Http),
            ("https", CheckKind::Https),
            ("tls", CheckKind::Tls),
            ("none", CheckKind::None),
        ],
    );
    let web = matches!(kind, Some(CheckKind::Http | CheckKind::Https));
    let port = c
        .port
        .and_then(|n| int_in(p, &at.key("port"), n, 1, 65535, "a port").map(|n| n as u16));
    let path = c.path.clone().unwrap_or_else(|| d::CHECK_PATH.to_string());
    if !path.starts_with('/') {
        p.add(
            &at.key("path"),
            format!("got \"{path}\", expected a path starting with '/'"),
        );
    }
    for (key, set) in [
        ("path", c.path.is_some()),
        ("host", c.host.is_some()),
        ("expect_status", c.expect_status.is_some()),
    ] {
        // (Only once the type is known: a bad type is its own error.)
        if set && kind.is_some() && !web {
            p.add(&at.key(key), "only applies to type = \"http\" or \"https\"");
        }
    }
    for (key, set) in [
        ("tls_verify", c.tls_verify.is_some()),
        ("ca_file", c.ca_file.is_some()),
        ("sni", c.sni.is_some()),
    ] {
        if set && kind.is_some_and(|k| !k.uses_tls()) {
            p.add(&at.key(key), "only applies to type = \"https\" or \"tls\"");
        }
    }
    let expect_status = match &c.expect_status {
        Some(list) if list.is_empty() => {
            p.add(
                &at.key("expect_status"),
                "expected at least one status code",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                int_in(
                    p,
                    &at.key("expect_status").index(i),
                    *s,
                    100,
                    599,
                    "an HTTP status",
                )
                .map(|s| s as u16)
            })
            .collect(),
        None => d::CHECK_EXPECT_STATUS.to_vec(),
    };
    let interval = dur(
        p,
        &at.key("interval"),
        c.interval.as_deref(),
        d::CHECK_INTERVAL,
    );
    let fastinter = dur(
        p,
        &at.key("fastinter"),
        c.fastinter.as_deref(),
        interval.unwrap_or(d::CHECK_INTERVAL),
    );
    let downinter = dur(
        p,
        &at.key("downinter"),
        c.downinter.as_deref(),
        interval.unwrap_or(d::CHECK_INTERVAL),
    );
    let timeout = dur(
        p,
        &at.key("timeout"),
        c.timeout.as_deref(),
        d::CHECK_TIMEOUT.min(interval.unwrap_or(d::CHECK_INTERVAL)),
    );
    let mut count = |key: &str, v: Option<i64>, default: u32| match v {
        Some(n) => int_in(p, &at.key(key), n, 1, 100, "a count of checks").map(|n| n as u32),
        None => Some(default),
    };
    let rise = count("rise", c.rise, d::CHECK_RISE);
    let fall = count("fall", c.fall, d::CHECK_FALL);
    let ca_file = c.ca_file.as_ref().and_then(|f| {
        if Path::new(f).is_file() {
            Some(PathBuf::from(f))
        } else {
            p.add(
                &at.key("ca_file"),
                format!("\"{f}\" is not a readable file"),
            );
            None
        }
    });
    Some(CheckConfig {
        kind: kind?,
        port,
        path,
        host: c.host.clone(),
        expect_status,
        interval: interval?,
        fastinter: fastinter?,
        downinter: downinter?,
        timeout: timeout?,
        rise: rise?,
        fall: fall?,
        tls_verify: c.tls_verify.unwrap_or(d::CHECK_TLS_VERIFY),
        ca_file,
        sni: c.sni.clone(),
    })
}

pub(super) fn backend(
    p: &mut Problems,
    at: &KeyPath,
    b: &raw::Backend,
    vip: Option<IpAddr>,
    vip_port: Option<u16>,
    forwarding: Option<Forwarding>,
) -> Option<BackendConfig> {
    let address = ip(p, &at.key("address"), b.address.as_deref());
    if let (Some(a), Some(v)) = (address, vip)
        && a.is_ipv4() != v.is_ipv4()
    {
        p.add(
            &at.key("address"),
            format!("{a} is not of the VIP's address family ({v})"),
        );
    }
    if let (Some(a), Some(v)) = (address, vip)
        && a.is_loopback()
        && !v.is_loopback()
    {
        p.add(
            &at.key("address"),
            format!(
                "{a} is a loopback address: packets from the network to {v} cannot be \
                 handed to it (use the node's own address; it is served as a local backend)"
            ),
        );
    }
    let port = match b.port {
        Some(n) => int_in(p, &at.key("port"), n, 1, 65535, "a port").map(|n| n as u16),
        None => vip_port,
    };
    if forwarding == Some(Forwarding::Dsr)
        && let (Some(bp), Some(vp)) = (b.port, vip_port)
        && bp != i64::from(vp)
    {
        p.add(
            &at.key("port"),
            format!("got {bp}: DSR does not rewrite ports, the backend port must be the VIP's ({vp}) or left out"),
        );
    }
    let weight = match b.weight {
        Some(n) => int_in(
            p,
            &at.key("weight"),
            n,
            0,
            1000,
            "a weight (0 = no new flows)",
        )
        .map(|n| n as u32),
        None => Some(d::BACKEND_WEIGHT),
    };
    let state = choice(
        p,
        &at.key("state"),
        b.state.as_deref(),
        d::BACKEND_STATE,
        &[
            ("enabled", AdminState::Enabled),
            ("drain", AdminState::Drain),
            ("disabled", AdminState::Disabled),
        ],
    );
    Some(BackendConfig {
        address: address?,
        port: port?,
        weight: weight?,
        state: state?,
        backup: b.backup.unwrap_or(false),
    })
}
