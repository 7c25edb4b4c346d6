//! Three agents with unicast peers (no multicast) and script trackers: the
//! 50/40+6+6 scenario users depend on (a bootstrap node at 50 keeps the VIP against
//! two nodes at 40 with two trackers of weight 6 until both pass on one of them,
//! 52 > 50), then tracker-driven failover back, and a weight-0 tracker putting a
//! node in FAULT. Needs root.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    BACKENDS, Cluster, Node, VIP,
    eventually::{eventually, eventually_or},
};
use lb_agent::lab::lan_v4;

fn flag(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn config(c: &Cluster, i: usize, priority: u8, trackers: &str) -> String {
    let me = i as u8 + 1;
    let peers: Vec<String> = (1..=c.nodes.len() as u8)
        .filter(|n| *n != me)
        .map(|n| format!("\"{}\"", lan_v4(n)))
        .collect();
    format!(
        "[[vip]]\nname = \"web\"\naddress = \"{vip}\"\nport = 80\nsnat_address = \"{src}\"\n\
         [vip.check]\ntype = \"none\"\n[[vip.backend]]\naddress = \"{b}\"\n\n\
         [[vrrp]]\nname = \"vi_web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{vip}/24\"]\nunicast_src = \"{src}\"\n\
         unicast_peers = [{peers}]\n{trackers}",
        vip = lan_v4(VIP),
        src = lan_v4(me),
        b = lan_v4(BACKENDS[0]),
        peers = peers.join(", "),
    )
}

fn script(file: &Path, weight: i32) -> String {
    format!(
        "[[vrrp.track]]\nkind = \"script\"\ncommand = [\"/usr/bin/test\", \"-e\", \"{}\"]\n\
         interval = \"100ms\"\nweight = {weight}\n",
        file.display()
    )
}

fn state(n: &Node) -> (String, u8) {
    let s = n.status();
    s.vrrp
        .first()
        .map(|v| (v.state.clone(), v.priority))
        .unwrap_or_default()
}

fn holds(n: &Node) -> bool {
    n.holds(&format!("{}/24", lan_v4(VIP)))
}

/// Waits until node `m` is the only master holding the VIP.
fn master_is(c: &Cluster, m: usize, limit: Duration) {
    let masters = || -> Vec<usize> {
        (0..c.nodes.len())
            .filter(|i| state(&c.nodes[*i]).0 == "MASTER" || holds(&c.nodes[*i]))
            .collect()
    };
    eventually_or(
        &format!("node {} sole master", m + 1),
        limit,
        || masters() == vec![m],
        || {
            let states: Vec<_> = (0..c.nodes.len()).map(|i| state(&c.nodes[i])).collect();
            format!("masters {:?}, states {states:?}", masters())
        },
    );
}

#[test]
fn the_50_40_6_6_scenario_with_unicast_peers_and_script_trackers() {
    let mut c = Cluster::new(3);
    let dir = c.nodes[0].dir.clone();
    let (a1, a2, b1, b2) = (
        flag(&dir, "a1"),
        flag(&dir, "a2"),
        flag(&dir, "b1"),
        flag(&dir, "b2"),
    );
    let fault = flag(&dir, "fault");
    fs::write(&fault, "").expect("flag");
    let cfg0 = config(
        &c,
        0,
        50,
        &format!(
            "[[vrrp.track]]\nkind = \"script\"\ncommand = [\"/usr/bin/test\", \"-e\", \"{}\"]\ninterval = \"100ms\"\nweight = 0\n",
            fault.display()
        ),
    );
    let cfg1 = config(&c, 1, 40, &(script(&a1, 6) + &script(&a2, 6)));
    let cfg2 = config(&c, 2, 40, &(script(&b1, 6) + &script(&b2, 6)));
    c.nodes[0].write_config(&cfg0);
    c.nodes[1].write_config(&cfg1);
    c.nodes[2].write_config(&cfg2);
    for n in &mut c.nodes {
        n.start();
    }
    master_is(&c, 0, Duration::from_secs(3));

    // One tracker passing on each 40-node: 46 < 50, nothing moves.
    fs::write(&a1, "").expect("flag");
    fs::write(&b2, "").expect("flag");
    eventually("both 40-nodes at 46", Duration::from_secs(3), || {
        state(&c.nodes[1]) == ("BACKUP".into(), 46) && state(&c.nodes[2]) == ("BACKUP".into(), 46)
    });
    // Adverts at 46 for a while: still nothing moves.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(state(&c.nodes[1]), ("BACKUP".into(), 46));
    assert_eq!(state(&c.nodes[2]), ("BACKUP".into(), 46));
    master_is(&c, 0, Duration::from_millis(100));

    // Both on node 2: 52 > 50, it takes the VIP.
    fs::write(&a2, "").expect("flag");
    master_is(&c, 1, Duration::from_secs(3));
    assert_eq!(state(&c.nodes[1]).1, 52);

    // One of them fails again: 46, and the bootstrap node (50) preempts back.
    fs::remove_file(&a2).expect("flag");
    master_is(&c, 0, Duration::from_secs(3));

    // A failing weight-0 tracker puts node 1 in FAULT: it hands over and holds nothing.
    fs::remove_file(&fault).expect("flag");
    eventually(
        "node 1 in FAULT, holding nothing",
        Duration::from_secs(2),
        || state(&c.nodes[0]).0 == "FAULT" && !holds(&c.nodes[0]),
    );
    // Node 2 and 3 are at 46 each: the tie goes to the higher address (node 3).
    master_is(&c, 2, Duration::from_secs(3));
    fs::write(&fault, "").expect("flag");
    master_is(&c, 0, Duration::from_secs(3));
    for n in &c.nodes {
        let s = n.status();
        assert!(s.vrrp[0].rejected.is_empty(), "{:?}", s.vrrp[0].rejected);
    }
}
