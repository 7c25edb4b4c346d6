//! `lb-agent import` on setups in the shapes people publish them (the kubeadm HA
//! guide's pair, OpenShift's on-prem pair as rendered, kolla-ansible's Galera VIP
//! with backup servers, a keepalived sync group, kubespray's localhost load
//! balancer, and keepalived/HAProxy edge cases), each imported with only the flags
//! the command asks for. The real tools are the oracles: every haproxy.cfg fixture
//! passes `haproxy -c`, every keepalived.conf is read by `keepalived -t`, and where
//! keepalived reports a replaced value or a cleared option, the import's output
//! matches it. `keepalived -t` runs in a namespace (root).

mod import_support;

use std::time::Duration;

use import_support::*;
use lb_agent::config::{CheckKind, TrackKind, VrrpConfig};

const SECOND: Duration = Duration::from_secs(1);

fn track_commands(v: &VrrpConfig) -> Vec<(String, i32)> {
    v.tracks
        .iter()
        .map(|t| {
            let what = match &t.kind {
                TrackKind::Script { command, .. } => command.join(" "),
                TrackKind::Dataplane => "dataplane".into(),
                TrackKind::Interface { name } => format!("interface {name}"),
                TrackKind::VipHealthy { vip } => format!("vip_healthy {vip}"),
            };
            (what, t.weight)
        })
        .collect()
}

#[test]
fn every_haproxy_fixture_passes_haproxy_c() {
    let files = fixture_files("cfg");
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        haproxy_accepts(f);
    }
}

#[test]
fn every_keepalived_fixture_is_read_by_keepalived_t() {
    let files = fixture_files("conf");
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        keepalived_says(f);
    }
}

#[test]
fn the_kubeadm_guide_s_pair_keeps_haproxy_s_tls_hello_check() {
    let (c, err, _) = imported(
        "kubeadm",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--snat-address",
            "192.168.10.21",
        ],
    );
    let v = &c.vips[0];
    assert_eq!(v.address.to_string(), "192.168.10.100");
    assert_eq!(
        v.check.kind,
        CheckKind::Tls,
        "`option ssl-hello-chk` came last: HAProxy runs it, not the HTTP check"
    );
    assert!(
        !v.check.tls_verify,
        "the hello check verifies no certificate"
    );
    assert_eq!(v.check.interval, 2 * SECOND, "HAProxy's inter");
    assert_eq!(
        v.check.timeout,
        2 * SECOND,
        "min(timeout connect 5s, inter) + 10s, capped"
    );
    assert_warned(
        &err,
        "haproxy.cfg:47",
        "`option ssl-hello-chk` replaces `option httpchk` (line 44)",
    );
    assert_warned(
        &err,
        "haproxy.cfg:47",
        "http-check rules (line(s) 45) do nothing",
    );
    assert!(
        !err.contains("https"),
        "nothing claims an HTTP(S) check:\n{err}"
    );

    let r = &c.vrrp[0];
    assert_eq!((r.priority, r.preempt), (101, true));
    assert_eq!(
        (r.garp_repeat, r.garp_interval, r.garp_refresh),
        (5, Duration::ZERO, Duration::ZERO),
        "keepalived's gratuitous ARP defaults"
    );
    let says = keepalived_says(&fixtures("kubeadm/keepalived.conf"));
    assert!(
        !says.contains("Priority not valid") && !says.contains("nopreempt"),
        "{says}"
    );

    // `bind *:6443` is IPv4 only: an IPv6 --vip does not fit it.
    let o = import(
        "kubeadm",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--interface",
            "eth0",
            "--vip",
            "2001:db8::100",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "haproxy.cfg:35: error: bind *:6443 has no address and no virtual address of its families (IPv4) is known"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn openshift_s_v4v6_bind_takes_the_ipv4_vip_and_localhost_stats() {
    let args = [
        "--haproxy",
        "haproxy.cfg",
        "--keepalived",
        "keepalived.conf",
        "--snat-address",
        "192.168.111.20",
    ];
    // Two keepalived VIPs (API and ingress): the import asks which one.
    let o = import("openshift", &args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "haproxy.cfg:16: error: bind :::9445 has no address and it could be any of 192.168.111.5, 192.168.111.4: pass --vip ADDR"
        ),
        "{}",
        stderr(&o)
    );
    let mut with_vip = args.to_vec();
    with_vip.extend(["--vip", "192.168.111.5"]);
    let (c, err, text) = imported("openshift", &with_vip);
    assert_eq!(c.vips.len(), 1, "{text}");
    let v = &c.vips[0];
    assert_eq!(
        (v.address.to_string(), v.port),
        ("192.168.111.5".to_string(), 9445)
    );
    assert_eq!(v.check.kind, CheckKind::Https);
    assert_eq!(v.check.path, "/readyz");
    assert!(!v.check.tls_verify);
    assert_eq!(
        (v.check.interval, v.check.timeout),
        (SECOND, SECOND),
        "inter, no timeout check"
    );
    assert_eq!((v.check.fall, v.check.rise), (2, 3));
    assert!(
        text.contains("address = \"192.168.111.20\"  # this node's own address: served through the local stack"),
        "master-0 is this node: {text}"
    );
    assert_eq!(
        c.agent.api_listen.to_string(),
        "127.0.0.1:50000",
        "bind localhost:50000"
    );
    let auth = c.agent.stats_auth.as_ref().expect("stats auth");
    assert_eq!(
        (auth.user.as_str(), auth.password.as_str()),
        ("Username", "Password")
    );
    assert!(!err.contains("bind options"), "v4v6 is understood:\n{err}");

    // keepalived cuts the v2 passwords to 8 characters: so does the import.
    let says = keepalived_says(&fixtures("openshift/keepalived.conf"));
    assert_eq!(
        says.matches("Truncating auth_pass to 8 characters").count(),
        2,
        "{says}"
    );
    let passes: Vec<&str> = c
        .vrrp
        .iter()
        .filter_map(|r| r.auth_pass.as_deref())
        .collect();
    assert_eq!(passes, ["ostest_a", "ostest_i"]);
    assert_eq!(c.vrrp[0].priority, 40);
}

#[test]
fn kolla_s_galera_vip_keeps_its_backup_servers() {
    let (c, err, text) = imported(
        "kolla",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--snat-address",
            "10.0.0.11",
        ],
    );
    let db = c.vips.iter().find(|v| v.port == 3306).expect("mariadb VIP");
    assert_eq!(db.address.to_string(), "10.0.0.250");
    let backups: Vec<(String, bool)> = db
        .backends
        .iter()
        .map(|b| (b.address.to_string(), b.backup))
        .collect();
    assert_eq!(
        backups,
        [
            ("10.0.0.11".to_string(), false),
            ("10.0.0.12".to_string(), true),
            ("10.0.0.13".to_string(), true)
        ]
    );
    assert!(!db.all_backups, "the first backup only, HAProxy's default");
    assert!(
        db.backends
            .iter()
            .all(|b| b.state == lb_agent::config::AdminState::Enabled)
    );
    assert_eq!(db.check.kind, CheckKind::Http);
    assert_eq!(db.check.port, Some(4569), "clustercheck's port");
    assert_eq!(db.check.interval, 2 * SECOND, "inter 2000");
    assert!(
        !err.lines().any(|l| l.contains("server ctl")),
        "backups are converted, not warned:\n{err}"
    );
    assert!(
        text.contains("backup = true  # new flows only while no active server is up"),
        "{text}"
    );

    let says = keepalived_says(&fixtures("kolla/keepalived.conf"));
    assert!(
        says.contains("Truncating auth_pass to 8 characters"),
        "{says}"
    );
    let r = &c.vrrp[0];
    assert_eq!(r.auth_pass.as_deref(), Some("3Hh2FBdN"));
    assert_eq!(
        (r.priority, r.preempt),
        (1, false),
        "state BACKUP keeps nopreempt"
    );
}

#[test]
fn a_sync_group_s_script_tracks_every_member_and_member_weights_go_as_keepalived_drops_them() {
    let (c, err, text) = imported(
        "syncgroup",
        &[
            "--haproxy",
            "haproxy.cfg",
            "--keepalived",
            "keepalived.conf",
            "--snat-address",
            "192.168.50.11",
        ],
    );
    let says = keepalived_says(&fixtures("syncgroup/keepalived.conf"));
    for r in &c.vrrp {
        let dropped = format!(
            "({}) ignoring tracked script chk_own with weights due to SYNC group",
            r.name
        );
        assert!(says.contains(&dropped), "keepalived: {says}");
        assert!(err.contains(&dropped), "the import quotes it:\n{err}");
        // VI_EXT: its weighted interface kept without its weight, the group's HAProxy
        // check (now the data plane); VI_INT: the same check, and VI_EXT's weight-0
        // trackers and link (keepalived faults the whole group).
        let link = |i: &str| (format!("interface {i}"), 0);
        let data = ("dataplane".to_string(), 0);
        let want = if r.name == "VI_EXT" {
            vec![link("eth1"), data]
        } else {
            vec![data, link("eth1"), link("eth0")]
        };
        assert_eq!(
            track_commands(r),
            want,
            "{}: the group's HAProxy check (now the data plane) with weight 0, chk_own gone, \
             the other member's link (keepalived faults the group):\n{text}",
            r.name
        );
    }
    assert!(!err.contains("not tracked by any"), "{err}");
    // A member's weighted interface is kept, without its weight.
    let kept = "(VI_EXT) ignoring eth1 tracked interface weight due to SYNC group";
    assert!(says.contains(kept), "keepalived: {says}");
    assert!(err.contains(kept), "the import quotes it:\n{err}");
    for (line, what) in [
        (30, "notify_master"),
        (31, "notify_backup"),
        (32, "notify_fault"),
    ] {
        assert_warned(&err, &format!("keepalived.conf:{line}"), what);
    }
    assert_eq!(c.vips[0].check.kind, CheckKind::Tcp);
    assert_eq!(
        c.vips[0].check.timeout,
        2 * SECOND,
        "min(5s, inter 2s) + 3s, capped at inter"
    );
}

#[test]
fn keepalived_s_replacements_are_the_import_s() {
    let keepalived_only = |file: &str| imported("edge-cases", &["--keepalived", file]).0;
    // state MASTER + nopreempt: keepalived clears nopreempt.
    let says = keepalived_says(&fixtures("edge-cases/master-nopreempt.conf"));
    assert!(
        says.contains(
            "(VI_1) Warning - nopreempt will not work with initial state MASTER - clearing"
        ),
        "{says}"
    );
    assert!(keepalived_only("master-nopreempt.conf").vrrp[0].preempt);

    // A priority keepalived cannot read, or out of 1-255: its default, 100, even
    // for state MASTER (whose default would be 255).
    for (file, names) in [
        ("priority-false.conf", &["VI_1"][..]),
        ("priority-range.conf", &["VI_HIGH", "VI_ZERO"][..]),
    ] {
        let says = keepalived_says(&fixtures(&format!("edge-cases/{file}")));
        let c = keepalived_only(file);
        for name in names {
            assert!(
                says.contains(&format!(
                    "({name}) Priority not valid! must be between 1 & 255. Using default 100"
                )),
                "{says}"
            );
            let r = c.vrrp.iter().find(|r| r.name == *name).expect("instance");
            assert_eq!(r.priority, 100, "{file} {name}");
        }
    }

    // global_defs gratuitous ARP settings are every instance's.
    let c = keepalived_only("garp-globals.conf");
    let r = &c.vrrp[0];
    assert_eq!(
        (r.garp_repeat, r.garp_refresh, r.garp_interval),
        (3, 60 * SECOND, Duration::from_millis(1))
    );
}

#[test]
fn haproxy_edge_cases_keep_haproxy_s_meaning() {
    let base = ["--interface", "eth0", "--snat-address", "192.168.20.2"];
    let with = |file: &str, extra: &[&str]| {
        let mut a = vec!["--haproxy", file];
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        imported("edge-cases", &a)
    };
    // No `timeout check`: HAProxy times a check out after `inter`.
    let (c, _, _) = with("inter-no-timeout.cfg", &[]);
    assert_eq!(
        (c.vips[0].check.interval, c.vips[0].check.timeout),
        (10 * SECOND, 10 * SECOND)
    );
    assert!(c.vips[0].backends[1].backup);

    // check-ssl without option httpchk: a TLS handshake.
    let (c, _, _) = with("check-ssl-alone.cfg", &[]);
    assert_eq!(c.vips[0].check.kind, CheckKind::Tls);
    assert!(!c.vips[0].check.tls_verify);

    // `bind :::6443` (IPv6 and, by Linux's default, IPv4) next to
    // `bind 0.0.0.0:6443`: one IPv4 VIP, not an error.
    let (c, err, _) = with("bind-families.cfg", &["--vip", "192.168.10.100"]);
    assert_eq!(c.vips.len(), 1, "{err}");
    assert_eq!(c.vips[0].address.to_string(), "192.168.10.100");

    // kubespray's localhost load balancer: a node-local VIP, no SNAT address.
    let (c, err, text) = imported(
        "edge-cases",
        &["--haproxy", "localhost-lb.cfg", "--interface", "eth0"],
    );
    let v = &c.vips[0];
    assert!(v.node_local(), "{text}");
    assert_eq!(
        (v.address.to_string(), v.port),
        ("127.0.0.1".to_string(), 6443)
    );
    assert!(v.snat_addresses.is_empty());
    assert_eq!(v.check.kind, CheckKind::Https);
    assert_eq!(
        (v.check.interval, v.check.downinter),
        (15 * SECOND, 15 * SECOND)
    );
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn the_homelab_front_door_s_sni_and_host_rules_become_routed_vips() {
    let (c, err, text) = imported(
        "front-door",
        &["--haproxy", "haproxy.cfg", "--interface", "eth0"],
    );
    assert_eq!(
        routed_summary(&c),
        [
            "tls 192.0.2.10:443 Sni otherwise=Some(\"fallback-tls\") inspect=5s connect=4s idle=3600s max=5000 \
             cluster-a-tls=[a.lan *.a.lan]Some(V2) cluster-b-tls=[b.lan *.b.lan shared.lan]Some(V1) fallback-tls=[]Some(V2)",
            "web 192.0.2.10:80 Host otherwise=Some(\"cluster-b-http\") inspect=10s connect=4s idle=3600s max=10000 \
             cluster-a-http=[a.lan www.a.lan]Some(V1) cluster-b-http=[b.lan *.b.lan]Some(V2)",
        ],
        "{text}"
    );
    // What a routed VIP cannot say is warned at its line; what it says is not.
    assert_warned(
        &err,
        "haproxy.cfg:29",
        "HAProxy never routes old.a.lan here",
    );
    assert_warned(&err, "haproxy.cfg:30", "`-m beg`");
    assert_warned(&err, "haproxy.cfg:36", "send_proxy");
    assert_warned(&err, "haproxy.cfg:51", "backend legacy-tls is not used");
    assert_warned(&err, "haproxy.cfg:63", "X-Cluster");
    let at = warned_at(&err);
    for line in (18..=28).chain([31, 33, 34, 35]).chain(38..=62) {
        if line == 51 {
            continue;
        }
        assert!(
            !at.contains(&format!("haproxy.cfg:{line}")),
            "line {line} warned:\n{err}"
        );
    }
}
