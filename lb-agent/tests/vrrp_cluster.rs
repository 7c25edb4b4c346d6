//! Two agents on one LAN elect a VIP owner with VRRP v3 (multicast): the higher priority holds
//! the address (added with rtnetlink, announced with gratuitous ARP), clients reach
//! the service through it; `kill -9` of the master moves the VIP within
//! Master_Down_Interval; the killed node's next start removes what it left and,
//! preempting, takes the VIP back; a graceful stop hands over within the skew;
//! `preempt_delay` holds a returning higher priority back. At no
//! sampled moment do both hold the address. Needs root.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{
    BACKENDS, Cluster, Node, VIP,
    eventually::{TIMING_SLACK, eventually, eventually_or},
};
use lb_agent::lab::lan_v4;

fn config(node: u8, priority: u8) -> String {
    let mut out = format!(
        "[[vip]]\nname = \"web\"\naddress = \"{}\"\nport = 80\nsnat_address = \"{}\"\n\
         [vip.check]\ninterval = \"500ms\"\n",
        lan_v4(VIP),
        lan_v4(node)
    );
    for b in BACKENDS {
        out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
    }
    out.push_str(&format!(
        "\n[[vrrp]]\nname = \"vi_web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{}/24\"]\ngarp_refresh = \"1s\"\n",
        lan_v4(VIP)
    ));
    out
}

/// Waits until node `master` is MASTER and holds the VIP and the others do not;
/// asserts no two ever hold it together meanwhile. Returns how long it took.
fn holds_vip(n: &Node) -> bool {
    n.holds(&format!("{}/24", lan_v4(VIP)))
}

/// Waits until node `master` (0-based) is MASTER and the only node holding the VIP.
fn wait_master(c: &Cluster, master: usize, limit: Duration) -> Duration {
    let holding = || -> Vec<usize> {
        (0..c.nodes.len())
            .filter(|i| holds_vip(&c.nodes[*i]))
            .collect()
    };
    eventually_or(
        &format!("node {} the only master", master + 1),
        limit,
        || holding() == vec![master] && c.nodes[master].vrrp_state() == "MASTER",
        || format!("holding: {:?}", holding()),
    )
}

#[test]
fn election_kill_9_failover_restart_and_graceful_handover() {
    let mut c = Cluster::new(2);
    let _servers = c.banners(lan_v4, 80);
    c.nodes[0].write_config(&config(1, 150));
    c.nodes[1].write_config(&config(2, 100));
    c.nodes[0].start();
    c.nodes[1].start();
    wait_master(&c, 0, Duration::from_secs(3));
    assert_eq!(c.nodes[1].vrrp_state(), "BACKUP");
    c.nodes[1].wait_for("the backup knows its master", Duration::from_secs(1), |s| {
        s.vrrp[0].master == lan_v4(1).to_string()
    });
    c.served(SocketAddr::new(lan_v4(VIP), 80));

    // kill -9 of the master: the backup takes over within 3 x 100 ms + skew (61 ms),
    // plus the slack of a shared machine.
    c.nodes[0].kill9();
    let took = eventually("failover to the backup", Duration::from_secs(3), || {
        c.nodes[1].vrrp_state() == "MASTER" && holds_vip(&c.nodes[1])
    });
    eprintln!("kill -9 of the master: backup MASTER after {took:?}");
    let bound = Duration::from_millis(300 + 61) + TIMING_SLACK;
    assert!(took < bound, "failover after {took:?}, above {bound:?}");
    c.served_by(1, SocketAddr::new(lan_v4(VIP), 80));

    // The killed node's next start removes the address it left, then preempts.
    c.nodes[0].start();
    let took = wait_master(&c, 0, Duration::from_secs(3));
    eprintln!("restarted node back as MASTER after {took:?}");
    assert_eq!(c.nodes[1].vrrp_state(), "BACKUP");
    c.served_by(0, SocketAddr::new(lan_v4(VIP), 80));

    // A graceful stop sends priority 0: the backup takes over after its skew only.
    let start = Instant::now();
    c.nodes[0].terminate();
    assert!(
        !holds_vip(&c.nodes[0]),
        "a stopped agent removes its addresses"
    );
    wait_master(&c, 1, Duration::from_secs(2));
    let took = start.elapsed();
    eprintln!("graceful stop: backup MASTER {took:?} after SIGTERM");
    c.served_by(1, SocketAddr::new(lan_v4(VIP), 80));
    let m = c.nodes[1].http_get("/metrics", None).1;
    assert!(
        m.contains("lb_vrrp_state{vrrp_instance=\"vi_web\",state=\"MASTER\"} 1"),
        "{m}"
    );
    let out = c.nodes[1].cli(&["vrrp"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("vi_web") && table.contains("MASTER"),
        "{table}"
    );

    // preempt_delay: the higher priority comes back but holds off for 1 s.
    c.nodes[0].write_config(&format!("{}preempt_delay = \"1s\"\n", config(1, 150)));
    let start = Instant::now();
    c.nodes[0].start();
    std::thread::sleep(Duration::from_millis(600).saturating_sub(start.elapsed()));
    assert_eq!(
        c.nodes[0].vrrp_state(),
        "BACKUP",
        "held back by preempt_delay"
    );
    assert!(holds_vip(&c.nodes[1]));
    wait_master(&c, 0, Duration::from_secs(3));
    let took = start.elapsed();
    eprintln!("preempt_delay 1s: preempted {took:?} after start");
    assert!(took >= Duration::from_secs(1), "{took:?}");
}
