//! The state machine under paused tokio time: instances exchange adverts in
//! process (a perfect LAN), the clock jumps from deadline to deadline.

use std::{net::IpAddr, time::Duration};

use tokio::time::{Instant, advance};

use super::{
    machine::{Action, Machine, Params, State},
    packet::Version,
    priority::{Tracked, effective},
};

const SEC: Duration = Duration::from_secs(1);

struct Node {
    m: Machine,
    alive: bool,
    /// Whether it holds the addresses now.
    holds: bool,
}

struct Lan {
    nodes: Vec<Node>,
    /// Moments at which two nodes held the addresses together.
    split: u32,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, i as u8 + 1])
}

fn params(i: usize, version: Version, interval: Duration) -> Params {
    Params {
        version,
        interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary: addr(i),
    }
}

impl Lan {
    fn new(priorities: &[u8], version: Version, interval: Duration) -> Self {
        let nodes = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                m: Machine::new(params(i, version, interval), *p),
                alive: false,
                holds: false,
            })
            .collect();
        Self { nodes, split: 0 }
    }

    fn with(mut self, f: impl Fn(usize, &mut Params)) -> Self {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let mut p = params(i, Version::V3, SEC);
            f(i, &mut p);
            n.m = Machine::new(p, n.m.priority());
        }
        self
    }

    fn start(&mut self, i: usize) {
        let now = Instant::now();
        self.nodes[i].alive = true;
        let a = self.nodes[i].m.start(now);
        self.run(i, a);
    }

    /// Applies `actions` of node `i`; adverts reach every other live node at once.
    fn run(&mut self, i: usize, actions: Vec<Action>) {
        let now = Instant::now();
        for a in actions {
            match a {
                Action::Send { priority } => {
                    let src = addr(i);
                    for j in 0..self.nodes.len() {
                        if j != i && self.nodes[j].alive {
                            let out = self.nodes[j].m.on_advert(now, src, priority, 100);
                            self.run(j, out);
                        }
                    }
                }
                Action::TakeAddresses | Action::RetakeAddresses => self.nodes[i].holds = true,
                Action::ReleaseAddresses => self.nodes[i].holds = false,
                Action::Transition { .. } => {}
            }
        }
        if self.nodes.iter().filter(|n| n.holds && n.alive).count() > 1 {
            self.split += 1;
        }
    }

    /// Lets `d` pass, firing every deadline on the way.
    async fn pass(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            let next = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.m.next_deadline())
                .min();
            match next {
                Some(t) if t <= end => {
                    advance(t.saturating_duration_since(Instant::now())).await;
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].alive {
                            let out = self.nodes[i].m.on_timer(Instant::now());
                            self.run(i, out);
                        }
                    }
                }
                _ => {
                    advance(end.saturating_duration_since(Instant::now())).await;
                    return;
                }
            }
        }
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.nodes[i].holds = false;
    }

    fn stop(&mut self, i: usize) {
        let out = self.nodes[i].m.stop(Instant::now());
        self.run(i, out);
        self.nodes[i].alive = false;
    }

    fn master(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive && self.nodes[*i].m.state() == State::Master)
            .collect()
    }

    fn set_priority(&mut self, i: usize, p: u8) {
        let out = self.nodes[i].m.set_priority(Instant::now(), p);
        self.run(i, out);
    }
}

#[tokio::test(start_paused = true)]
async fn the_highest_priority_wins_and_a_kill_fails_over_in_master_down_interval() {
    let mut lan = Lan::new(&[100, 150, 50], Version::V3, SEC);
    for i in 0..3 {
        lan.start(i);
    }
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![1]);
    assert!(lan.nodes[1].holds);
    // kill -9 of the master right after an advert: the next in priority takes over
    // after 3 x 1 s + (256-100)/256 s = 3.609 s.
    let advert = lan.nodes[1].m.next_deadline().expect("advert timer");
    lan.pass(advert - Instant::now()).await;
    lan.kill(1);
    let down = lan.nodes[0].m.master_down_interval();
    assert_eq!(
        down,
        Duration::from_millis(3609) + Duration::from_nanos(375_000)
    );
    lan.pass(down - Duration::from_millis(1)).await;
    assert!(lan.master().is_empty(), "too early");
    lan.pass(Duration::from_millis(2)).await;
    assert_eq!(lan.master(), vec![0]);
    assert_eq!(lan.split, 0);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_hands_over_after_the_skew_only() {
    let mut lan = Lan::new(&[100, 150], Version::V3, SEC);
    lan.start(0);
    lan.start(1);
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![1]);
    let t = Instant::now();
    lan.stop(1);
    lan.pass(2 * SEC).await;
    assert_eq!(lan.master(), vec![0]);
    let took = lan.nodes[0].m.last_transition.expect("transition") - t;
    assert_eq!(took, lan.nodes[0].m.skew());
    assert!(took < SEC);
}

#[tokio::test(start_paused = true)]
async fn preemption_and_its_absence() {
    // A higher priority starting later takes over (preempt on)...
    let mut lan = Lan::new(&[100, 150], Version::V3, SEC);
    lan.start(0);
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![0]);
    lan.start(1);
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![1]);
    assert_eq!(lan.split, 0);
    // ...but not with preempt off.
    let mut lan = Lan::new(&[100, 150], Version::V3, SEC).with(|i, p| p.preempt = i != 1);
    lan.start(0);
    lan.pass(5 * SEC).await;
    lan.start(1);
    lan.pass(20 * SEC).await;
    assert_eq!(lan.master(), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn preempt_delay_holds_a_new_higher_priority_back() {
    let mut lan = Lan::new(&[100, 150], Version::V3, SEC).with(|i, p| {
        if i == 1 {
            p.preempt_delay = 10 * SEC;
        }
    });
    lan.start(0);
    lan.pass(5 * SEC).await;
    lan.start(1);
    lan.pass(9 * SEC).await;
    assert_eq!(lan.master(), vec![0], "held back by preempt_delay");
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn ties_go_to_the_higher_primary_address() {
    let mut lan = Lan::new(&[100, 100, 100], Version::V3, SEC);
    for i in 0..3 {
        lan.start(i);
    }
    lan.pass(10 * SEC).await;
    assert_eq!(lan.master(), vec![2]);
    assert_eq!(lan.split, 0);
}

#[tokio::test(start_paused = true)]
async fn the_50_40_6_6_scenario() {
    // A bootstrap node at 50 keeps the VIP against two nodes at 40 with two trackers
    // of weight 6, until both trackers pass on one of them (52 > 50).
    let mut lan = Lan::new(&[50, 40, 40], Version::V3, SEC);
    for i in 0..3 {
        lan.start(i);
    }
    lan.pass(5 * SEC).await;
    assert_eq!(lan.master(), vec![0]);
    let p = |a: bool, b: bool| {
        effective(
            40,
            &[
                Tracked {
                    weight: 6,
                    passing: a,
                },
                Tracked {
                    weight: 6,
                    passing: b,
                },
            ],
        )
        .expect("no fault")
    };
    lan.set_priority(1, p(true, false));
    lan.set_priority(2, p(false, true));
    lan.pass(10 * SEC).await;
    assert_eq!(lan.master(), vec![0], "46 < 50");
    lan.set_priority(1, p(true, true));
    lan.pass(10 * SEC).await;
    assert_eq!(lan.master(), vec![1], "52 > 50");
    assert_eq!(lan.split, 0);
}

#[tokio::test(start_paused = true)]
async fn a_master_hearing_a_lower_priority_advertises_at_once() {
    let mut m = Machine::new(params(0, Version::V3, SEC), 200);
    let t = Instant::now();
    m.start(t);
    let out = m.on_timer(t + 4 * SEC);
    assert!(out.contains(&Action::TakeAddresses));
    let out = m.on_advert(t + 4 * SEC, addr(5), 100, 100);
    assert_eq!(out, vec![Action::Send { priority: 200 }]);
    // And one hearing priority 0 answers at once too.
    let out = m.on_advert(t + 4 * SEC, addr(5), 0, 100);
    assert_eq!(out, vec![Action::Send { priority: 200 }]);
}

#[tokio::test(start_paused = true)]
async fn fault_releases_and_recovery_returns_to_backup() {
    let mut m = Machine::new(params(0, Version::V3, SEC), 255);
    let t = Instant::now();
    assert!(
        m.start(t).contains(&Action::TakeAddresses),
        "the owner is master at once"
    );
    let out = m.set_fault(t, true);
    assert_eq!(out[0], Action::Send { priority: 0 });
    assert!(out.contains(&Action::ReleaseAddresses));
    assert_eq!(m.state(), State::Fault);
    assert_eq!(m.next_deadline(), None);
    m.set_fault(t, false);
    assert_eq!(m.state(), State::Backup);
}

#[tokio::test(start_paused = true)]
async fn v2_skew_is_in_seconds_and_v3_adopts_the_masters_interval() {
    let m2 = Machine::new(params(0, Version::V2, SEC), 100);
    assert_eq!(m2.skew(), Duration::from_secs_f64(156.0 / 256.0));
    let mut m3 = Machine::new(params(0, Version::V3, SEC), 100);
    let t = Instant::now();
    m3.start(t);
    m3.on_advert(t, addr(9), 200, 10); // 100 ms
    assert_eq!(
        m3.master_down_interval(),
        Duration::from_millis(300) + Duration::from_secs_f64(0.1 * 156.0 / 256.0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_resumes_within_master_down_changes_no_state() {
    let mut lan = Lan::new(&[100, 150], Version::V3, SEC / 10);
    lan.start(0);
    lan.start(1);
    lan.pass(SEC).await;
    assert_eq!(lan.master(), vec![1]);
    let backup_since = lan.nodes[0].m.last_transition;
    // The master leaves for a restart: one more advert, addresses removed, no
    // priority 0.
    let out = lan.nodes[1].m.leave();
    assert_eq!(
        out,
        [Action::Send { priority: 150 }, Action::ReleaseAddresses]
    );
    lan.run(1, out);
    lan.nodes[1].alive = false;
    // Its successor starts 250 ms later (under 3 x 100 ms + skew) and resumes.
    lan.pass(SEC / 4).await;
    assert!(lan.master().is_empty(), "nobody took over meanwhile");
    let mut m = Machine::new(params(1, Version::V3, SEC / 10), 150);
    let out = m.resume(Instant::now());
    assert!(out.contains(&Action::RetakeAddresses));
    assert!(!out.iter().any(|a| matches!(a, Action::Transition { .. })));
    lan.nodes[1].m = m;
    lan.nodes[1].alive = true;
    lan.run(1, out);
    lan.pass(2 * SEC).await;
    assert_eq!(lan.master(), vec![1]);
    assert_eq!(
        lan.nodes[0].m.last_transition, backup_since,
        "the backup never moved"
    );
    assert_eq!(lan.split, 0);
}
