//! VRRP v3 over IPv6 between two agents: adverts from link-local addresses to
//! ff02::12 (hop limit 255, checksum over the IPv6 pseudo-header), the VIP added
//! without DAD and announced with unsolicited neighbour advertisements (override),
//! clients served through it, and `kill -9` failover. Needs root.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{BACKENDS, Cluster, Node, VIP, eventually::eventually};
use lb_agent::lab::lan_v6;

fn config(node: u8, priority: u8) -> String {
    let mut out = format!(
        "[[vip]]\nname = \"web6\"\naddress = \"{}\"\nport = 80\nsnat_address = \"{}\"\n\
         [vip.check]\ninterval = \"500ms\"\n",
        lan_v6(VIP),
        lan_v6(node)
    );
    for b in BACKENDS {
        out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v6(b)));
    }
    out.push_str(&format!(
        "\n[[vrrp]]\nname = \"vi_web6\"\ninterface = \"eth0\"\nvrid = 52\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{}/64\"]\n",
        lan_v6(VIP)
    ));
    out
}

fn holds(n: &Node) -> bool {
    n.holds(&format!("{}/64", lan_v6(VIP)))
}

/// Waits until node `m` (0-based) is MASTER and holds the VIP; returns how long it took.
fn master_is(c: &Cluster, m: usize, limit: Duration) -> Duration {
    eventually(&format!("node {} master", m + 1), limit, || {
        c.nodes[m].vrrp_state() == "MASTER" && holds(&c.nodes[m])
    })
}

#[test]
fn ipv6_election_and_kill_9_failover() {
    // Stock nodes: the agents turn on IPv6 forwarding on eth0 themselves.
    let mut c = Cluster::new(2);
    let _servers = c.banners(lan_v6, 80);
    c.nodes[0].write_config(&config(1, 150));
    c.nodes[1].write_config(&config(2, 100));
    c.nodes[0].start();
    c.nodes[1].start();
    // Link-local addresses finish DAD first; the instances retry until they can bind.
    master_is(&c, 0, Duration::from_secs(8));
    c.nodes[1].wait_for("backup hears the master", Duration::from_secs(3), |s| {
        s.vrrp[0].state == "BACKUP" && s.vrrp[0].master.starts_with("fe80:")
    });
    assert!(!holds(&c.nodes[1]));
    c.served(SocketAddr::new(lan_v6(VIP), 80));

    c.nodes[0].kill9();
    let took = master_is(&c, 1, Duration::from_secs(2));
    eprintln!("IPv6: backup MASTER {took:?} after kill -9");
    c.served_by(1, SocketAddr::new(lan_v6(VIP), 80));
    let s = c.nodes[1].status();
    assert!(s.vrrp[0].rejected.is_empty(), "{:?}", s.vrrp[0].rejected);
    assert!(s.vrrp[0].adverts_received > 0);
}
