//! Routed VIPs: a `[[vip]]` with `route_by` is served by the proxy path, which
//! picks one of its `[[vip.pool]]`s by the TLS server name (`"sni"`) or HTTP host
//! (`"host"`) of each connection. Each pool becomes a service of its own, named
//! `<vip>/<pool>` (checked, drained and shown like any other, not programmed into
//! the data plane); the listener's settings become a `RoutedVip`.

use std::{collections::HashSet, net::IpAddr, time::Duration};

use super::{
    defaults as d,
    locate::KeyPath,
    model::VipConfig,
    raw,
    validate::{
        Problems, backend as backend_of, check as check_of, choice, dur, int_in, ip, name_of,
    },
};
use crate::{
    names::Pattern,
    proxy::{RouteBy, Version},
    service::{Forwarding, NoBackend, Protocol},
    timeouts::FlowTimeouts,
};

/// A routed VIP's listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedVip {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub by: RouteBy,
    /// Its pools, in order: each the service `<name>/<pool>`.
    pub pools: Vec<RoutedPool>,
    /// When nothing matches: the index of a pool, or `None` (reset).
    pub otherwise: Option<usize>,
    pub inspect_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedPool {
    pub name: String,
    /// The service's name (`<vip>/<pool>`).
    pub service: String,
    pub names: Vec<Pattern>,
    pub send_proxy: Option<Version>,
}

/// Marks a service as a routed VIP's pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOf {
    pub vip: String,
}

/// Checks a `[[vip]]` with `route_by`; its pools as services and the listener.
pub(super) fn vip(
    p: &mut Problems,
    at: &KeyPath,
    v: &raw::Vip,
    base: FlowTimeouts,
) -> Option<(RoutedVip, Vec<VipConfig>)> {
    let name = name_of(p, at, v.name.as_ref());
    let by = match v.route_by.as_deref() {
        Some(_) => choice(
            p,
            &at.key("route_by"),
            v.route_by.as_deref(),
            "sni",
            &[("sni", RouteBy::Sni), ("host", RouteBy::Host)],
        ),
        None => {
            p.add(
                &at.key("route_by"),
                "missing: a [[vip]] with pools routes by \"sni\" or \"host\"",
            );
            None
        }
    };
    let address = ip(p, &at.key("address"), v.address.as_deref());
    if let Some(a) = address
        && a.is_loopback()
    {
        p.add(
            &at.key("address"),
            format!("{a} is a loopback address: a routed VIP takes connections from the network"),
        );
    }
    let port = match v.port {
        Some(n) => int_in(p, &at.key("port"), n, 1, 65535, "a port").map(|n| n as u16),
        None => {
            p.add(&at.key("port"), "missing: a routed VIP listens on one port");
            None
        }
    };
    // What belongs to the data plane's VIPs has no meaning here.
    let not_here = [
        (
            "protocol",
            v.protocol.is_some() && v.protocol.as_deref() != Some("tcp"),
        ),
        ("forwarding", v.forwarding.is_some()),
        ("snat_address", v.snat_address.is_some()),
        ("snat_addresses", v.snat_addresses.is_some()),
        ("on_no_backend", v.on_no_backend.is_some()),
        ("timeouts", v.timeouts.is_some()),
        ("check", v.check.is_some()),
        ("backend", !v.backend.is_empty()),
    ];
    for (key, given) in not_here {
        if given {
            p.add(
                &at.key(key),
                format!(
                    "a routed VIP (route_by) is served by the proxy path: `{key}` does not \
                     apply (checks and backends go in its [[vip.pool]]s; it is TCP)"
                ),
            );
        }
    }
    let inspect_timeout = dur(
        p,
        &at.key("inspect_timeout"),
        v.inspect_timeout.as_deref(),
        d::ROUTED_INSPECT_TIMEOUT,
    );
    let connect_timeout = dur(
        p,
        &at.key("connect_timeout"),
        v.connect_timeout.as_deref(),
        d::ROUTED_CONNECT_TIMEOUT,
    );
    let idle_timeout = dur(
        p,
        &at.key("idle_timeout"),
        v.idle_timeout.as_deref(),
        d::ROUTED_IDLE_TIMEOUT,
    );
    let max_connections = match v.max_connections {
        Some(n) => {
            int_in(p, &at.key("max_connections"), n, 1, 1_000_000, "a count").map(|n| n as u32)
        }
        None => Some(d::ROUTED_MAX_CONNECTIONS),
    };
    if v.pool.is_empty() {
        p.add(
            &at.key("pool"),
            "missing: a routed VIP needs at least one [[vip.pool]]",
        );
    }
    let mut pools = Vec::new();
    let mut services = Vec::new();
    let mut pool_names = HashSet::new();
    let mut patterns = HashSet::new();
    for (i, raw_pool) in v.pool.iter().enumerate() {
        let pat = at.key("pool").index(i);
        let pool_name = name_of(p, &pat, raw_pool.name.as_ref());
        if let Some(n) = &pool_name
            && !pool_names.insert(n.clone())
        {
            p.add(&pat.key("name"), format!("\"{n}\" is used by another pool"));
        }
        let mut names = Vec::new();
        for (j, s) in raw_pool.names.iter().enumerate() {
            match Pattern::parse(s) {
                Ok(pattern) => {
                    if !patterns.insert(pattern.clone()) {
                        p.add(
                            &pat.key("names").index(j),
                            format!("{pattern} is routed by another pool too"),
                        );
                    }
                    names.push(pattern);
                }
                Err(why) => p.add(&pat.key("names").index(j), why),
            }
        }
        let send_proxy = match raw_pool.send_proxy.as_deref() {
            None => Some(None),
            Some(_) => choice(
                p,
                &pat.key("send_proxy"),
                raw_pool.send_proxy.as_deref(),
                "v2",
                &[("v1", Version::V1), ("v2", Version::V2)],
            )
            .map(Some),
        };
        let check = check_of(p, &pat.key("check"), raw_pool.check.as_ref());
        let mut backends = Vec::new();
        let mut seen = HashSet::new();
        for (j, b) in raw_pool.backend.iter().enumerate() {
            let bat = pat.key("backend").index(j);
            if b.port.is_none() {
                p.add(&bat.key("port"), "missing: a pool's backend needs a port");
            }
            if let Some(b) = backend_of(p, &bat, b, address, port, Some(Forwarding::Nat)) {
                if !seen.insert((b.address, b.port)) {
                    p.add(
                        &bat.key("address"),
                        format!("{}:{} is listed twice", b.address, b.port),
                    );
                }
                backends.push(b);
            }
        }
        if raw_pool.backend.len() > lb_common::DEFAULT_MAX_BACKENDS as usize {
            p.add(
                &pat.key("backend"),
                format!(
                    "{} backends, at most {} in a pool",
                    raw_pool.backend.len(),
                    lb_common::DEFAULT_MAX_BACKENDS
                ),
            );
        }
        if raw_pool.backend.is_empty() {
            p.add(
                &pat.key("backend"),
                "missing: a pool needs a [[vip.pool.backend]]",
            );
        }
        let (Some(vip_name), Some(pool_name), Some(send_proxy), Some(check), Some(address)) =
            (&name, pool_name, send_proxy, check, address)
        else {
            continue;
        };
        let service = format!("{vip_name}/{pool_name}");
        services.push(VipConfig {
            name: service.clone(),
            address,
            port: port.unwrap_or(0),
            protocol: Protocol::Tcp,
            // Not programmed: nothing to forward or translate.
            forwarding: Forwarding::Dsr,
            snat_addresses: Vec::new(),
            on_no_backend: NoBackend::Reset,
            all_backups: false,
            timeouts: base,
            check,
            backends,
            routed: Some(PoolOf {
                vip: vip_name.clone(),
            }),
        });
        pools.push(RoutedPool {
            name: pool_name,
            service,
            names,
            send_proxy,
        });
    }
    let otherwise = match v.otherwise.as_deref() {
        None | Some("reset") => Some(None),
        Some(pool) => match pools.iter().position(|x| x.name == pool) {
            Some(i) => Some(Some(i)),
            None => {
                p.add(
                    &at.key("otherwise"),
                    format!("got \"{pool}\", expected \"reset\" or the name of one of its pools"),
                );
                None
            }
        },
    };
    for (i, pool) in pools.iter().enumerate() {
        if pool.names.is_empty() && otherwise != Some(Some(i)) {
            p.add(
                &at.key("pool").index(i).key("names"),
                "missing: a pool without names is reached only as `otherwise`",
            );
        }
    }
    Some((
        RoutedVip {
            name: name?,
            address: address?,
            port: port?,
            by: by?,
            pools,
            otherwise: otherwise?,
            inspect_timeout: inspect_timeout?,
            connect_timeout: connect_timeout?,
            idle_timeout: idle_timeout?,
            max_connections: max_connections?,
        },
        services,
    ))
}
