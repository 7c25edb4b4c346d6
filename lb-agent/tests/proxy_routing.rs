//! The proxy path routes by TLS server name and HTTP host, with real peers on both
//! sides inside a namespace of the test's own: clients are rustls (TLS) and plain
//! HTTP/1.1; the backends are HAProxy frontends with `accept-proxy` (two "clusters",
//! TLS terminated there) answering with the client address they read from our
//! PROXY header and the name they were asked for. Bad input (garbage, oversized,
//! silent clients) is closed and counted without disturbing the others. Needs root
//! and haproxy.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use common::{
    clients::{self, tls_config},
    eventually::eventually,
    haproxy::{HEAD, Haproxy},
};
use lb_agent::{
    lab::Netns,
    proxy::{
        names::{Pattern, Routes},
        proxy_header::Version,
        serve::{Limits, Otherwise, Pool, RouteBy, Router, Stats, serve},
    },
};

const NAMES: [&str; 5] = ["*.a.lan", "a.lan", "*.b.lan", "b.lan", "other.lan"];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Two clusters, A on 127.0.0.11 and B on 127.0.0.12: TLS on 8443 and HTTP on
/// 8080, each answering "<cluster> <client address> <client port> <name>".
fn clusters(ns: &Netns) -> (Haproxy, String) {
    let ck = rcgen::generate_simple_self_signed(
        NAMES.iter().map(ToString::to_string).collect::<Vec<_>>(),
    )
    .expect("certificate");
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    let mut config = HEAD.to_string();
    for (c, ip) in [("A", "127.0.0.11"), ("B", "127.0.0.12")] {
        config.push_str(&format!(
            "frontend tls{c}\n  bind {ip}:8443 accept-proxy ssl crt {{dir}}/site.pem\n\
             \x20 http-request return status 200 content-type text/plain lf-string \
             \"{c} %[src] %[src_port] %[ssl_fc_sni]\"\n\
             frontend http{c}\n  bind {ip}:8080 accept-proxy\n\
             \x20 http-request return status 200 content-type text/plain lf-string \
             \"{c} %[src] %[src_port] %[req.hdr(host)]\"\n"
        ));
    }
    (
        Haproxy::spawn(ns, "routing", &config, &[("site.pem", &pem)]),
        ck.cert.pem(),
    )
}

fn router(by: RouteBy, port: u16, otherwise: Otherwise) -> Router {
    let p = |s| Pattern::parse(s).expect("pattern");
    let pool = |name: &str, ip: &str, v| {
        Pool::new(name, vec![(addr(&format!("{ip}:{port}")), 1)], Some(v)).expect("pool")
    };
    Router {
        by,
        routes: Routes::new([
            (p("*.a.lan"), 0),
            (p("a.lan"), 0),
            (p("*.b.lan"), 1),
            (p("b.lan"), 1),
        ])
        .expect("routes"),
        otherwise,
        pools: vec![
            pool("A", "127.0.0.11", Version::V2),
            pool("B", "127.0.0.12", Version::V1),
        ],
    }
}

/// The proxy: SNI on 127.0.0.10:443 (no match: reset), Host on 127.0.0.10:80 (no
/// match: cluster B), on a runtime of its own inside `ns`.
fn proxy(ns: &Netns, limits: Limits) -> (Arc<Stats>, Arc<Stats>) {
    let (sni, host) = (Arc::new(Stats::new(2)), Arc::new(Stats::new(2)));
    let (s, h) = (sni.clone(), host.clone());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    common::spawn_runtime(ns, move || async move {
        let l443 = tokio::net::TcpListener::bind("127.0.0.10:443")
            .await
            .expect("443");
        let l80 = tokio::net::TcpListener::bind("127.0.0.10:80")
            .await
            .expect("80");
        let _ = ready_tx.send(());
        let (_t443, r443) =
            tokio::sync::watch::channel(Arc::new(router(RouteBy::Sni, 8443, Otherwise::Reset)));
        let (_t80, r80) =
            tokio::sync::watch::channel(Arc::new(router(RouteBy::Host, 8080, Otherwise::Pool(1))));
        tokio::join!(
            serve(l443, r443, limits, s, None),
            serve(l80, r80, limits, h, None)
        );
    });
    ready.recv().expect("proxy up");
    (sni, host)
}

/// Raw bytes to a proxy port; whether it was closed on us (reset or EOF) and when.
fn closed_after(port: u16, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr(&format!("127.0.0.10:{port}"))).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => start.elapsed(),
        Ok(n) => panic!("answered {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

#[test]
fn names_pick_the_cluster_and_the_backend_sees_the_client() {
    let ns = Netns::new("lbpr").expect("namespace");
    let limits = Limits {
        inspect: Duration::from_millis(500),
        first_bytes: 8192,
        ..Limits::default()
    };
    let (_h, pem) = clusters(&ns);
    let (sni, host) = proxy(&ns, limits);
    let tls = tls_config(&pem);
    let (v443, v80) = (addr("127.0.0.10:443"), addr("127.0.0.10:80"));
    let tls_get = move |name: &str, split| clients::tls_get(&tls, v443, name, split);
    let http_get = move |head: &[u8]| clients::http_get(v80, head);
    ns.run(move || {
        // HAProxy up.
        eventually("HAProxy comes up", Duration::from_secs(5), || {
            TcpStream::connect(addr("127.0.0.12:8080")).is_ok()
        });
        // SNI: each name to its cluster, the client's own address and port seen.
        for (name, cluster) in [
            ("x.a.lan", "A"),
            ("a.lan", "A"),
            ("y.b.lan", "B"),
            ("b.lan", "B"),
        ] {
            let (body, port) = tls_get(name, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(body, format!("{cluster} 127.0.0.1 {port} {name}"), "{name}");
        }
        // A ClientHello in three segments routes the same.
        let (body, port) = tls_get("split.a.lan", true).expect("split ClientHello");
        assert_eq!(body, format!("A 127.0.0.1 {port} split.a.lan"));
        // No rule for the name: reset, no answer.
        assert!(
            tls_get("other.lan", false).is_err(),
            "an unrouted name was served"
        );
        // Host: the header picks the cluster; no match goes to the default (B).
        for (h, cluster) in [("web.a.lan:80", "A"), ("B.LAN", "B"), ("unknown.lan", "B")] {
            let req = format!("GET / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
            let (body, port) = http_get(req.as_bytes()).unwrap_or_else(|e| panic!("{h}: {e}"));
            assert_eq!(body, format!("{cluster} 127.0.0.1 {port} {h}"), "{h}");
        }

        // Bad input: closed, counted, and nothing else disturbed.
        let garbage = closed_after(443, &[0x16, 3, 1, 0xff, 0xff, 1, 2, 3]);
        assert!(
            garbage < Duration::from_millis(400),
            "garbage took {garbage:?}"
        );
        let not_tls = closed_after(443, b"GET / HTTP/1.1\r\n\r\n");
        assert!(not_tls < Duration::from_millis(400), "{not_tls:?}");
        // A ClientHello claiming more than the bound (8 KiB here).
        let mut big = vec![0x16, 3, 1, 0x40, 0x00, 1, 0, 0x3f, 0xfc];
        big.extend(std::iter::repeat_n(0u8, 9000));
        closed_after(443, &big);
        // Silent clients are closed at the inspect timeout.
        let silent = closed_after(443, &[]);
        assert!(
            silent >= Duration::from_millis(450) && silent < Duration::from_secs(2),
            "a silent TLS client was closed after {silent:?}"
        );
        let silent = closed_after(80, b"GET / HTT");
        assert!(silent >= Duration::from_millis(450), "{silent:?}");
        // A 64 KB request line.
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(65536));
        closed_after(80, long.as_bytes());
        // Still serving.
        let (body, _) = tls_get("z.a.lan", false).expect("after the bad input");
        assert!(body.starts_with("A 127.0.0.1 "), "{body}");
    })
    .expect("in the namespace");

    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eprintln!("sni: {sni:?}\nhost: {host:?}");
    assert_eq!(n(&sni.routed[0]), 4, "SNI to A");
    assert_eq!(n(&sni.routed[1]), 2, "SNI to B");
    assert_eq!(n(&sni.no_match_reset), 1);
    assert_eq!(n(&sni.invalid), 3, "garbage, not TLS, oversized");
    assert_eq!(n(&sni.inspect_timeout), 1);
    assert_eq!(n(&host.routed[0]), 1);
    assert_eq!(n(&host.routed[1]), 2);
    assert_eq!(n(&host.invalid), 1, "the 64 KB request line");
    assert_eq!(n(&host.inspect_timeout), 1);
}
