//! HAProxy as the oracle of the import's routing: the front-door fixture (SNI
//! rules on :443, Host rules in mode http on :80, send-proxy and send-proxy-v2)
//! runs in real HAProxy on the LB node's own address, and its import runs in the
//! real agent on the VIP, side by side in one lab. The same TLS clients (real
//! server names) and HTTP clients (real Host headers) go to both: each name must
//! reach the same cluster through both, and the cluster must read the client's
//! own address from the PROXY header either way. Only the rule the import warned
//! about (`-m beg`, a prefix) may differ, and it differs as warned. Needs root
//! and haproxy.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    process::Command,
    time::Duration,
};

use common::{
    AGENT, AgentLab, BACKENDS, CLIENT, LB, VIP,
    clients::{self, request_for, tls_config},
    haproxy::{HEAD, Haproxy},
    name,
};
use lb_agent::lab::{Netns, lan_v4};

const FIXTURE: &str = include_str!("fixtures/import/front-door/haproxy.cfg");

/// The fixture's addresses in this lab: the VIP (ours) or the LB's own address
/// (HAProxy's copy), and the three clusters' nodes.
fn in_lab(listen: IpAddr) -> String {
    let mut text = FIXTURE.replace("192.0.2.10", &listen.to_string());
    for (i, n) in BACKENDS.iter().enumerate() {
        text = text.replace(&format!("192.0.2.2{}", i + 1), &lan_v4(*n).to_string());
    }
    // HAProxy in the foreground of a test logs nowhere, and its global maxconn
    // would need more open files than the test's limit.
    text.replace("    log /dev/log local0\n", "")
        .replace("    maxconn 20000\n", "")
        .replace("    log global\n", "")
        .replace("    option tcplog\n", "")
}

/// A cluster's ingress: TLS on 30443 and HTTP on 30080, both `accept-proxy`,
/// answering with the node's name and the client address the header gave.
fn ingress(ns: &Netns, n: u8, pem: &str) -> Haproxy {
    let (ip, who) = (lan_v4(n), name(n));
    let config = format!(
        "{HEAD}frontend tls\n  bind {ip}:30443 accept-proxy ssl crt {{dir}}/site.pem\n\
         \x20 http-request return status 200 content-type text/plain lf-string \"{who} %[src]\"\n\
         frontend http\n  bind {ip}:30080 accept-proxy\n\
         \x20 http-request return status 200 content-type text/plain lf-string \"{who} %[src]\"\n"
    );
    Haproxy::spawn(ns, &format!("ingress-{n}"), &config, &[("site.pem", pem)])
}

/// `lb-agent import` of the fixture for the VIP: its [[vip]] tables.
fn imported() -> String {
    let dir = std::env::temp_dir().join(format!("lb-import-routed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, in_lab(lan_v4(VIP))).expect("haproxy.cfg");
    let out = dir.join("lb-agent.toml");
    let o = Command::new(AGENT)
        .args(["import", "--interface", "eth0", "--haproxy"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("lb-agent import");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("imported");
    let _ = std::fs::remove_dir_all(&dir);
    let at = text.find("[[vip]]").expect("a [[vip]]");
    text[at..].to_string()
}

#[test]
fn imported_routing_sends_every_name_where_haproxy_does() {
    let mut lab = AgentLab::new();
    lab.write_config(&imported());
    let names = [
        "a.lan",
        "*.a.lan",
        "b.lan",
        "*.b.lan",
        "shared.lan",
        "other.lan",
        "api-x.lan",
    ];
    let ck = rcgen::generate_simple_self_signed(
        names.iter().map(ToString::to_string).collect::<Vec<_>>(),
    )
    .expect("certificate");
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    let _ingress: Vec<Haproxy> = (0..3)
        .map(|i| ingress(&lab.backends[i].ns, BACKENDS[i], &pem))
        .collect();
    let _haproxy = Haproxy::spawn(&lab.node.lb.ns, "front-door", &in_lab(lan_v4(LB)), &[]);
    lab.start();
    lab.wait_for("pools healthy", Duration::from_secs(15), |s| {
        [
            "tls/cluster-a-tls",
            "tls/cluster-b-tls",
            "tls/fallback-tls",
            "web/cluster-a-http",
            "web/cluster-b-http",
        ]
        .iter()
        .all(|n| s.vip(n).is_some_and(|v| v.up == v.total && v.total > 0))
    });
    let tls = tls_config(&ck.cert.pem());
    let sni = [
        "a.lan",
        "x.a.lan",
        "old.a.lan",
        "b.lan",
        "y.b.lan",
        "shared.lan",
        "other.lan",
        "api-x.lan",
    ];
    let hosts = ["a.lan", "WWW.A.LAN", "b.lan", "x.b.lan", "other.lan"];
    let (ours, theirs) = (lan_v4(VIP), lan_v4(LB));
    let answers = lab
        .client
        .ns
        .run(move || {
            let mut out = Vec::new();
            for to in [ours, theirs] {
                for n in sni {
                    let got = clients::tls_get(&tls, SocketAddr::new(to, 443), n, false);
                    out.push((to, format!("tls {n}"), got));
                }
                for h in hosts {
                    let got = clients::http_get(SocketAddr::new(to, 80), &request_for(h));
                    out.push((to, format!("http {h}"), got));
                }
            }
            out
        })
        .expect("clients");
    let client = lan_v4(CLIENT).to_string();
    let who = |to: IpAddr, what: &str| -> String {
        let (_, _, got) = answers
            .iter()
            .find(|(t, w, _)| *t == to && w == what)
            .expect("asked");
        let (body, _) = got
            .as_ref()
            .unwrap_or_else(|e| panic!("{what} via {to}: {e}"));
        let (node, src) = body.split_once(' ').unwrap_or((body, ""));
        assert_eq!(src, client, "{what} via {to}: the PROXY header's address");
        node.to_string()
    };
    let (a, b, fallback) = (name(BACKENDS[0]), name(BACKENDS[1]), name(BACKENDS[2]));
    let mut table = Vec::new();
    for (what, expected) in [
        ("tls a.lan", &a),
        ("tls x.a.lan", &a),
        ("tls old.a.lan", &a),
        ("tls b.lan", &b),
        ("tls y.b.lan", &b),
        ("tls shared.lan", &b),
        ("tls other.lan", &fallback),
        ("http a.lan", &a),
        ("http WWW.A.LAN", &a),
        ("http b.lan", &b),
        ("http x.b.lan", &b),
        ("http other.lan", &b),
    ] {
        let (us, them) = (who(ours, what), who(theirs, what));
        table.push(format!("{what}: HAProxy {them}, lb-agent {us}"));
        assert_eq!(&them, expected, "HAProxy for {what}");
        assert_eq!(us, them, "{what}:\n{}", table.join("\n"));
    }
    // The rule the import warned about (`-m beg api-`): HAProxy's cluster b,
    // the default for us.
    assert_eq!(who(theirs, "tls api-x.lan"), b);
    assert_eq!(who(ours, "tls api-x.lan"), fallback);
    eprintln!("{}", table.join("\n"));
}
