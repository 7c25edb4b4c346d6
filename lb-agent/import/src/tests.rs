//! End-to-end tests of the import: inputs in, a config our own check accepts out.

use std::{net::IpAddr, path::Path, time::Duration};

use lb_config::{CheckKind, TrackKind};

use super::*;

fn input(file: &str, text: &str) -> Input {
    Input {
        file: file.into(),
        text: text.into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn lines(list: &[Diagnostic]) -> Vec<(String, usize)> {
    list.iter()
        .map(|d| (d.file.clone().unwrap_or_default(), d.line))
        .collect()
}

const HAPROXY: &str = "\
defaults
    mode tcp
    timeout client 30s
frontend web
    bind :80
    bind :443
    default_backend web
backend web
    option httpchk HEAD /health HTTP/1.1\\r\\nHost:\\ web.example
    http-check expect status 200,204
    server w1 10.0.0.11 check inter 1s fastinter 500ms fall 2 rise 4 weight 3
    server w2 10.0.0.12 check inter 1s fastinter 500ms fall 2 rise 4
listen db6
    bind [2001:db8::5]:5432
    server d1 [2001:db8::11]:5432 check
";

const KEEPALIVED: &str = "\
vrrp_instance V4 {
    interface eth0
    virtual_router_id 5
    priority 120
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.3
    }
    virtual_ipaddress {
        10.0.0.5/24
    }
}
";

#[test]
fn a_converted_pair_passes_the_config_check_with_its_values() {
    let opts = Options {
        snat_addresses: vec![ip("2001:db8::2")],
        ..Options::default()
    };
    let out = convert(
        Some(&input("haproxy.cfg", HAPROXY)),
        Some(&input("keepalived.conf", KEEPALIVED)),
        &opts,
    )
    .expect("converts");
    let c = out
        .check(Path::new("out.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", out.config));
    assert_eq!(c.agent.interfaces, ["eth0"]);
    let names: Vec<&str> = c.vips.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["web-80", "web-443", "db6"]);
    let web = &c.vips[1];
    assert_eq!(web.address, ip("10.0.0.5"));
    assert_eq!(web.port, 443);
    assert_eq!(web.snat_addresses, vec![ip("10.0.0.2")]);
    assert_eq!(web.check.kind, CheckKind::Http);
    assert_eq!(web.check.path, "/health");
    assert_eq!(web.check.host.as_deref(), Some("web.example"));
    assert_eq!(web.check.expect_status, [200, 204]);
    assert_eq!(web.check.interval, Duration::from_secs(1));
    assert_eq!(web.check.fastinter, Duration::from_millis(500));
    assert_eq!((web.check.fall, web.check.rise), (2, 4));
    assert_eq!(web.backends[0].weight, 3);
    assert_eq!(web.backends[0].port, 443, "no server port: the VIP's");
    let db = &c.vips[2];
    assert_eq!(db.address, ip("2001:db8::5"));
    assert_eq!(db.snat_addresses, vec![ip("2001:db8::2")]);
    assert_eq!(db.backends[0].address, ip("2001:db8::11"));
    assert_eq!(c.vrrp[0].unicast_peers, [ip("10.0.0.3")]);
    assert_eq!(
        out.summary,
        Summary {
            vips: 3,
            backends: 5,
            vrrp_instances: 1,
            warnings: 4
        }
    );
    assert_eq!(
        out.summary.to_string(),
        "3 VIPs, 5 backends, 1 VRRP instance, 4 warnings"
    );
    // timeout client, the HEAD method, and the two binds given the keepalived VIP.
    assert_eq!(
        lines(&out.warnings),
        [
            ("haproxy.cfg".to_string(), 3),
            ("haproxy.cfg".to_string(), 5),
            ("haproxy.cfg".to_string(), 6),
            ("haproxy.cfg".to_string(), 9),
        ]
    );
    assert!(
        out.warnings[3].message.contains("HEAD becomes GET"),
        "{}",
        out.warnings[3]
    );
    assert!(out.config.contains("# from haproxy.cfg:4 frontend web"));
    assert!(
        out.config
            .contains("[[vip.backend]]  # haproxy.cfg:11 server w1")
    );
}

#[test]
fn every_line_not_expressed_is_warned() {
    // Each line from 3 on is something lb-agent does not do.
    let text = "\
listen app
    bind 10.0.0.5:8080
    maxconn 100
    acl bad src 10.9.0.0/16
    tcp-request connection reject if bad
    stick-table type ip size 1m
    stick on src
    errorfile 503 /etc/haproxy/503.http
    http-request deny
    redirect prefix /x
    timeout server 1m
    balance uri
    retries 3
    option redispatch
    hash-type consistent
    source 10.0.0.2
    server a 10.0.0.11:8080 check send-proxy maxconn 50 slowstart 10s
    monitor-uri /up
    frobnicate yes
";
    let opts = Options {
        interfaces: vec!["eth0".into()],
        snat_addresses: vec![ip("10.0.0.2")],
        ..Options::default()
    };
    let out = convert(Some(&input("h.cfg", text)), None, &opts).expect("converts");
    out.check(Path::new("x.toml")).expect("passes the check");
    let mut warned: Vec<usize> = out.warnings.iter().map(|w| w.line).collect();
    warned.dedup();
    assert_eq!(warned, (3..=19).collect::<Vec<_>>(), "{:#?}", out.warnings);
    let server: Vec<&str> = out
        .warnings
        .iter()
        .filter(|w| w.line == 17)
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(server.len(), 3, "{server:#?}");
    assert!(
        server
            .iter()
            .any(|m| m.contains("`send-proxy` not converted"))
    );
    let monitor = out
        .warnings
        .iter()
        .find(|w| w.line == 18)
        .expect("monitor-uri");
    assert!(monitor.message.contains("/ready"), "{}", monitor.message);
}

#[test]
fn missing_values_name_the_flag_to_pass() {
    let text = "listen a\n    bind 10.0.0.5:80\n    server s 10.0.0.11:80 check\n";
    let err =
        convert(Some(&input("h.cfg", text)), None, &Options::default()).expect_err("needs flags");
    let ImportError::Inputs { errors, .. } = err else {
        panic!("{err}");
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(text[0].contains("pass --interface IF"), "{}", text[0]);
    assert!(
        text[1].contains("pass --snat-address ADDR") && text[1].contains("a (h.cfg:1)"),
        "{}",
        text[1]
    );
}

#[test]
fn keepalived_alone_gives_vrrp_only() {
    let out = convert(
        None,
        Some(&input("keepalived.conf", KEEPALIVED)),
        &Options::default(),
    )
    .expect("converts");
    let c = out.check(Path::new("k.toml")).expect("passes");
    assert!(c.vips.is_empty());
    assert_eq!(c.vrrp[0].vrid, 5);
    assert_eq!(c.vrrp[0].priority, 120);
    assert_eq!(c.vrrp[0].auth_pass, None);
}

#[test]
fn interface_and_haproxy_trackers() {
    let k = "\
vrrp_script chk_haproxy {
    script \"pidof haproxy\"
    weight 10
}
vrrp_script chk_curl {
    script \"curl -sf http://127.0.0.1:8080/ || exit 1\"
}
vrrp_instance A {
    interface bond0
    virtual_router_id 8
    virtual_ipaddress {
        10.0.0.5
    }
    track_interface {
        bond0 weight -30
    }
    track_script {
        chk_haproxy
        chk_curl weight 5
    }
}
";
    let out = convert(None, Some(&input("k.conf", k)), &Options::default()).expect("converts");
    let c = out.check(Path::new("k.toml")).expect("passes");
    let tracks = &c.vrrp[0].tracks;
    assert_eq!(
        tracks[0].kind,
        TrackKind::Interface {
            name: "bond0".into()
        }
    );
    assert_eq!(
        tracks[0].weight, 0,
        "keepalived ignores tracking its own interface (it faults on it anyway)"
    );
    assert!(
        out.warnings.iter().any(|w| w
            .message
            .contains("Ignoring track_interface bond0 since own interface")),
        "{:?}",
        out.warnings
    );
    assert_eq!(tracks[1].kind, TrackKind::Dataplane);
    assert_eq!(tracks[1].weight, 10);
    let TrackKind::Script {
        command, interval, ..
    } = &tracks[2].kind
    else {
        panic!("{:?}", tracks[2]);
    };
    assert_eq!(command[..2], ["/bin/sh".to_string(), "-c".to_string()]);
    assert_eq!(*interval, Duration::from_secs(1), "keepalived's default");
    assert_eq!(tracks[2].weight, 5);
    assert_eq!(c.vrrp[0].addresses, [(ip("10.0.0.5"), 32)]);
}

#[test]
fn templates_are_refused_whole() {
    let err = convert(
        Some(&input(
            "h.cfg.j2",
            "global\n  daemon\nlisten {{ name }}\n  bind {{ vip }}:80\n",
        )),
        None,
        &Options::default(),
    )
    .expect_err("a template");
    let ImportError::Inputs { errors, warnings } = err else {
        panic!("{err}");
    };
    assert!(warnings.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 3);
    assert!(errors[0].message.contains("line(s) 3, 4"), "{}", errors[0]);
}

#[test]
fn nothing_to_import() {
    assert!(matches!(
        convert(None, None, &Options::default()),
        Err(ImportError::NoInput)
    ));
}

#[test]
fn a_frontend_routes_by_name_only_when_a_rule_can_be_said_with_names() {
    let opts = Options {
        interfaces: vec!["eth0".into()],
        snat_addresses: vec![ip("10.0.0.2")],
        ..Options::default()
    };
    // Only a path rule: a VIP of the data plane, every routing line warned as before.
    let text = "\
frontend f
    bind 10.0.0.5:443
    tcp-request inspect-delay 5s
    acl api req.ssl_sni -m beg api.
    use_backend b if api
    default_backend a
backend a
    server a1 10.0.0.11:443
backend b
    server b1 10.0.0.12:443
";
    let out = convert(Some(&input("h.cfg", text)), None, &opts).expect("converts");
    let c = out.check(Path::new("x.toml")).expect("passes the check");
    assert!(c.routed.is_empty());
    assert_eq!(c.vips[0].name, "f");
    let warned: Vec<usize> = out.warnings.iter().map(|w| w.line).collect();
    assert_eq!(warned, [3, 4, 5, 9], "{:#?}", out.warnings);
    assert!(
        out.warnings[2]
            .message
            .contains("nor can a routed VIP route it: acl api (line 4): `-m beg`"),
        "{}",
        out.warnings[2].message
    );

    // A name rule: a routed VIP; servers disagreeing on send-proxy are warned, the
    // first one's taken; `unless` is warned and left to the other rules.
    let text = "\
frontend f
    bind 10.0.0.5:443
    tcp-request inspect-delay 2s
    use_backend b if { req.ssl_sni -i b.lan }
    use_backend a unless { req.ssl_sni -i b.lan }
    default_backend a
backend a
    server a1 10.0.0.11:443 send-proxy
    server a2 10.0.0.12:443 send-proxy-v2
backend b
    server b1 10.0.0.13
";
    let out = convert(Some(&input("h.cfg", text)), None, &opts).expect("converts");
    let c = out.check(Path::new("x.toml")).expect("passes the check");
    let r = &c.routed[0];
    assert_eq!(r.inspect_timeout, Duration::from_secs(2));
    assert_eq!(r.pools[0].name, "b");
    assert_eq!(r.pools[1].name, "a");
    assert_eq!(r.otherwise, Some(1));
    assert_eq!(r.pools[1].send_proxy, Some(lb_config::proxy::Version::V1));
    // b1 has no port: the bind's.
    let b = c.vips.iter().find(|v| v.name == "f/b").expect("pool b");
    assert_eq!(b.backends[0].port, 443);
    let warned: Vec<(usize, &str)> = out
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(
        warned[0].0 == 5 && warned[0].1.contains("`unless`"),
        "{warned:#?}"
    );
    assert!(
        warned[1].0 == 9 && warned[1].1.contains("a pool sends one PROXY header"),
        "{warned:#?}"
    );
}
