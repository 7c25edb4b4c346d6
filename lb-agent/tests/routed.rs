//! Routed VIPs through the real agent: `lb-agent run` with a VIP routing on :443 by
//! TLS server name and on :80 by HTTP host to two pools, whose backends are HAProxy
//! (`accept-proxy`, TLS terminated there) in the backends' namespaces, answering with
//! their name, the client address they read from our PROXY header, and the name
//! asked for. The client is a real TLS client (rustls) in its own namespace, across
//! the lab's veths. A pool follows its backends' health; the listeners' counters are
//! in `/metrics`. Needs root and haproxy.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use common::{
    AgentLab, BACKENDS, CLIENT, VIP,
    clients::{self, request_for, tls_config},
    eventually::eventually_some_or,
    haproxy::{HEAD, Haproxy},
    name,
};
use lb_agent::lab::{Netns, lan_v4};

const NAMES: [&str; 4] = ["*.a.lan", "a.lan", "*.b.lan", "b.lan"];

/// HAProxy on backend `n`: TLS on 8443 and HTTP on 8080, both `accept-proxy`.
fn haproxy(ns: &Netns, n: u8, pem: &str) -> Haproxy {
    let (ip, who) = (lan_v4(n), name(n));
    let config = format!(
        "{HEAD}frontend tls\n  bind {ip}:8443 accept-proxy ssl crt {{dir}}/site.pem\n\
         \x20 http-request return status 200 content-type text/plain lf-string \
         \"{who} %[src] %[src_port] %[ssl_fc_sni]\"\n\
         frontend http\n  bind {ip}:8080 accept-proxy\n\
         \x20 http-request return status 200 content-type text/plain lf-string \
         \"{who} %[src] %[src_port] %[req.hdr(host)]\"\n"
    );
    Haproxy::spawn(ns, &format!("routed-{n}"), &config, &[("site.pem", pem)])
}

fn config() -> String {
    let vip = lan_v4(VIP);
    let b = |n: u8, port: u16| {
        format!(
            "[[vip.pool.backend]]\naddress = \"{}\"\nport = {port}\n",
            lan_v4(n)
        )
    };
    let check = "[vip.pool.check]\ninterval = \"300ms\"\nfall = 2\nrise = 2\n";
    format!(
        "[[vip]]\nname = \"front-tls\"\naddress = \"{vip}\"\nport = 443\nroute_by = \"sni\"\n\
         otherwise = \"reset\"\ninspect_timeout = \"1s\"\n\
         [[vip.pool]]\nname = \"a\"\nnames = [\"*.a.lan\", \"a.lan\"]\nsend_proxy = \"v2\"\n{check}{}\
         [[vip.pool]]\nname = \"b\"\nnames = [\"*.b.lan\", \"b.lan\"]\nsend_proxy = \"v1\"\n{check}{}{}\
         [[vip]]\nname = \"front-http\"\naddress = \"{vip}\"\nport = 80\nroute_by = \"host\"\n\
         otherwise = \"b\"\n\
         [[vip.pool]]\nname = \"a\"\nnames = [\"*.a.lan\"]\nsend_proxy = \"v2\"\n{check}{}\
         [[vip.pool]]\nname = \"b\"\nsend_proxy = \"v1\"\n{check}{}{}",
        b(BACKENDS[0], 8443),
        b(BACKENDS[1], 8443),
        b(BACKENDS[2], 8443),
        b(BACKENDS[0], 8080),
        b(BACKENDS[1], 8080),
        b(BACKENDS[2], 8080),
    )
}

#[test]
fn the_agent_routes_by_name_with_proxy_headers_and_health() {
    let mut lab = AgentLab::new();
    lab.write_config(&config());
    let ck = rcgen::generate_simple_self_signed(
        NAMES.iter().map(ToString::to_string).collect::<Vec<_>>(),
    )
    .expect("certificate");
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    let mut servers: Vec<Option<Haproxy>> = (0..3)
        .map(|i| Some(haproxy(&lab.backends[i].ns, BACKENDS[i], &pem)))
        .collect();
    lab.start();
    lab.wait_for("pools healthy", Duration::from_secs(10), |s| {
        ["front-tls/a", "front-tls/b", "front-http/a", "front-http/b"]
            .iter()
            .all(|n| s.vip(n).is_some_and(|v| v.up == v.total && v.total > 0))
    });
    assert!(
        lab.log().contains("routed VIP front-tls: listening on"),
        "{}",
        lab.log()
    );
    let client = lan_v4(CLIENT).to_string();
    let tls = tls_config(&ck.cert.pem());
    let (v443, v80) = (
        SocketAddr::new(lan_v4(VIP), 443),
        SocketAddr::new(lan_v4(VIP), 80),
    );
    let tls_get =
        move |tls: &Arc<rustls::ClientConfig>, name: &str| clients::tls_get(tls, v443, name, false);
    let http_get = move |host: &str| clients::http_get(v80, &request_for(host));
    let seen = lab
        .client
        .ns
        .run({
            let tls = tls.clone();
            move || {
                let mut out = Vec::new();
                for name in ["x.a.lan", "a.lan", "y.b.lan", "b.lan", "z.b.lan", "w.b.lan"] {
                    out.push((name, tls_get(&tls, name)));
                }
                out.push(("other.lan", tls_get(&tls, "other.lan")));
                for host in ["web.a.lan", "B.lan", "unknown.lan"] {
                    out.push((host, http_get(host)));
                }
                out
            }
        })
        .expect("client");
    for (name, got) in &seen {
        eprintln!("{name}: {got:?}");
    }
    let body = |name: &str| {
        seen.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| r.as_ref().ok())
            .unwrap_or_else(|| panic!("{name}: {seen:?}"))
            .clone()
    };
    // Pool a is backend 11; pool b backends 12 and 13. Each backend saw the client's
    // own address and port and the name it asked for.
    for name in ["x.a.lan", "a.lan"] {
        let (b, port) = body(name);
        assert_eq!(b, format!("{} {client} {port} {name}", common::name(11)));
    }
    for name in ["y.b.lan", "b.lan", "z.b.lan", "w.b.lan"] {
        let (b, port) = body(name);
        let from12 = format!("{} {client} {port} {name}", common::name(12));
        let from13 = format!("{} {client} {port} {name}", common::name(13));
        assert!(b == from12 || b == from13, "{name}: {b}");
    }
    assert!(
        seen.iter().any(|(n, r)| *n == "other.lan" && r.is_err()),
        "an unrouted name was served"
    );
    let (b, port) = body("web.a.lan");
    assert_eq!(b, format!("{} {client} {port} web.a.lan", name(11)));
    for host in ["B.lan", "unknown.lan"] {
        let (b, _) = body(host);
        assert!(
            b.starts_with(&name(12)) || b.starts_with(&name(13)),
            "{host}: {b}"
        );
    }

    // Backend 12 stops: pool b takes only 13 once its checks say so.
    servers[1] = None;
    lab.wait_for("backend 12 down", Duration::from_secs(5), |s| {
        s.vip("front-tls/b").is_some_and(|v| v.up == 1)
    });
    let after = lab
        .client
        .ns
        .run(move || {
            (0..6)
                .map(|i| tls_get(&tls, &format!("n{i}.b.lan")))
                .collect::<Vec<_>>()
        })
        .expect("client");
    for r in &after {
        let (b, _) = r.as_ref().expect("pool b after a backend went down");
        assert!(b.starts_with(&name(13)), "{b}");
    }

    // The status (and /metrics) is refreshed once a second.
    let b_total = "lb_routed_pool_connections_total{vip=\"front-tls\",pool=\"b\"} 10";
    let (metrics, _) = eventually_some_or(
        "/metrics counts pool b's connections",
        Duration::from_secs(5),
        || {
            let (code, metrics) = lab.http_get("/metrics", None);
            assert_eq!(code, 200);
            metrics.contains(b_total).then_some(metrics)
        },
        || lab.http_get("/metrics", None).1,
    );
    let line = |needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{metrics}"))
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(
        line("lb_routed_pool_connections_total{vip=\"front-tls\",pool=\"a\"}"),
        2.0
    );
    assert_eq!(
        line("lb_routed_pool_connections_total{vip=\"front-tls\",pool=\"b\"}"),
        10.0
    );
    assert_eq!(
        line("lb_routed_connections_total{vip=\"front-tls\",outcome=\"no_match_reset\"}"),
        1.0
    );
    assert_eq!(
        line("lb_routed_pool_connections_total{vip=\"front-http\",pool=\"b\"}"),
        2.0
    );
}
