//! keepalived `virtual_server` blocks (IPVS): a VIP with `real_server`s and their
//! checker (TCP_CHECK, HTTP_GET, SSL_GET). lb_kind NAT is forwarding = "nat", DR is
//! "dsr"; keepalived marks a real server up after one success and down after
//! `retry` + 1 failures, so rise and fall are written out.

use std::{net::IpAddr, time::Duration};

use super::{
    keepalived::Node,
    model::{BackendPlan, CheckPlan, Notes, Service},
    proxy::{Bind, BindAddr},
    service::vip_name,
    vrrp::seconds,
    warning::{Diagnostics, Loc},
};

/// keepalived's `delay_loop` default.
const DELAY_LOOP: Duration = Duration::from_secs(60);

/// One real server's checker, as far as it converts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Checker {
    kind: &'static str,
    port: Option<u16>,
    path: Option<String>,
    host: Option<String>,
    status: Option<Vec<u16>>,
    timeout: Option<Duration>,
    retry: Option<i64>,
    delay_before_retry: Option<Duration>,
}

pub fn virtual_server(n: &Node, file: &str, d: &mut Diagnostics) -> Option<Service> {
    let at = Loc { file, line: n.line };
    let (Ok(address), Ok(port)) = (n.word(1).parse::<IpAddr>(), n.word(2).parse::<u16>()) else {
        d.warn(
            at,
            format!("`{}` not converted: only `virtual_server ADDRESS PORT` converts (no fwmark or group)", n.text()),
        );
        return None;
    };
    let mut service = Service {
        comments: vec![format!(
            "from {file}:{} virtual_server {address} {port}",
            n.line
        )],
        name: vip_name(&format!("vs-{address}-{port}")),
        file: file.to_string(),
        line: n.line,
        binds: vec![Bind {
            line: n.line,
            text: format!("{address} {port}"),
            addr: BindAddr::Ip(address),
            port,
        }],
        protocol: "tcp",
        forwarding: "nat",
        all_backups: false,
        notes: Notes::default(),
        check: CheckPlan::default(),
        backends: Vec::new(),
        routing: None,
    };
    let mut interval = None;
    let mut sorry = None;
    let mut checkers: Vec<(usize, String, Option<Checker>)> = Vec::new();
    for c in n.children() {
        let at = at.at(c.line);
        match c.word(0) {
            "delay_loop" => interval = seconds(c.word(1)).filter(|t| !t.is_zero()),
            "lb_kind" | "lvs_method" => match c.word(1) {
                "NAT" => service.notes.add("forwarding", format!("lb_kind NAT ({file}:{})", c.line)),
                "DR" => {
                    service.forwarding = "dsr";
                    service.notes.add("forwarding", format!("lb_kind DR ({file}:{}): real servers hold the VIP on loopback, as with IPVS", c.line));
                }
                other => {
                    d.warn(at, format!("lb_kind {other} not converted: lb-agent forwards with NAT or DSR (L2), not tunnels; virtual_server skipped"));
                    return None;
                }
            },
            "protocol" => match c.word(1) {
                "TCP" => {}
                "UDP" => service.protocol = "udp",
                other => {
                    d.warn(at, format!("protocol {other} not converted: tcp and udp only; virtual_server skipped"));
                    return None;
                }
            },
            "lb_algo" | "lvs_sched" => {
                if !matches!(c.word(1), "rr" | "wrr" | "mh") {
                    d.warn(at, format!("`{}` not converted: lb-agent picks backends by weighted Maglev hashing of the 5-tuple", c.text()));
                } else {
                    service.comments.push(format!("{} ({file}:{}): lb-agent spreads new connections by weighted Maglev hashing of the 5-tuple", c.text(), c.line));
                }
            }
            "real_server" => {
                if let Some((b, checker)) = real_server(c, file, d) {
                    checkers.push((c.line, b.origin.clone(), checker));
                    service.backends.push(b);
                }
            }
            "persistence_timeout" | "persistence_granularity" | "persistence_engine" => d.warn(
                at,
                format!("`{}` not converted: no persistence; a client's flow stays on its backend, and Maglev keeps most clients on theirs", c.text()),
            ),
            "sorry_server" => match (c.word(1).parse::<IpAddr>(), c.word(2)) {
                (Ok(address), port) if port.is_empty() || port.parse::<u16>().is_ok_and(|p| p > 0) => {
                    let port = port.parse::<u16>().ok();
                    let mut notes = Notes::default();
                    notes.add("backup", "sorry_server: new flows only while no real_server takes them; unlike keepalived, it is health-checked like them");
                    sorry = Some(BackendPlan {
                        origin: format!("{file}:{} sorry_server {}", c.line, c.words[1..].join(" ")),
                        address,
                        port,
                        weight: None,
                        state: None,
                        backup: true,
                        notes,
                    });
                }
                _ => d.error(at, format!("`{}`: expected sorry_server ADDRESS [PORT]", c.text())),
            },
            "sorry_server_inhibit" => d.warn(at, format!("`{}` not converted: the sorry server is a backup backend, held back (drained) while a real server takes new flows", c.text())),
            _ => d.warn(at, format!("virtual_server `{}` not converted: no equivalent in lb-agent", c.text())),
        }
    }
    // After the real servers, as keepalived uses it: when none is left.
    service.backends.extend(sorry);
    service.check = check_plan(&checkers, interval, at, d);
    if service.check.kind == "tcp" && service.protocol == "udp" {
        service.check.kind = "none";
        service.check.notes.add(
            "type",
            "a udp service: lb-agent checks tcp, http or https only",
        );
    }
    Some(service)
}

fn real_server(
    n: &Node,
    file: &str,
    d: &mut Diagnostics,
) -> Option<(BackendPlan, Option<Checker>)> {
    let at = Loc { file, line: n.line };
    let Ok(address) = n.word(1).parse::<IpAddr>() else {
        d.error(
            at,
            format!(
                "real_server `{}`: lb-agent needs an IP address; replace the name with the address",
                n.word(1)
            ),
        );
        return None;
    };
    let port = n.word(2).parse::<u16>().ok();
    let mut b = BackendPlan {
        origin: format!("{file}:{} real_server {}", n.line, n.words[1..].join(" ")),
        address,
        port,
        weight: None,
        state: None,
        backup: false,
        notes: Notes::default(),
    };
    let mut checker = None;
    for c in n.children() {
        let at = at.at(c.line);
        match c.word(0) {
            "weight" => b.weight = c.word(1).parse().ok(),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" => {
                if checker.is_some() {
                    d.warn(at, format!("a second checker `{}`: only one converts", c.word(0)));
                } else {
                    checker = Some(read_checker(c, file, d));
                }
            }
            "inhibit_on_failure" => d.warn(at, "`inhibit_on_failure` not converted: a down backend gets no flows and its flows move"),
            "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK" | "BFD_CHECK" | "PING_CHECK" | "UDP_CHECK" | "FILE_CHECK" => d.warn(
                at,
                format!("{} not converted: lb-agent checks tcp, http or https; this real server is checked with a tcp connect", c.word(0)),
            ),
            _ => d.warn(at, format!("real_server `{}` not converted: no equivalent in lb-agent", c.text())),
        }
    }
    Some((b, checker))
}

fn read_checker(n: &Node, file: &str, d: &mut Diagnostics) -> Checker {
    let mut k = Checker {
        kind: match n.word(0) {
            "HTTP_GET" => "http",
            "SSL_GET" => "https",
            _ => "tcp",
        },
        ..Checker::default()
    };
    for c in n.children() {
        let at = Loc { file, line: c.line };
        match c.word(0) {
            "connect_port" => k.port = c.word(1).parse().ok(),
            "connect_timeout" => k.timeout = seconds(c.word(1)),
            "retry" | "nb_get_retry" => k.retry = c.word(1).parse().ok(),
            "delay_before_retry" => k.delay_before_retry = seconds(c.word(1)),
            "virtualhost" => k.host = Some(c.word(1).to_string()),
            "url" if k.path.is_none() => {
                for u in c.children() {
                    match u.word(0) {
                        "path" => k.path = Some(u.word(1).to_string()),
                        "status_code" => k.status = super::check_rules::status_codes(u.word(1)),
                        "virtualhost" => k.host = Some(u.word(1).to_string()),
                        _ => d.warn(
                            Loc { file, line: u.line },
                            format!(
                                "url `{}` not converted: the http check tests the status code only",
                                u.text()
                            ),
                        ),
                    }
                }
            }
            "url" => d.warn(at, "a second url: the check requests the first only"),
            _ => d.warn(at, format!("{} `{}` not converted", n.word(0), c.text())),
        }
    }
    k
}

fn check_plan(
    checkers: &[(usize, String, Option<Checker>)],
    interval: Option<Duration>,
    at: Loc<'_>,
    d: &mut Diagnostics,
) -> CheckPlan {
    let Some((_, origin, Some(first))) = checkers.iter().find(|(_, _, c)| c.is_some()) else {
        let mut c = CheckPlan {
            kind: "none",
            origin: "no real_server has a checker".into(),
            ..CheckPlan::default()
        };
        c.notes.add(
            "type",
            "keepalived does not check them: enabled servers are up",
        );
        return c;
    };
    for (line, o, k) in checkers {
        if k.as_ref() != Some(first) {
            d.warn(at.at(*line), format!("{o}: its checker differs from {origin}'s: lb-agent checks every backend of a VIP alike, with the first one's"));
        }
    }
    let interval = interval.unwrap_or(DELAY_LOOP);
    let mut c = CheckPlan {
        kind: first.kind,
        port: first.port,
        path: first
            .path
            .clone()
            .or_else(|| (first.kind != "tcp").then(|| "/".to_string())),
        host: first.host.clone(),
        expect_status: first.status.clone(),
        interval: Some(interval),
        fastinter: first.delay_before_retry,
        timeout: first.timeout.map(|t| t.min(interval)),
        rise: Some(1),
        fall: Some(first.retry.unwrap_or(1) + 1),
        origin: format!("{origin} checker, delay_loop"),
        ..CheckPlan::default()
    };
    if first.kind == "https" {
        c.tls_verify = Some(false);
        c.notes.add(
            "tls_verify",
            "keepalived's SSL_GET does not verify certificates",
        );
    }
    c.notes
        .add("fall", "keepalived: down after retry + 1 failures");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keepalived, vrrp};

    #[test]
    fn a_virtual_server_with_http_get() {
        let text = "virtual_server 192.0.2.50 80 {\n  delay_loop 5\n  lb_algo wrr\n  lb_kind DR\n  persistence_timeout 50\n  protocol TCP\n  real_server 192.0.2.51 80 {\n    weight 2\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 3\n      retry 2\n      delay_before_retry 1\n    }\n  }\n  real_server 192.0.2.52 80 {\n    weight 1\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 3\n      retry 2\n      delay_before_retry 1\n    }\n  }\n}\n";
        let mut d = Diagnostics::default();
        let nodes = keepalived::parse(text, "k.conf", &mut d);
        let k = vrrp::read(&nodes, "k.conf", &mut d);
        let s = &k.services[0];
        assert_eq!(s.forwarding, "dsr");
        assert_eq!(s.binds[0].port, 80);
        assert_eq!(s.backends.len(), 2);
        assert_eq!(s.backends[0].weight, Some(2));
        let c = &s.check;
        assert_eq!(c.kind, "http");
        assert_eq!(c.path.as_deref(), Some("/health"));
        assert_eq!(c.interval, Some(Duration::from_secs(5)));
        assert_eq!((c.rise, c.fall), (Some(1), Some(3)));
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(warnings[0].line, 5);
    }
}
