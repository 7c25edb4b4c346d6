//! A frontend that routes by name, converted into a routed VIP: its conditional
//! `use_backend` rules on the TLS server name (mode tcp, `req_ssl_sni`) or the
//! HTTP Host (`hdr(host)`, in mode http or tcp) become pools with name patterns,
//! `default_backend` the pool for `otherwise`, `send-proxy(-v2)` of the servers
//! the pool's `send_proxy`, and the timeouts and `maxconn` the listener's.
//!
//! HAProxy takes the first rule that matches; a routed VIP the most specific
//! pattern. A pattern an earlier rule's pattern already covers (HAProxy never
//! reaches it) is left out with a warning, which makes the two agree.

use std::time::Duration;

use lb_config::{duration, names::Pattern};

use super::{
    haproxy::SectionKind,
    model::{BackendPlan, Notes, PoolPlan, RoutingPlan, Service},
    proxy::{Haproxy, Proxy},
    routing::{self, By, Matcher, Rule},
    server::SendProxy,
    service::{self, vip_name},
    warning::{Diagnostics, Loc},
};

/// A pool being gathered: its backend and (pattern, the rule's line) in order.
struct Gathered<'a> {
    backend: &'a Proxy,
    names: Vec<(Pattern, usize)>,
}

/// The routed VIP a frontend with name rules becomes, with the backends it uses
/// as pools; `None` when no rule routes by a name (the frontend is converted, or
/// not, as before).
pub fn service<'a>(
    p: &Proxy,
    h: &'a Haproxy,
    file: &str,
    d: &mut Diagnostics,
) -> Option<(Service, Vec<&'a Proxy>)> {
    let http = p.other_mode.is_some();
    let at = Loc { file, line: p.line };
    let mut read: Vec<(&Rule, Result<Matcher, String>)> = p
        .rules
        .iter()
        .map(|r| (r, routing::rule_matcher(r, &p.acls)))
        .collect();
    let by = if http {
        By::Host
    } else {
        read.iter()
            .find_map(|(_, m)| m.as_ref().ok().map(|m| m.by))?
    };
    for (_, m) in &mut read {
        if let Ok(found) = m
            && found.by != by
        {
            *m = Err(if http {
                "a TLS server name in mode http: HAProxy reads no ClientHello there".to_string()
            } else {
                format!(
                    "it routes by the {}, and this frontend's first rule by the {}",
                    found.by.what(),
                    by.what()
                )
            });
        }
    }
    if !read.iter().any(|(_, m)| m.is_ok()) {
        return None;
    }
    let find = |name: &str| {
        h.proxies.iter().find(|b| {
            b.name == name && matches!(b.kind, SectionKind::Backend | SectionKind::Listen)
        })
    };
    let mut pools: Vec<Gathered<'a>> = Vec::new();
    // Every pattern taken so far: (pattern, its backend, its line).
    let mut taken: Vec<(Pattern, &str, usize)> = Vec::new();
    for (r, m) in read {
        let m = match m {
            Ok(m) => m,
            Err(why) => {
                d.warn(at.at(r.line), format!("`{}` not converted: {why}; its connections go by the other rules (or otherwise)", r.text));
                continue;
            }
        };
        let Some(b) = find(&r.backend) else {
            let why = h.skipped.get(&r.backend).map_or_else(
                || "there is no backend of that name".to_string(),
                |w| format!("backend {} is not converted: {w}", r.backend),
            );
            d.warn(at.at(r.line), format!("`{}` not converted: {why}", r.text));
            continue;
        };
        if b.other_mode.is_some() != http {
            d.error(
                at.at(r.line),
                format!(
                    "`{}`: {} and backend {} are not in the same mode (HAProxy refuses it)",
                    r.text,
                    p.title(),
                    b.name
                ),
            );
            continue;
        }
        for c in &m.caveats {
            d.warn(at.at(r.line), format!("`{}`: {c}", r.text));
        }
        for name in &m.names {
            let Ok(pattern) = Pattern::parse(name) else {
                continue;
            };
            match taken.iter().find(|(q, _, _)| covers(q, &pattern)) {
                Some((_, owner, _)) if *owner == b.name => continue,
                Some((q, owner, line)) => {
                    d.warn(
                        at.at(r.line),
                        format!("`{}`: HAProxy never routes {pattern} here, line {line}'s {q} (backend {owner}) takes it first: left out", r.text),
                    );
                    continue;
                }
                None => {}
            }
            taken.push((pattern.clone(), b.name.as_str(), r.line));
            match pools.iter_mut().find(|g| g.backend.name == b.name) {
                Some(g) => g.names.push((pattern, r.line)),
                None => pools.push(Gathered {
                    backend: b,
                    names: vec![(pattern, r.line)],
                }),
            }
        }
    }
    if pools.is_empty() {
        return None;
    }
    let mut routing = RoutingPlan {
        by: by.word(),
        ..RoutingPlan::default()
    };
    match p.target() {
        Some((name, line)) => match find(&name) {
            Some(b) if b.other_mode.is_some() == http => {
                routing.otherwise = Some(vip_name(&b.name));
                routing.notes.add(
                    "otherwise",
                    format!("default_backend ({file}:{line}): a name no rule takes, or none sent"),
                );
                if !pools.iter().any(|g| g.backend.name == b.name) {
                    pools.push(Gathered {
                        backend: b,
                        names: Vec::new(),
                    });
                }
            }
            Some(b) => d.error(
                at.at(line),
                format!(
                    "{} sends to backend {}, which is not in the same mode (HAProxy refuses it)",
                    p.title(),
                    b.name
                ),
            ),
            None => d.warn(
                at.at(line),
                format!("{} sends what no rule takes to `{name}`: there is no backend of that name; such connections are reset", p.title()),
            ),
        },
        None => routing.notes.add(
            "otherwise",
            "no default_backend: HAProxy closes a connection no rule takes",
        ),
    }
    timeouts(p, &pools, http, &mut routing, file, d);
    let mut used = Vec::new();
    for g in &pools {
        used.push(g.backend);
        routing.pools.push(pool(g, h.server_verify, file, d));
    }
    let mut comments = vec![format!(
        "from {file}:{} {}: routed by {}",
        p.line,
        p.title(),
        by.what()
    )];
    if http {
        comments.push(format!(
            "mode http ({file}:{}): HAProxy parses every request of a connection and may send each elsewhere; a routed VIP sends the connection where its first request's Host says, and passes the requests unchanged",
            p.other_mode.as_ref().map_or(p.line, |o| o.line)
        ));
    }
    Some((
        Service {
            comments,
            name: vip_name(&p.name),
            file: file.to_string(),
            line: p.line,
            binds: p.binds.clone(),
            protocol: "tcp",
            forwarding: "nat",
            all_backups: false,
            notes: Notes::default(),
            check: Default::default(),
            backends: Vec::new(),
            routing: Some(routing),
        },
        used,
    ))
}

/// Whether every name `p` matches, `q` matches too.
fn covers(q: &Pattern, p: &Pattern) -> bool {
    match (q, p) {
        (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
        (Pattern::Suffix(_), Pattern::Exact(b)) => q.matches(b),
        (Pattern::Suffix(s), Pattern::Suffix(t)) => t.ends_with(s.as_str()),
        (Pattern::Exact(_), Pattern::Suffix(_)) => false,
    }
}

/// The listener's timeouts and limit from the frontend and the pools' backends.
fn timeouts(
    p: &Proxy,
    pools: &[Gathered<'_>],
    http: bool,
    r: &mut RoutingPlan,
    file: &str,
    d: &mut Diagnostics,
) {
    let s = &p.settings;
    let cite = |what: &str, (t, line): (Duration, usize)| {
        format!("{what} {} ({file}:{line})", duration::format(t))
    };
    let inspect = if http {
        s.timeout_http_request
            .map(|t| ("timeout http-request", t))
            .or(s.timeout_client.map(|t| ("timeout client", t)))
    } else {
        s.inspect_delay.map(|t| ("tcp-request inspect-delay", t))
    };
    match inspect {
        Some((what, t)) => {
            r.inspect_timeout = Some(t.0);
            r.notes.add("inspect_timeout", cite(what, t));
        }
        None if !http => d.warn(
            Loc { file, line: p.line },
            format!("{} has no `tcp-request inspect-delay`: HAProxy tests the server name on the bytes there when the connection is accepted (often none: then no rule matches); the routed VIP waits up to inspect_timeout (5s) for the ClientHello", p.title()),
        ),
        None => {}
    }
    if let Some(line) = p.hello_accepts.first() {
        r.notes.add(
            "route_by",
            format!("tcp-request content accept if a ClientHello ({file}:{line}): a routed VIP waits for one; bytes that are not one are reset (HAProxy sends them to the default after the delay)"),
        );
    }
    let backends = || pools.iter().map(|g| &g.backend.settings);
    let longest = |it: &mut dyn Iterator<Item = Option<(Duration, usize)>>| {
        it.flatten().max_by_key(|(t, _)| *t)
    };
    if let Some(t) = longest(&mut backends().map(|b| b.timeout_connect)) {
        r.connect_timeout = Some(t.0);
        r.notes.add(
            "connect_timeout",
            format!("{} (the longest of the pools')", cite("timeout connect", t)),
        );
    }
    let tunnel = longest(
        &mut backends()
            .map(|b| b.timeout_tunnel)
            .chain([s.timeout_tunnel]),
    );
    let idle = match tunnel {
        Some(t) => Some(("timeout tunnel", t)),
        None => {
            let client = s.timeout_client.map(|t| ("timeout client", t));
            let server =
                longest(&mut backends().map(|b| b.timeout_server)).map(|t| ("timeout server", t));
            [client, server]
                .into_iter()
                .flatten()
                .max_by_key(|(_, (t, _))| *t)
        }
    };
    if let Some((what, t)) = idle {
        r.idle_timeout = Some(t.0);
        r.notes.add(
            "idle_timeout",
            format!("{}: no bytes either way for that long", cite(what, t)),
        );
    }
    if let Some((n, line)) = s.maxconn {
        r.max_connections = Some(n);
        r.notes.add(
            "max_connections",
            format!("maxconn ({file}:{line}); beyond it HAProxy leaves connections in the listen queue, a routed VIP resets them"),
        );
    }
}

/// One backend as a pool.
fn pool(g: &Gathered<'_>, verify: bool, file: &str, d: &mut Diagnostics) -> PoolPlan {
    let b = g.backend;
    let mut comments = vec![format!("backend: {file}:{} {}", b.line, b.title())];
    if let Some((algo, line)) = &b.settings.balance {
        comments.push(format!(
            "balance {algo} ({file}:{line}): a pool spreads connections by weighted Maglev hashing of the client's address and port"
        ));
    }
    let mut notes = Notes::default();
    if !g.names.is_empty() {
        let mut lines: Vec<String> = g.names.iter().map(|(_, l)| l.to_string()).collect();
        lines.dedup();
        notes.add(
            "names",
            format!("use_backend rules ({file}:{})", lines.join(", ")),
        );
    }
    let send_proxy = send_proxy(b, &mut notes, file, d);
    PoolPlan {
        comments,
        name: vip_name(&b.name),
        names: g.names.iter().map(|(p, _)| p.to_string()).collect(),
        send_proxy,
        notes,
        check: service::check_plan(b, file, verify, d),
        backends: service::backends(b, file, verify, d),
    }
}

/// The pool's PROXY header: its servers' `send-proxy*` (one for the pool).
fn send_proxy(
    b: &Proxy,
    notes: &mut Notes,
    file: &str,
    d: &mut Diagnostics,
) -> Option<&'static str> {
    let at = Loc { file, line: b.line };
    let first = b.servers.first()?;
    let chosen = first.opts.send_proxy.unwrap_or(SendProxy::Off);
    for s in &b.servers[1..] {
        let own = s.opts.send_proxy.unwrap_or(SendProxy::Off);
        if own.version() != chosen.version() {
            d.warn(
                at.at(s.line),
                format!("server {} ({}) differs from server {} ({}, line {}): a pool sends one PROXY header to all its backends, {}'s", s.name, own.option(), first.name, chosen.option(), first.line, first.name),
            );
        }
    }
    if let Some(s) = b
        .servers
        .iter()
        .find(|s| s.opts.send_proxy == Some(SendProxy::V2 { ssl: true }))
    {
        d.warn(
            at.at(s.line),
            format!("server {}: `send-proxy-v2-ssl` sends TLS details HAProxy learns by terminating TLS; a routed VIP does not terminate it: v2 with the client's address and the server name", s.name),
        );
    }
    let version = chosen.version()?;
    notes.add(
        "send_proxy",
        format!(
            "{} on server {} ({file}:{})",
            chosen.option(),
            first.name,
            first.line
        ),
    );
    Some(version)
}

/// A routed pool's backends need a port: the one the client connected to when
/// HAProxy's server has none.
pub fn with_ports(backends: &mut [BackendPlan], port: u16) {
    for b in backends.iter_mut().filter(|b| b.port.is_none()) {
        b.port = Some(port);
        b.notes.add(
            "port",
            "the server has no port: HAProxy connects to the one the client connected to",
        );
    }
}
