//! `lb-agent import` run as a binary on the fixtures in `tests/fixtures/import/`:
//! the config it writes passes `lb-agent check-config` and holds the values of the
//! inputs; every unsupported directive is warned about at its FILE:LINE; inputs it
//! cannot convert, and a result our check refuses, exit non-zero saying why.

mod import_support;

use std::{path::Path, process::Command, time::Duration};

use import_support::*;
use lb_agent::config::{self, CheckKind, TrackKind};

#[test]
fn kubernetes_control_plane_pair() {
    let dir = scratch("k8s");
    let out_file = dir.join("lb-agent.toml");
    let o = import(
        "k8s",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--output",
            arg(&out_file),
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout(&o).is_empty(), "the config went to --output only");
    let c = checked(&out_file);

    assert_eq!(c.agent.interfaces, ["eth0"]);
    let vip = &c.vips[0];
    assert_eq!(c.vips.len(), 1);
    assert_eq!(vip.name, "apiserver");
    assert_eq!(vip.address.to_string(), "192.168.10.100");
    assert_eq!(vip.port, 6443);
    assert_eq!(
        vip.snat_addresses
            .first()
            .map(ToString::to_string)
            .as_deref(),
        Some("192.168.10.21")
    );
    assert_eq!(vip.check.kind, CheckKind::Https);
    assert_eq!(vip.check.path, "/healthz");
    assert_eq!(vip.check.expect_status, [200]);
    assert!(!vip.check.tls_verify);
    assert_eq!(vip.check.interval, Duration::from_secs(3));
    assert_eq!(vip.check.downinter, Duration::from_secs(5));
    assert_eq!(
        vip.check.timeout,
        Duration::from_secs(3),
        "timeout check 10s, capped at inter"
    );
    assert_eq!((vip.check.fall, vip.check.rise), (3, 2));
    let backends: Vec<String> = vip
        .backends
        .iter()
        .map(|b| format!("{}:{}", b.address, b.port))
        .collect();
    assert_eq!(
        backends,
        [
            "192.168.10.11:6443",
            "192.168.10.12:6443",
            "192.168.10.13:6443"
        ]
    );

    let v = &c.vrrp[0];
    assert_eq!(v.name, "VI_1");
    assert_eq!(v.interface, "eth0");
    assert_eq!(v.vrid, 51);
    assert_eq!(v.priority, 101);
    assert_eq!(v.auth_pass.as_deref(), Some("42"));
    assert_eq!(
        format!("{:?}", v.version),
        "V2",
        "keepalived's default version"
    );
    let peers: Vec<String> = v.unicast_peers.iter().map(ToString::to_string).collect();
    assert_eq!(peers, ["192.168.10.22", "192.168.10.23"]);
    assert_eq!(v.addresses[0].0.to_string(), "192.168.10.100");
    assert_eq!(v.addresses[0].1, 24);
    let t = &v.tracks[0];
    let TrackKind::Script {
        command, interval, ..
    } = &t.kind
    else {
        panic!("{t:?}");
    };
    assert_eq!(command, &["/etc/keepalived/check_apiserver.sh"]);
    assert_eq!(*interval, Duration::from_secs(3));
    assert_eq!((t.weight, t.rise, t.fall), (-2, 2, 10));

    let text = std::fs::read_to_string(&out_file).expect("output");
    assert!(
        text.contains("# from haproxy.cfg:34 frontend apiserver"),
        "{text}"
    );
    assert!(
        text.contains("[[vip.backend]]  # haproxy.cfg:49 server cp1"),
        "{text}"
    );
    assert!(
        text.contains("# from keepalived.conf:14 vrrp_instance VI_1"),
        "{text}"
    );

    for (at, what) in [
        ("haproxy.cfg:6", "global `log`"),
        ("haproxy.cfg:8", "daemon"),
        ("haproxy.cfg:20", "option forwardfor"),
        ("haproxy.cfg:25", "timeout connect"),
        ("haproxy.cfg:29", "timeout check"),
        ("haproxy.cfg:35", "bind *:6443 has no address"),
        ("keepalived.conf:4", "router_id"),
        ("keepalived.conf:15", "state MASTER"),
    ] {
        assert_warned(&err, at, what);
    }
    // Warnings sorted by file and line, the summary last.
    let at = warned_at(&err);
    assert_eq!(at.first().map(String::as_str), Some("haproxy.cfg:6"));
    assert_eq!(at.last().map(String::as_str), Some("keepalived.conf:15"));
    assert!(
        err.trim_end().ends_with(&format!(
            "1 VIP, 3 backends, 1 VRRP instance, {} warnings; {} passes check-config",
            at.len(),
            out_file.display()
        )),
        "{err}"
    );
}

#[test]
fn the_config_goes_to_stdout_and_json_for_scripts() {
    let o = import(
        "k8s",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("# Imported by `lb-agent import`"),
        "{text}"
    );
    config::parse(&text, Path::new("stdout.toml")).unwrap_or_else(|e| panic!("{e}"));

    let o = import(
        "k8s",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["config"].as_str(), Some(text.as_str()));
    assert_eq!(v["summary"]["vips"], 1);
    assert_eq!(v["summary"]["backends"], 3);
    assert_eq!(v["summary"]["vrrp_instances"], 1);
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(
        v["summary"]["warnings"].as_u64(),
        Some(warnings.len() as u64)
    );
    let state = warnings
        .iter()
        .find(|w| {
            w["message"]
                .as_str()
                .is_some_and(|m| m.contains("state MASTER"))
        })
        .expect("the state warning");
    assert_eq!(state["file"], "keepalived.conf");
    assert_eq!(state["line"], 15);
    assert_eq!(state["severity"], "warning");
}

#[test]
fn homelab_ingress_with_stats_http_frontend_and_ipvs() {
    let dir = scratch("homelab");
    let out_file = dir.join("homelab.toml");
    // Multicast VRRP: no unicast_src_ip to take the SNAT address from.
    let o = import(
        "homelab",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("error: forwarding = \"nat\" needs snat_address")
            && err.contains("pass --snat-address ADDR"),
        "{err}"
    );
    assert!(err.contains("no config written"), "{err}");

    let o = import(
        "homelab",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--snat-address",
            "192.168.1.2",
            "-o",
            arg(&out_file),
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let c = checked(&out_file);

    assert_eq!(c.agent.interfaces, ["enp3s0"]);
    assert_eq!(c.agent.api_listen.to_string(), "192.168.1.2:8404");
    let auth = c.agent.stats_auth.as_ref().expect("stats_auth");
    assert_eq!(
        (auth.user.as_str(), auth.password.as_str()),
        ("admin", "homelab-stats")
    );
    let names: Vec<&str> = c.vips.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "https-in-1/nextcloud",
            "https-in-1/ingress-https",
            "https-in-2/nextcloud",
            "https-in-2/ingress-https",
            "http-in/nextcloud-http",
            "http-in/ingress-http",
            "gitea-ssh",
            "vs-192.168.1.12-53"
        ]
    );
    // The SNI frontend: a routed VIP per bind, its rule a pool, default_backend
    // the otherwise, send-proxy-v2 the pool's PROXY header, inspect-delay its wait.
    assert_eq!(
        routed_summary(&c),
        [
            "https-in-1 192.168.1.10:443 Sni otherwise=Some(\"ingress-https\") inspect=5s connect=5s idle=60s max=10000 \
             nextcloud=[cloud.home.example]None ingress-https=[]Some(V2)",
            "https-in-2 192.168.1.11:443 Sni otherwise=Some(\"ingress-https\") inspect=5s connect=5s idle=60s max=10000 \
             nextcloud=[cloud.home.example]None ingress-https=[]Some(V2)",
            "http-in 192.168.1.10:80 Host otherwise=Some(\"ingress-http\") inspect=60s connect=5s idle=60s max=10000 \
             nextcloud-http=[cloud.home.example]None ingress-http=[]None",
        ]
    );
    let https = &c.vips[1];
    assert_eq!(https.check.kind, CheckKind::Tcp);
    assert_eq!(
        https.check.interval,
        Duration::from_secs(5),
        "default-server of defaults"
    );
    assert_eq!(
        format!("{:?}", https.backends[2].state),
        "Enabled",
        "the backup server"
    );
    assert!(https.backends[2].backup && !https.backends[1].backup);
    let gitea = &c.vips[6];
    assert_eq!(gitea.backends[0].weight, 10);
    assert_eq!(format!("{:?}", gitea.backends[1].state), "Disabled");
    let dns = &c.vips[7];
    assert_eq!(
        format!("{:?} {:?}", dns.protocol, dns.forwarding),
        "Udp Dsr"
    );
    assert_eq!(dns.check.kind, CheckKind::None);
    assert_eq!(
        c.vrrp[0].tracks[0].kind,
        TrackKind::Dataplane,
        "chk_haproxy"
    );
    assert!(!c.vrrp[0].preempt);

    for (at, what) in [
        ("haproxy.cfg:3", "maxconn"),
        ("haproxy.cfg:7", "stats socket"),
        ("haproxy.cfg:23", "/stats"),
        ("haproxy.cfg:24", "stats refresh"),
        ("haproxy.cfg:39", "http-request redirect"),
        ("haproxy.cfg:45", "stick-table"),
        ("haproxy.cfg:47", "tcp-request connection reject"),
        ("haproxy.cfg:51", "balance source"),
        ("haproxy.cfg:69", "stick on src"),
        ("keepalived.conf:3", "mail alerts"),
        ("keepalived.conf:12", "watches HAProxy"),
        ("keepalived.conf:19", "state BACKUP"),
        ("keepalived.conf:26", "label enp3s0:vip"),
        ("keepalived.conf:39", "lb_algo rr"),
    ] {
        if at == "keepalived.conf:39" {
            // rr converts (a comment, not a warning).
            assert!(!warned_at(&err).contains(&at.to_string()), "{err}");
            continue;
        }
        assert_warned(&err, at, what);
    }
    // What routing converted is not warned about: the inspect-delay, the accept
    // of a ClientHello, the SNI and Host rules and acls, send-proxy-v2, the http
    // sections but for their redirect.
    let at = warned_at(&err);
    for line in [
        30, 31, 32, 35, 36, 37, 38, 40, 41, 53, 54, 55, 57, 60, 61, 62, 64, 65, 66,
    ] {
        assert!(
            !at.contains(&format!("haproxy.cfg:{line}")),
            "line {line} warned:\n{err}"
        );
    }
    // The grouped mail warning names its other lines.
    assert!(err.contains("(also at line(s) 6, 7)"), "{err}");
}

#[test]
fn templated_pair_imports_once_rendered() {
    // The templates themselves are refused, naming their template lines.
    let o = import(
        "templated",
        &[
            "--haproxy",
            "haproxy.cfg.j2",
            "--keepalived",
            "keepalived.conf.j2",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("haproxy.cfg.j2:1: error: this is an unrendered template")
            && err.contains("markers at line(s) 1, 13, 19, 21, 22, 23, 24)"),
        "{err}"
    );
    assert!(
        err.contains("keepalived.conf.j2:1: error: this is an unrendered template"),
        "{err}"
    );

    // The files Ansible rendered from them (for lb1, vars.yml) import.
    let dir = scratch("templated");
    let out_file = dir.join("lb1.toml");
    let o = import(
        "templated",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--output",
            arg(&out_file),
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let c = checked(&out_file);
    let vip = &c.vips[0];
    assert_eq!((vip.name.as_str(), vip.port), ("k8s-api", 6443));
    assert_eq!(vip.address.to_string(), "10.20.0.10");
    assert_eq!(
        vip.snat_addresses
            .first()
            .map(ToString::to_string)
            .as_deref(),
        Some("10.20.0.11")
    );
    // http-check connect ssl + send meth/uri/hdr Host (HAProxy 2.2+ form).
    assert_eq!(vip.check.kind, CheckKind::Https);
    assert_eq!(vip.check.path, "/readyz");
    assert_eq!(vip.check.host.as_deref(), Some("api.k8s.internal"));
    assert!(!vip.check.tls_verify);
    assert_eq!((vip.check.fall, vip.check.rise), (2, 2));
    assert_eq!(vip.backends.len(), 3);
    let v = &c.vrrp[0];
    assert_eq!((v.name.as_str(), v.vrid, v.priority), ("K8S_API", 60, 150));
    assert_eq!(
        format!("{:?}", v.version),
        "V3",
        "vrrp_version 3 in global_defs"
    );
    assert_eq!(v.notify, ["/usr/local/bin/vrrp-notify"]);
    let TrackKind::Script {
        command, timeout, ..
    } = &v.tracks[0].kind
    else {
        panic!("{:?}", v.tracks[0]);
    };
    assert_eq!(command, &["/usr/local/bin/check-apiserver", "10.20.0.10"]);
    assert_eq!(
        *timeout,
        Duration::from_secs(2),
        "timeout 5 capped at interval 2"
    );
    assert_eq!(v.tracks[0].weight, -20);
    assert_warned(
        &err,
        "keepalived.conf:8",
        "timeout is longer than the interval",
    );
    assert_warned(&err, "keepalived.conf:33", "`notify`");
}

#[test]
fn a_server_given_by_hostname_is_an_error() {
    let o = import(
        "errors",
        &[
            "--haproxy",
            "hostname.cfg",
            "--interface",
            "eth0",
            "--snat-address",
            "10.0.0.2",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("hostname.cfg:6: error: server web1 uses the hostname `web1.internal`")
            && err.contains("replace it with the server's IP address"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn a_bind_without_address_needs_a_vip() {
    let o = import(
        "errors",
        &[
            "--haproxy",
            "no-vip.cfg",
            "--interface",
            "eth0",
            "--snat-address",
            "10.0.0.2",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no-vip.cfg:2: error: bind :443 has no address")
            && err.contains("pass --vip ADDR"),
        "{err}"
    );

    // keepalived holds two addresses: still ambiguous.
    let o = import(
        "errors",
        &[
            "--haproxy",
            "no-vip.cfg",
            "--keepalived",
            "two-vips.conf",
            "--snat-address",
            "10.0.0.2",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("it could be any of 10.0.0.5, 10.0.0.6: pass --vip ADDR"),
        "{}",
        stderr(&o)
    );

    let o = import(
        "errors",
        &[
            "--haproxy",
            "no-vip.cfg",
            "--keepalived",
            "two-vips.conf",
            "--snat-address",
            "10.0.0.2",
            "--vip",
            "10.0.0.6",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = config::parse(&stdout(&o), Path::new("out.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.vips[0].address.to_string(), "10.0.0.6");
}

#[test]
fn a_result_that_fails_check_config_exits_non_zero_saying_why() {
    let dir = scratch("duplicate");
    let out_file = dir.join("out.toml");
    let o = import(
        "errors",
        &[
            "--haproxy",
            "duplicate.cfg",
            "--interface",
            "eth0",
            "--snat-address",
            "10.0.0.2",
            "-o",
            arg(&out_file),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    let rejected = dir.join("out.toml.rejected");
    assert!(
        !out_file.exists(),
        "a refused config is not written to --output"
    );
    assert!(rejected.exists());
    assert!(
        err.contains(&format!("{}:", rejected.display()))
            && err.contains("vip[1].port: 10.0.0.5 port 443")
            && err.contains("is already a service of another [[vip]]"),
        "{err}"
    );
    assert!(err.contains("does not pass check-config"), "{err}");
    // The same refusal from check-config itself.
    let check = Command::new(env!("CARGO_BIN_EXE_lb-agent"))
        .args(["check-config", "--config"])
        .arg(&rejected)
        .output()
        .expect("run check-config");
    assert!(!check.status.success());

    let o = import(
        "errors",
        &[
            "--haproxy",
            "duplicate.cfg",
            "--interface",
            "eth0",
            "--snat-address",
            "10.0.0.2",
            "--json",
        ],
    );
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["config_errors"][0]["key"], "vip[1].port");
    let rejected = v["rejected"].as_str().expect("rejected path");
    std::fs::remove_file(rejected).ok();
}

#[test]
fn keepalived_includes_and_no_input_are_errors() {
    let o = import("errors", &["--keepalived", "include.conf"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("include.conf:4: error: `include /etc/keepalived/conf.d/*.conf`"),
        "{err}"
    );

    let o = import("errors", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing to import"), "{}", stderr(&o));
}
