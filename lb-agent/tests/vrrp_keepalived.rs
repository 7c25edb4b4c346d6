//! Interoperability with a real keepalived (Debian package) on the same bridge:
//! VRRP v3 (keepalived's default checksum, with the IPv4 pseudo-header) and v2 with
//! password authentication; our node winning and losing, failover in both
//! directions, and never two masters for longer than an advert's round trip. Our
//! agent must count no rejected advert from keepalived. Needs root and keepalived.

mod common;

use std::time::{Duration, Instant};

use common::{
    BACKENDS, Cluster, Node, VIP,
    eventually::eventually_or,
    keepalived::{Keepalived, conf},
};
use lb_agent::lab::lan_v4;

fn agent_config(priority: u8, version: u8, interval: &str, auth: Option<&str>) -> String {
    let mut out = format!(
        "[[vip]]\nname = \"web\"\naddress = \"{}\"\nport = 80\nsnat_address = \"{}\"\n\
         [vip.check]\ntype = \"none\"\n[[vip.backend]]\naddress = \"{}\"\n",
        lan_v4(VIP),
        lan_v4(1),
        lan_v4(BACKENDS[0])
    );
    out.push_str(&format!(
        "\n[[vrrp]]\nname = \"vi_web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         version = {version}\nadvert_interval = \"{interval}\"\naddresses = [\"{}/24\"]\n",
        lan_v4(VIP)
    ));
    if let Some(p) = auth {
        out.push_str(&format!("auth_pass = \"{p}\"\n"));
    }
    out
}

/// Who is master: (our agent, keepalived). `ours_alive` / `ka_alive` say who runs.
fn holds(n: &Node) -> bool {
    n.holds(&format!("{}/24", lan_v4(VIP)))
}

fn masters(c: &Cluster, ours_alive: bool, ka_alive: bool) -> (bool, bool) {
    (
        ours_alive && c.nodes[0].vrrp_state() == "MASTER" && holds(&c.nodes[0]),
        ka_alive && holds(&c.nodes[1]),
    )
}

/// Waits for `want` (ours master, keepalived master), failing on a lasting double
/// master (more than 3 samples in a row, ~30 ms). Returns the time it took.
fn wait(
    c: &Cluster,
    want: (bool, bool),
    alive: (bool, bool),
    limit: Duration,
    ka: &Keepalived,
) -> Duration {
    let mut both = 0;
    eventually_or(
        &format!("masters (ours, keepalived) {want:?}"),
        limit,
        || {
            let m = masters(c, alive.0, alive.1);
            both = if m == (true, true) { both + 1 } else { 0 };
            assert!(both <= 3, "split brain: both master for {both} samples");
            m == want
        },
        || {
            let m = masters(c, alive.0, alive.1);
            format!("now {m:?}\nkeepalived:\n{}", ka.log())
        },
    )
}

fn no_rejects(n: &Node) {
    let s = n.status();
    let v = &s.vrrp[0];
    assert!(
        v.rejected.is_empty(),
        "rejected keepalived adverts: {:?}",
        v.rejected
    );
    assert!(v.adverts_received > 0, "never heard keepalived");
}

#[test]
fn v3_with_keepalived_both_ways() {
    let mut c = Cluster::new(2);
    // Ours at 150 wins against keepalived at 100.
    c.nodes[0].write_config(&agent_config(150, 3, "100ms", None));
    let mut ka = Keepalived::start(
        &c.nodes[1],
        &conf(3, 100, "0.1", &format!("{}/24", lan_v4(VIP)), None),
    );
    c.nodes[0].start();
    wait(&c, (true, false), (true, true), Duration::from_secs(5), &ka);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(masters(&c, true, true), (true, false), "stable");
    no_rejects(&c.nodes[0]);

    // kill -9 of our agent: keepalived takes over.
    c.nodes[0].kill9();
    let took = wait(
        &c,
        (false, true),
        (false, true),
        Duration::from_secs(3),
        &ka,
    );
    eprintln!("v3: our agent killed, keepalived MASTER after {took:?}");
    // Our restart removes the leftover address and preempts keepalived.
    c.nodes[0].start();
    let took = wait(&c, (true, false), (true, true), Duration::from_secs(3), &ka);
    eprintln!("v3: our agent restarted, MASTER again after {took:?}");

    // Ours at 50 loses to keepalived at 100...
    c.nodes[0].terminate();
    c.nodes[0].write_config(&agent_config(50, 3, "100ms", None));
    c.nodes[0].start();
    wait(&c, (false, true), (true, true), Duration::from_secs(3), &ka);
    assert_eq!(c.nodes[0].vrrp_state(), "BACKUP");
    c.nodes[0].wait_for("keepalived heard as master", Duration::from_secs(1), |s| {
        s.vrrp[0].master == lan_v4(2).to_string()
    });
    // ...takes over when keepalived stops (priority 0: after the skew only)...
    let t = Instant::now();
    ka.stop();
    wait(
        &c,
        (true, false),
        (true, false),
        Duration::from_secs(2),
        &ka,
    );
    eprintln!(
        "v3: keepalived stopped, our agent MASTER {:?} after SIGTERM",
        t.elapsed()
    );
    // ...and gives way when it comes back.
    let ka = Keepalived::start(
        &c.nodes[1],
        &conf(3, 100, "0.1", &format!("{}/24", lan_v4(VIP)), None),
    );
    let took = wait(&c, (false, true), (true, true), Duration::from_secs(5), &ka);
    eprintln!("v3: keepalived back, MASTER again after {took:?}");
    no_rejects(&c.nodes[0]);
}

#[test]
fn v2_with_password_authentication() {
    let mut c = Cluster::new(2);
    c.nodes[0].write_config(&agent_config(150, 2, "1s", Some("secret")));
    let ka = Keepalived::start(
        &c.nodes[1],
        &conf(2, 100, "1", &format!("{}/24", lan_v4(VIP)), Some("secret")),
    );
    c.nodes[0].start();
    wait(&c, (true, false), (true, true), Duration::from_secs(6), &ka);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(masters(&c, true, true), (true, false), "stable");
    no_rejects(&c.nodes[0]);
    // A graceful stop of ours hands over to keepalived.
    c.nodes[0].terminate();
    let took = wait(
        &c,
        (false, true),
        (false, true),
        Duration::from_secs(3),
        &ka,
    );
    eprintln!("v2: our agent stopped, keepalived MASTER after {took:?}");
}
