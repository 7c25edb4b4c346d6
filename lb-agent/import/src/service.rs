//! HAProxy frontends joined to their backends: one `Service` per frontend (or
//! listen) in mode tcp, with the backend's servers and one health check for all of
//! them (lb-agent checks the backends of a VIP alike; servers whose check settings
//! differ are warned about). A frontend routing by name is a routed VIP
//! (`routed.rs`); a section in mode http is converted only as part of one.

use std::{collections::HashSet, time::Duration};

use lb_config::duration;

use super::{
    check_rules::{self, CheckOption},
    haproxy::SectionKind,
    model::{BackendPlan, CheckPlan, Notes, Service},
    proxy::{Haproxy, Proxy},
    routed, routing,
    server::{SendProxy, Server},
    warning::{Diagnostics, Loc},
};

/// HAProxy's `inter`, `rise`, `fall` defaults (lb-agent's are the same; written
/// out so the file says what it does).
const INTER: Duration = Duration::from_secs(2);
const RISE: i64 = 2;
const FALL: i64 = 3;

/// Sanitized for a [[vip]] name: letters, digits, '-', '_', '.'.
pub fn vip_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if n.is_empty() { "vip".to_string() } else { n }
}

/// Every frontend/listen with binds, joined to its backend.
pub fn services(h: &Haproxy, file: &str, d: &mut Diagnostics) -> Vec<Service> {
    let mut out = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();
    // Sections in mode http whose warnings apply (converted as routed VIPs or pools).
    let mut converted_http: HashSet<(&str, usize)> = HashSet::new();
    let find = |name: &str| {
        h.proxies.iter().find(|p| {
            p.name == name && matches!(p.kind, SectionKind::Backend | SectionKind::Listen)
        })
    };
    for p in h
        .proxies
        .iter()
        .filter(|p| matches!(p.kind, SectionKind::Frontend | SectionKind::Listen))
    {
        let at = Loc { file, line: p.line };
        if !p.binds.is_empty()
            && let Some((s, pools)) = routed::service(p, h, file, d)
        {
            converted_http.insert((p.name.as_str(), p.line));
            for b in pools {
                used.insert(b.name.as_str());
                converted_http.insert((b.name.as_str(), b.line));
            }
            out.push(s);
            continue;
        }
        if p.other_mode.is_some() {
            continue;
        }
        for (line, message) in &p.pending {
            // A rule no routed VIP can say either: why.
            let why = p
                .rules
                .iter()
                .find(|r| r.line == *line)
                .and_then(|r| routing::rule_matcher(r, &p.acls).err());
            match why {
                Some(why) => d.warn(
                    at.at(*line),
                    format!("{message}; nor can a routed VIP route it: {why}"),
                ),
                None => d.warn(at.at(*line), message.clone()),
            }
        }
        if p.binds.is_empty() {
            if p.kind == SectionKind::Frontend {
                d.warn(
                    at,
                    format!(
                        "{} has no bind with an address and port: not converted",
                        p.title()
                    ),
                );
            }
            continue;
        }
        let backend = match p.target() {
            Some((name, line)) => match find(&name) {
                Some(b) if b.other_mode.is_some() => {
                    d.warn(
                        at.at(line),
                        format!(
                            "{} sends to `{name}`: backend {name} is not converted: it is in mode http ({file}:{}); the frontend is not converted",
                            p.title(),
                            b.other_mode.as_ref().map_or(b.line, |o| o.line)
                        ),
                    );
                    continue;
                }
                Some(b) => b,
                None => {
                    let why = h.skipped.get(&name).map_or_else(
                        || "there is no backend of that name".to_string(),
                        |w| format!("backend {name} is not converted: {w}"),
                    );
                    d.warn(
                        at.at(line),
                        format!(
                            "{} sends to `{name}`: {why}; the frontend is not converted",
                            p.title()
                        ),
                    );
                    continue;
                }
            },
            None if p.kind == SectionKind::Listen => p,
            None => {
                d.warn(at, format!("{} has no default_backend (nor an unconditional use_backend): not converted", p.title()));
                continue;
            }
        };
        used.insert(backend.name.as_str());
        let mut comments = vec![format!("from {file}:{} {}", p.line, p.title())];
        if backend.name != p.name || backend.kind != p.kind {
            comments.push(format!(
                "backend: {file}:{} {}",
                backend.line,
                backend.title()
            ));
        }
        let mut notes = Notes::default();
        notes.add(
            "forwarding",
            "HAProxy is a full proxy: NAT is its equivalent (backends see snat_address)",
        );
        if let Some((algo, line)) = &backend.settings.balance {
            comments.push(format!(
                "balance {algo} ({file}:{line}): lb-agent spreads new connections by weighted Maglev hashing of the 5-tuple"
            ));
        }
        out.push(Service {
            comments,
            name: vip_name(&p.name),
            file: file.to_string(),
            line: p.line,
            binds: p.binds.clone(),
            protocol: "tcp",
            forwarding: "nat",
            all_backups: backend.settings.all_backups.is_some(),
            notes,
            check: check_plan(backend, file, h.server_verify, d),
            backends: backends(backend, file, h.server_verify, d),
            routing: None,
        });
        no_proxy_header(backend, file, d);
    }
    // Sections in mode http: their warnings if converted, else one for all.
    for p in &h.proxies {
        let Some(o) = &p.other_mode else { continue };
        if converted_http.contains(&(p.name.as_str(), p.line)) {
            d.absorb(o.held.clone());
        } else {
            d.warn(
                Loc { file, line: p.line },
                format!(
                    "{} (lines {}-{}) is in mode {} (line {}): skipped whole; lb-agent converts mode http only where a frontend routes by Host (`use_backend ... if {{ hdr(host) ... }}`), otherwise it forwards TCP connections (L4) to one set of backends per VIP",
                    p.title(),
                    p.line,
                    o.end_line,
                    o.mode,
                    o.line
                ),
            );
        }
    }
    // Backends, and listens without a bind of their own, that nothing sends to.
    let unused = |p: &&Proxy| {
        p.other_mode.is_none()
            && (p.kind == SectionKind::Backend
                || (p.kind == SectionKind::Listen && p.binds.is_empty()))
    };
    for b in h.proxies.iter().filter(unused) {
        if !used.contains(b.name.as_str()) {
            d.warn(
                Loc { file, line: b.line },
                format!("{} is not used by any converted frontend (only by conditional use_backend rules, or by none): not converted", b.title()),
            );
        }
    }
    out
}

pub(super) fn backends(
    b: &Proxy,
    file: &str,
    verify_default: bool,
    d: &mut Diagnostics,
) -> Vec<BackendPlan> {
    if b.servers.is_empty() && b.dropped_servers == 0 {
        d.warn(
            Loc { file, line: b.line },
            format!("{} has no servers: its VIP gets no backends", b.title()),
        );
    }
    b.servers
        .iter()
        .map(|s| {
            let at = Loc { file, line: s.line };
            if s.opts.uses_tls() && s.opts.verify.unwrap_or(verify_default) && !s.opts.has_ca() {
                d.error(
                    at,
                    format!("server {}: verify is enabled by default but no CA file specified (HAProxy refuses it): add `verify none` or `ca-file FILE` to the server, or `ssl-server-verify none` to global", s.name),
                );
            }
            let mut notes = Notes::default();
            let state = if s.opts.disabled == Some(true) {
                notes.add("state", "`disabled` in HAProxy (maintenance)");
                Some("disabled")
            } else {
                None
            };
            let backup = s.opts.backup == Some(true);
            if backup {
                notes.add(
                    "backup",
                    if b.settings.all_backups.is_some() {
                        "new flows only while no active server is up; with the other backups (option allbackups)"
                    } else {
                        "new flows only while no active server is up, and only the first backup that is up (HAProxy's default)"
                    },
                );
            }
            BackendPlan {
                origin: format!("{file}:{} server {}", s.line, s.name),
                address: s.address,
                port: s.port,
                weight: s.opts.weight,
                state,
                backup,
                notes,
            }
        })
        .collect()
}

/// A backend of the data plane whose servers expect a PROXY header: said at each.
fn no_proxy_header(b: &Proxy, file: &str, d: &mut Diagnostics) {
    for s in &b.servers {
        if let Some(sp) = s.opts.send_proxy
            && sp != SendProxy::Off
        {
            d.warn(
                Loc { file, line: s.line },
                format!("`{}` not converted: the data plane forwards packets and cannot add a PROXY protocol header: turn `accept-proxy`/`proxy_protocol` off on the backend (with NAT it sees the LB's address), or route by name (a routed VIP sends it)", sp.option()),
            );
        }
    }
}

/// The check settings a server brings, for comparing servers.
fn check_key(s: &Server) -> impl PartialEq + std::fmt::Debug {
    let o = &s.opts;
    (
        o.inter,
        o.fastinter,
        o.downinter,
        o.rise,
        o.fall,
        o.checks_tls(),
        o.verify,
        o.ca_file.clone(),
        o.check_sni.clone(),
        o.check_port,
    )
}

pub(super) fn check_plan(
    b: &Proxy,
    file: &str,
    verify_default: bool,
    d: &mut Diagnostics,
) -> CheckPlan {
    let at = Loc { file, line: b.line };
    let checked: Vec<&Server> = b
        .servers
        .iter()
        .filter(|s| s.opts.check == Some(true))
        .collect();
    let Some(first) = checked.first() else {
        let mut c = CheckPlan {
            kind: "none",
            origin: format!("{file}:{} {}: no server has `check`", b.line, b.title()),
            ..CheckPlan::default()
        };
        c.notes.add(
            "type",
            "HAProxy does not check them: enabled servers are up",
        );
        return c;
    };
    for s in &checked[1..] {
        if check_key(s) != check_key(first) {
            d.warn(
                at.at(s.line),
                format!("server {}'s check settings differ from server {}'s (line {}): lb-agent checks every backend of a VIP alike, with {}'s", s.name, first.name, first.line, first.name),
            );
        }
    }
    for s in b.servers.iter().filter(|s| s.opts.check != Some(true)) {
        d.warn(
            at.at(s.line),
            format!("server {} has no `check` while others have: lb-agent checks every backend of a VIP, it will be checked too", s.name),
        );
    }
    let o = &first.opts;
    let rules = &b.settings.checks;
    let connect = rules.connect.as_ref();
    let option = rules.option.as_ref();
    let interval = o.inter.unwrap_or(INTER);
    let mut c = CheckPlan {
        kind: "tcp",
        port: o.check_port.or(connect.and_then(|c| c.port)),
        interval: Some(interval),
        fastinter: o.fastinter,
        downinter: o.downinter,
        rise: Some(o.rise.unwrap_or(RISE)),
        fall: Some(o.fall.unwrap_or(FALL)),
        ..CheckPlan::default()
    };
    let mut origin = Vec::new();
    if let Some((opt, line)) = option {
        origin.push(format!("{} ({file}:{line})", opt.name()));
    }
    // TLS on the check: the server's check-ssl/ssl, or `connect ssl` of the rules.
    let tls = o.checks_tls() || connect.is_some_and(|c| c.ssl);
    let verify = |c: &mut CheckPlan, d: &mut Diagnostics| {
        c.sni = o.check_sni.clone().or(connect.and_then(|c| c.sni.clone()));
        if o.verify.unwrap_or(verify_default) {
            c.ca_file = o.ca_file.clone();
            if c.sni.is_none() {
                d.warn(
                    at.at(first.line),
                    "the check verifies certificates without `check-sni`: HAProxy checks the chain only, lb-agent also checks the name, and with no sni that is the backend's IP address (its certificate needs it as an IP SAN): set check-sni, or tls_verify = false",
                );
            }
        } else {
            c.tls_verify = Some(false);
        }
    };
    match option.map(|(o, _)| o) {
        Some(CheckOption::HttpChk(_)) => {
            let req = rules.request().unwrap_or_default();
            check_rules::warn_method(&req, at.at(req.line), d);
            c.kind = if tls { "https" } else { "http" };
            c.path = Some(req.path.unwrap_or_else(|| "/".to_string()));
            c.host = req.host;
            match &rules.expect {
                Some((codes, line)) => {
                    origin.push(format!("http-check expect ({file}:{line})"));
                    c.expect_status = Some(codes.clone());
                }
                None => {
                    c.expect_status = Some((200..=399).collect());
                    c.notes
                        .add("expect_status", "HAProxy's default: any 2xx or 3xx");
                }
            }
            if tls {
                verify(&mut c, d);
            }
        }
        Some(CheckOption::SslHello) => {
            c.kind = "tls";
            c.tls_verify = Some(false);
            c.notes.add(
                "type",
                "option ssl-hello-chk: a TLS handshake; HAProxy's hello check verifies no certificate",
            );
        }
        other => {
            if let Some(CheckOption::Protocol(p)) = other {
                c.notes
                    .add("type", format!("`option {p}` becomes a connect check"));
            }
            if tls && !matches!(other, Some(CheckOption::Protocol(_))) {
                c.kind = "tls";
                c.notes.add(
                    "type",
                    "check-ssl (or ssl) without option httpchk: HAProxy checks the TLS handshake",
                );
                verify(&mut c, d);
            }
            if rules.expect.is_some() || rules.send.is_some() {
                d.warn(at, format!("{}: http-check rules without `option httpchk` in force do nothing in HAProxy either; the check is {}", b.title(), c.kind));
            }
        }
    }
    c.timeout = Some(check_timeout(b, interval, &mut c.notes, file, d));
    origin.push(format!("server {} ({file}:{})", first.name, first.line));
    c.origin = origin.join(", ");
    c
}

/// HAProxy's check timeout: `inter` when there is no `timeout check`, else
/// min(`timeout connect`, `inter`) to connect plus `timeout check` to answer.
/// lb-agent's is one timeout of at most the interval.
fn check_timeout(
    b: &Proxy,
    interval: Duration,
    notes: &mut Notes,
    file: &str,
    d: &mut Diagnostics,
) -> Duration {
    let Some((check, line)) = b.settings.timeout_check else {
        notes.add(
            "timeout",
            "HAProxy's: the check interval (`inter`) when there is no `timeout check`",
        );
        return interval;
    };
    let connect = b
        .settings
        .timeout_connect
        .map_or(interval, |(t, _)| t.min(interval));
    let total = connect + check;
    if check > interval {
        d.warn(
            Loc { file, line },
            format!(
                "`timeout check {}` is longer than the check interval ({}): lb-agent's check timeout is at most the interval, set to it",
                duration::format(check),
                duration::format(interval)
            ),
        );
    }
    if total > interval {
        notes.add(
            "timeout",
            format!(
                "timeout check ({file}:{line}): HAProxy allows {} to connect and {} to answer; lb-agent's timeout is at most the interval",
                duration::format(connect),
                duration::format(check)
            ),
        );
        interval
    } else {
        notes.add(
            "timeout",
            format!(
                "timeout check ({file}:{line}) plus the connect timeout, min(timeout connect, inter) = {}",
                duration::format(connect)
            ),
        );
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{haproxy, proxy};

    fn run(text: &str) -> (Vec<Service>, Diagnostics) {
        let mut d = Diagnostics::default();
        let sections = haproxy::parse(text, "h.cfg", &mut d);
        let h = proxy::read(&sections, "h.cfg", &mut d);
        let s = services(&h, "h.cfg", &mut d);
        (s, d)
    }

    #[test]
    fn frontend_and_backend_join_with_an_https_check() {
        let (s, d) = run(
            "frontend api\n  bind *:6443\n  mode tcp\n  default_backend cp\n\nbackend cp\n  mode tcp\n  option httpchk GET /healthz\n  http-check expect status 200\n  balance roundrobin\n  server a 10.0.0.11:6443 check check-ssl verify none fall 3 rise 2\n  server b 10.0.0.12:6443 check check-ssl verify none fall 3 rise 2\n",
        );
        assert_eq!(d.warning_count(), 0, "{d:?}");
        assert_eq!(s.len(), 1);
        let c = &s[0].check;
        assert_eq!(c.kind, "https");
        assert_eq!(c.path.as_deref(), Some("/healthz"));
        assert_eq!(c.expect_status, Some(vec![200]));
        assert_eq!(c.tls_verify, Some(false));
        assert_eq!((c.fall, c.rise), (Some(3), Some(2)));
        assert_eq!(s[0].backends.len(), 2);
        assert_eq!(s[0].backends[1].port, Some(6443));
    }

    #[test]
    fn differing_servers_and_backups_are_warned() {
        let (s, d) = run(
            "listen db\n  mode tcp\n  bind 10.0.0.5:5432\n  option pgsql-check user x\n  server a 10.0.0.1:5432 check inter 1s\n  server b 10.0.0.2:5432 check inter 5s\n  server c 10.0.0.3:5432 backup\n",
        );
        let (warnings, _) = d.split();
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [4, 6, 7], "{warnings:#?}");
        assert_eq!(s[0].check.kind, "tcp");
        assert_eq!(s[0].check.interval, Some(Duration::from_secs(1)));
        assert_eq!(s[0].check.timeout, Some(Duration::from_secs(1)), "inter");
        assert_eq!(s[0].backends[2].state, None);
        assert!(s[0].backends[2].backup);
        assert!(!s[0].all_backups);
    }

    #[test]
    fn the_kubeadm_guide_s_backend_gets_a_tls_check() {
        let (s, d) = run(
            "frontend apiserver\n  bind *:6443\n  mode tcp\n  default_backend apiserver\n\nbackend apiserver\n  option httpchk GET /healthz\n  http-check expect status 200\n  mode tcp\n  option ssl-hello-chk\n  balance roundrobin\n  server cp1 10.0.0.11:6443 check\n",
        );
        let c = &s[0].check;
        assert_eq!(c.kind, "tls");
        assert_eq!(c.tls_verify, Some(false));
        assert_eq!(c.path, None);
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(warnings[0].line, 10);
        assert!(warnings[0].message.contains("a TLS hello check"));
    }

    #[test]
    fn check_ssl_alone_is_a_tls_check_and_timeouts_follow_haproxy() {
        let (s, d) = run(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout check 2s\nlisten a\n  bind 10.0.0.5:443\n  option allbackups\n  server a 10.0.0.1:443 check check-ssl verify none inter 10s\n  server b 10.0.0.2:443 check check-ssl verify none inter 10s backup\n",
        );
        let c = &s[0].check;
        assert_eq!(c.kind, "tls");
        assert_eq!(c.tls_verify, Some(false));
        assert_eq!(
            c.timeout,
            Some(Duration::from_secs(7)),
            "min(connect, inter) + check"
        );
        assert!(s[0].all_backups);
        assert_eq!(d.warning_count(), 1, "only `timeout connect`: {d:?}");
    }

    #[test]
    fn haproxy_s_tls_on_checks_follows_the_check_port_and_the_ca() {
        // `ssl` with a check `port`: HAProxy checks that port in plain.
        let (s, d) = run(
            "listen a\n  mode tcp\n  bind 10.0.0.5:443\n  server a 10.0.0.1:443 ssl verify none check port 8080\n",
        );
        assert_eq!((s[0].check.kind, s[0].check.port), ("tcp", Some(8080)));
        assert!(!d.has_errors());
        // `ca-file @system-ca`: verification on against the system's CAs; the name
        // check without check-sni is warned about.
        let (s, d) = run(
            "listen a\n  mode tcp\n  bind 10.0.0.5:443\n  server a 10.0.0.1:443 check check-ssl ca-file @system-ca\n",
        );
        assert!(!d.has_errors(), "{d:?}");
        let c = &s[0].check;
        assert_eq!(
            (c.kind, c.tls_verify, c.ca_file.as_deref()),
            ("tls", None, None)
        );
        let (warnings, _) = d.split();
        assert!(
            warnings
                .iter()
                .any(|w| w.message.contains("without `check-sni`")),
            "{warnings:?}"
        );
        // Neither verify none nor a CA: HAProxy refuses the server.
        let (_, d) = run(
            "listen a\n  mode tcp\n  bind 10.0.0.5:443\n  server a 10.0.0.1:443 check check-ssl\n",
        );
        let (_, errors) = d.split();
        assert!(
            errors[0]
                .message
                .contains("verify is enabled by default but no CA file specified")
        );
    }

    #[test]
    fn no_check_means_none_and_default_expect_is_2xx_3xx() {
        let (s, _) = run("listen a\n  mode tcp\n  bind 10.0.0.5:80\n  server a 10.0.0.1:80\n");
        assert_eq!(s[0].check.kind, "none");
        let (s, _) = run(
            "listen a\n  mode tcp\n  bind 10.0.0.5:80\n  option httpchk\n  server a 10.0.0.1:80 check\n",
        );
        assert_eq!(s[0].check.kind, "http");
        assert_eq!(s[0].check.expect_status.as_ref().map(Vec::len), Some(200));
    }
}
