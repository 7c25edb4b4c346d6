//! Backup backends through the agent (HAProxy's `backup` and `option allbackups`):
//! real servers in namespaces, a real client. A backup takes no new connection while
//! an active backend is up; when every active one is down (or drained), the first
//! backup takes them all, or every backup with `all_backups`; when an active one
//! returns, the backups stand by again. The status, the CLI, the log and /metrics
//! say which backend is a backup and whether it serves. Needs root.

mod common;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use common::{AgentLab, BACKENDS, VIP, name};
use lb_agent::{
    lab::{TcpServer, connections, lan_v4},
    status::Status,
};

/// (VIP name, port, all_backups): backend 11 is active, 12 and 13 are backups.
const VIPS: [(&str, u16, bool); 2] = [("first", 80, false), ("all", 81, true)];

fn config() -> String {
    let mut out = String::new();
    for (vip, port, all) in VIPS {
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             all_backups = {all}\n[vip.check]\ntype = \"tcp\"\ninterval = \"200ms\"\n\
             timeout = \"150ms\"\nfall = 2\nrise = 2\n",
            lan_v4(VIP),
            lan_v4(common::LB)
        ));
        for (i, b) in BACKENDS.iter().enumerate() {
            out.push_str(&format!(
                "[[vip.backend]]\naddress = \"{}\"\nbackup = {}\n",
                lan_v4(*b),
                i > 0
            ));
        }
    }
    out
}

/// Each backend's state in the status, by backend index.
fn states(s: &Status, vip: &str) -> BTreeMap<u8, String> {
    let v = s.vip(vip).expect("vip in status");
    BACKENDS
        .iter()
        .map(|i| {
            let b = v
                .backends
                .iter()
                .find(|b| b.address == lan_v4(*i).to_string())
                .expect("backend in status");
            (*i, b.state.clone())
        })
        .collect()
}

fn expect(pairs: &[(u8, &str)]) -> BTreeMap<u8, String> {
    pairs.iter().map(|(i, s)| (*i, s.to_string())).collect()
}

/// 90 new connections to VIP `port`: none fails; who answered, by backend index.
fn answered(lab: &AgentLab, port: u16) -> BTreeMap<u8, u32> {
    let t = connections(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), port),
        90,
        Duration::from_secs(2),
    )
    .expect("client");
    assert_eq!(t.failures, 0, "port {port}: {:?}", t.first_failure);
    BACKENDS
        .iter()
        .filter_map(|i| t.answers.get(&name(*i)).map(|n| (*i, *n as u32)))
        .collect()
}

/// Banner servers of backend `i` on both VIP ports.
fn serve(lab: &AgentLab, i: usize) -> Vec<TcpServer> {
    VIPS.iter()
        .map(|(_, port, _)| {
            TcpServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(BACKENDS[i]), *port),
                &name(BACKENDS[i]),
            )
            .expect("banner server")
        })
        .collect()
}

#[test]
fn backups_take_new_connections_only_while_no_active_backend_can() {
    let mut lab = AgentLab::new();
    lab.write_config(&config());
    let mut servers: Vec<Vec<TcpServer>> = (0..BACKENDS.len()).map(|i| serve(&lab, i)).collect();
    lab.start();
    let standing_by = expect(&[(11, "up"), (12, "standby"), (13, "standby")]);
    lab.wait_for(
        "the active backend up, the backups standing by",
        Duration::from_secs(5),
        |s| VIPS.iter().all(|(v, _, _)| states(s, v) == standing_by),
    );
    for (vip, port, _) in VIPS {
        assert_eq!(answered(&lab, port), BTreeMap::from([(11, 90)]), "{vip}");
        let v = lab.status();
        let v = v.vip(vip).expect("vip");
        assert_eq!(v.up, 1, "{vip}: standing-by backups take no new flows");
        assert!(v.backends[1].backup && !v.backends[0].backup);
        assert_eq!(
            v.backends[1].ring_slots, 0,
            "{vip}: no ring share while standing by"
        );
    }
    let cli = lab.cli(&["backends"]);
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(
        table.contains(&format!("{}:80 (backup)", lan_v4(12))) && table.contains("standby"),
        "{table}"
    );

    // The active backend stops: the first backup takes every new connection on
    // "first", both backups share them on "all".
    servers[0].clear();
    lab.wait_for("the backups serving", Duration::from_secs(3), |s| {
        states(s, "first") == expect(&[(11, "down"), (12, "up"), (13, "standby")])
            && states(s, "all") == expect(&[(11, "down"), (12, "up"), (13, "up")])
    });
    assert_eq!(answered(&lab, 80), BTreeMap::from([(12, 90)]));
    let all = answered(&lab, 81);
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), [12, 13], "{all:?}");
    assert!(
        all.values().all(|n| *n >= 15),
        "both backups take a share: {all:?}"
    );
    let log = lab.log();
    for line in [
        "backup backend first/198.18.1.12:80 takes new flows: no active backend of VIP first can",
        "backup backend all/198.18.1.13:81 takes new flows",
    ] {
        assert_eq!(log.matches(line).count(), 1, "{line}:\n{log}");
    }
    let metrics = lab.http_get("/metrics", None).1;
    for sample in [
        "lb_backend_backup{vip=\"first\",backend=\"198.18.1.12:80\"} 1",
        "lb_backend_backup{vip=\"first\",backend=\"198.18.1.11:80\"} 0",
        "lb_backend_state{vip=\"first\",backend=\"198.18.1.13:80\",state=\"standby\"} 1",
        "lb_vip_backends_up{vip=\"all\"} 2",
    ] {
        assert!(metrics.contains(sample), "{sample}:\n{metrics}");
    }
    assert_eq!(
        lab.http_get("/ready", None).0,
        200,
        "a serving backup makes the VIP ready"
    );

    // The first backup fails too: the next one takes over on "first".
    servers[1].clear();
    lab.wait_for("the second backup serving", Duration::from_secs(3), |s| {
        states(s, "first") == expect(&[(11, "down"), (12, "down"), (13, "up")])
    });
    assert_eq!(answered(&lab, 80), BTreeMap::from([(13, 90)]));

    // The active backend returns: the backups stand by again, new connections go
    // to it alone.
    servers[0] = serve(&lab, 0);
    servers[1] = serve(&lab, 1);
    lab.wait_for(
        "the backups standing by again",
        Duration::from_secs(3),
        |s| VIPS.iter().all(|(v, _, _)| states(s, v) == standing_by),
    );
    for (_, port, _) in VIPS {
        assert_eq!(answered(&lab, port), BTreeMap::from([(11, 90)]));
    }
    assert!(
        lab.log()
            .contains("backup backend all/198.18.1.13:81 stands by again"),
        "{}",
        lab.log()
    );

    // Draining the active backend (as HAProxy's drain: weight 0) hands new
    // connections to the backups as well.
    let out = lab.cli(&["drain", "first", &lan_v4(11).to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.wait_for(
        "a backup serving while the active one drains",
        Duration::from_secs(3),
        |s| states(s, "first") == expect(&[(11, "drain"), (12, "up"), (13, "standby")]),
    );
    assert_eq!(answered(&lab, 80), BTreeMap::from([(12, 90)]));
    drop(servers);
}
