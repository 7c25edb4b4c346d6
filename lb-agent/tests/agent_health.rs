//! The agent's health checks against real servers in namespaces: tcp, http and https
//! (self-signed certificate, verified with `ca_file` and SNI) backends are killed and
//! restarted; each state follows within interval x fall (+ one interval), the change
//! is logged once with its reason, new connections avoid the down backend, and
//! `/ready`, `/metrics` and the CLI say so. Needs root.

mod common;

use std::{
    fs,
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{
    AgentLab, BACKENDS, CLIENT, VIP, name,
    servers::{WebServer, self_signed},
};
use lb_agent::{
    lab::{TcpServer, connections, lan_v4},
    status::Status,
};

const INTERVAL_MS: u64 = 300;
const FALL: u64 = 2;
const RISE: u64 = 2;
/// What the CLI round trip and polling add to a measured time: generous, for a
/// loaded CI machine (the measured times are printed; the bound catches a check
/// that does not follow at all).
const SLACK_MS: u64 = 700;
/// (VIP name, client port, check type).
const VIPS: [(&str, u16, &str); 3] = [
    ("tcp", 80, "tcp"),
    ("http", 81, "http"),
    ("https", 82, "https"),
];

fn config(lab: &AgentLab, ca: &std::path::Path) -> String {
    let mut out = String::new();
    for (name, port, check) in VIPS {
        let extra = match check {
            "http" => "port = 8080\npath = \"/healthz\"\n".to_string(),
            "https" => format!(
                "port = 8443\npath = \"/readyz\"\nca_file = \"{}\"\nsni = \"backend.lab\"\n",
                ca.display()
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "[[vip]]\nname = \"{name}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             [vip.check]\ntype = \"{check}\"\n{extra}interval = \"{INTERVAL_MS}ms\"\n\
             timeout = \"200ms\"\nfall = {FALL}\nrise = {RISE}\n",
            lan_v4(VIP),
            lan_v4(common::LB)
        ));
        for b in BACKENDS {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
        }
    }
    let _ = lab;
    out
}

fn backend<'a>(s: &'a Status, vip: &str, index: u8) -> &'a lb_agent::status::BackendStatus {
    let addr = lan_v4(index).to_string();
    s.vip(vip)
        .and_then(|v| v.backends.iter().find(|b| b.address == addr))
        .expect("backend in status")
}

/// Servers of one backend host: banners on 80-82, http on 8080, https on 8443.
struct Servers {
    tcp: Option<TcpServer>,
    banners: Vec<TcpServer>,
    http: Option<WebServer>,
    https: Option<WebServer>,
}

fn servers(lab: &AgentLab, i: usize, tls: &std::sync::Arc<rustls::ServerConfig>) -> Servers {
    let ns = &lab.backends[i].ns;
    let n = name(BACKENDS[i]);
    let at = |port: u16| -> SocketAddr { SocketAddr::new(lan_v4(BACKENDS[i]), port) };
    Servers {
        tcp: Some(TcpServer::spawn(ns, at(80), &n).expect("banner 80")),
        banners: vec![
            TcpServer::spawn(ns, at(81), &n).expect("banner 81"),
            TcpServer::spawn(ns, at(82), &n).expect("banner 82"),
        ],
        http: Some(WebServer::spawn(ns, at(8080), None)),
        https: Some(WebServer::spawn(ns, at(8443), Some(tls.clone()))),
    }
}

/// Polls the status until `seen(status, vip)` holds for every VIP; asserts each
/// within `limit` of `since` and returns when each was first seen.
fn seen_within(
    lab: &AgentLab,
    since: Instant,
    limit: Duration,
    seen: impl Fn(&Status, &str) -> bool,
) -> Vec<(&'static str, Duration)> {
    let mut when: Vec<(&'static str, Duration)> = Vec::new();
    while when.len() < VIPS.len() {
        let s = lab.status();
        let now = since.elapsed();
        for (vip, _, _) in VIPS {
            if !when.iter().any(|(v, _)| *v == vip) && seen(&s, vip) {
                when.push((vip, now));
            }
        }
        assert!(
            now <= limit,
            "not within {limit:?}: only {when:?}; {:#?}",
            s.vips
        );
    }
    when
}

#[test]
fn tcp_http_https_backends_go_down_and_come_back() {
    let mut lab = AgentLab::new();
    let (tls, pem) = self_signed("backend.lab");
    let ca = lab.dir.join("ca.pem");
    fs::write(&ca, pem).expect("ca");
    lab.write_config(&config(&lab, &ca));
    let mut all: Vec<Servers> = (0..BACKENDS.len())
        .map(|i| servers(&lab, i, &tls))
        .collect();
    lab.start();
    lab.wait_for("all backends up", Duration::from_secs(5), |s| {
        s.vips.len() == 3 && s.vips.iter().all(|v| v.up == 3)
    });
    assert_eq!(lab.http_get("/ready", None).0, 200);

    // Backend 11 fails each VIP's check its own way: the tcp port closes, the http
    // and https health endpoints stop.
    let down_at = Instant::now();
    all[0].tcp = None;
    all[0].http = None;
    all[0].https = None;
    let limit = Duration::from_millis(INTERVAL_MS * FALL + INTERVAL_MS + SLACK_MS);
    let took = seen_within(&lab, down_at, limit, |s, vip| {
        let b = backend(s, vip, 11);
        b.health == "down" && b.state == "down"
    });
    eprintln!("backend 11 seen down after its servers stopped: {took:?} (limit {limit:?})");
    let s = lab.status();
    for (vip, _, _) in VIPS {
        let v = s.vip(vip).expect("vip");
        assert_eq!(v.up, 2, "{vip}");
        let b = backend(&s, vip, 11);
        assert_eq!(b.ring_slots, 0, "{vip}: a down backend keeps no ring share");
        let check = b.last_check.as_ref().expect("last check");
        assert!(
            !check.ok && check.reason.starts_with("L4 connection refused"),
            "{vip}: {check:?}"
        );
    }
    let log = lab.log();
    for (vip, port, _) in VIPS {
        let line = format!("backend {vip}/198.18.1.11:{port} DOWN: L4 connection refused after");
        assert_eq!(
            log.matches(&line).count(),
            1,
            "{vip}: one DOWN line expected:\n{log}"
        );
    }
    assert!(log.contains(", 2 of 3 up"), "{log}");

    // New connections avoid the down backend (and none fails).
    for (vip, port, _) in VIPS {
        let t = connections(
            &lab.client.ns,
            SocketAddr::new(lan_v4(VIP), port),
            120,
            Duration::from_secs(2),
        )
        .expect("client");
        assert_eq!(t.failures, 0, "{vip}: {:?}", t.first_failure);
        assert!(!t.answers.contains_key(&name(11)), "{vip}: {:?}", t.answers);
        assert_eq!(t.answers.len(), 2, "{vip}: {:?}", t.answers);
    }
    let metrics = lab.http_get("/metrics", None).1;
    assert!(
        metrics.contains("lb_backend_up{vip=\"http\",backend=\"198.18.1.11:81\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lb_vip_backends_up{vip=\"https\"} 2"),
        "{metrics}"
    );

    // Back up: rise successes at fastinter.
    let tls2 = tls.clone();
    all[0].banners.clear();
    let up_at = Instant::now();
    all[0] = servers(&lab, 0, &tls2);
    let limit = Duration::from_millis(INTERVAL_MS * RISE + INTERVAL_MS + SLACK_MS);
    let took = seen_within(&lab, up_at, limit, |s, vip| {
        backend(s, vip, 11).state == "up"
    });
    eprintln!("backend 11 seen up after its servers restarted: {took:?} (limit {limit:?})");
    let t = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 81),
        150,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(t.failures, 0, "{:?}", t.first_failure);
    assert!(
        t.answers.get(&name(11)).copied().unwrap_or(0) > 10,
        "{:?}",
        t.answers
    );

    // Every backend of one VIP down: /ready names it.
    for s in &mut all {
        s.tcp = None;
    }
    lab.wait_for("tcp VIP without backends", Duration::from_secs(3), |s| {
        s.vip("tcp").is_some_and(|v| v.up == 0)
    });
    let (code, body) = lab.http_get("/ready", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no healthy backend for VIP tcp"), "{body}");
    assert_eq!(lab.http_get("/healthz", None).0, 200);
    let t = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), 80),
        5,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(
        t.failures, 5,
        "no backend: on_no_backend = reset refuses at once"
    );
    let _ = CLIENT;
}
