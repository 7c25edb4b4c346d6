//! `lb-agent demo` as a newcomer runs it: the whole script (two agents with VRRP,
//! a backend stopping and coming back, the master losing power and coming back),
//! and Ctrl-C in the middle. Either way nothing of the lab may be left behind.
//! Needs root.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::eventually::eventually;

const AGENT: &str = env!("CARGO_BIN_EXE_lb-agent");

/// One demo at a time: each runs several agents, servers and clients that measure
/// timing, and two at once on two cores starve each other's status polling.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Namespaces and pin directories whose names carry `pid` (the lab's names do).
fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("{pid}x");
    let mut found: Vec<String> = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list")
            .stdout,
    )
    .lines()
    .filter(|l| l.contains(&tag))
    .map(str::to_string)
    .collect();
    for e in std::fs::read_dir("/sys/fs/bpf").expect("bpffs").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(&tag) {
            found.push(format!("/sys/fs/bpf/{name}"));
        }
    }
    found
}

/// The number after `key` in `line` (e.g. "requests failed: 3").
fn number_after(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).expect(key) + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn the_demo_runs_its_script_and_cleans_up() {
    let _one = serial();
    let child = Command::new(AGENT)
        .args(["demo", "--plain", "--step-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let pid = child.id();
    let out = child.wait_with_output().expect("demo output");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "lb1: VRRP BACKUP -> MASTER",
        "lb1: backend 198.18.1.12 DOWN (L4 connection refused)",
        "lb1: backend 198.18.1.12 UP (L7 OK, status 200)",
        "lb1: agent powered off",
        "lb2: VRRP BACKUP -> MASTER",
        "lb2: VRRP MASTER -> BACKUP",
        "the demo ran to its end",
        "cleaning up",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Once the check has taken the stopped backend out, nothing fails.
    let after = text
        .lines()
        .find(|l| l.contains("- after that, requests failed:"))
        .expect("backend result");
    assert_eq!(number_after(after, "requests failed:"), 0, "{after}");
    // Failover within the VRRP bound (3 adverts + skew) plus the demo's 250 ms polling.
    let failover = text
        .lines()
        .find(|l| l.contains("- lb2 MASTER") && l.contains("after lb1 lost power"))
        .expect("failover result");
    let ms = number_after(failover, "lb2 MASTER");
    assert!(ms < 700, "failover took {ms} ms: {failover}");
    let gap = number_after(failover, "longest wait between two answers:");
    assert!(gap < 1000, "client outage {gap} ms: {failover}");
    // Traffic went to all three backends in the steady phase.
    let steady = text
        .lines()
        // (The first reading may come before the client's first second.)
        .find(|l| l.contains("VIP owner lb1, backends up 3/3") && l.contains("answered/s"))
        .expect("a steady summary line with the client's counts");
    for b in [".11=", ".12=", ".13="] {
        assert!(number_after(steady, b) > 0, "{b} got nothing: {steady}");
    }
    assert_eq!(leftovers(pid), Vec::<String>::new(), "left behind");
}

#[test]
fn the_stacked_demo_runs_its_script_and_cleans_up() {
    let _one = serial();
    let child = Command::new(AGENT)
        .args(["demo", "--stacked", "--plain", "--step-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let pid = child.id();
    let out = child.wait_with_output().expect("demo output");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "lb1: VRRP BACKUP -> MASTER",
        "lb1: backend 198.18.1.1 DOWN",
        "lb2: backend 198.18.1.1 DOWN",
        "lb3: backend 198.18.1.1 DOWN",
        "lb1 still holds the VIP",
        "lb1: agent powered off",
        "lb2: VRRP BACKUP -> MASTER",
        "the demo ran to its end",
        "cleaning up",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Once every node's check has taken the holder's API server out, nothing fails:
    // the VIP stayed, and every client was balanced over the other two.
    let after = text
        .lines()
        .find(|l| l.contains("- after that, requests failed:"))
        .expect("API server result");
    assert_eq!(number_after(after, "requests failed:"), 0, "{after}");
    // Every client reached all three API servers while all three were up (a summary
    // line of such a phase; on a slow machine the first one may come only after the
    // steady step, once apiserver-1 is back).
    let clients = [
        "outside -> VIP",
        "lb1 -> VIP",
        "lb2 -> 127.0.0.1",
        "lb3 -> VIP",
    ];
    let reaches_all = |line: &str| {
        clients.iter().all(|client| {
            line.find(client).is_some_and(|at| {
                [".1=", ".2=", ".3="]
                    .iter()
                    .all(|b| number_after(&line[at..], b) > 0)
            })
        })
    };
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("VIP owner lb1, backends up 3/3, outside"))
        .collect();
    assert!(
        summaries.iter().any(|l| reaches_all(l)),
        "no summary with every client reaching all three API servers:\n{}",
        summaries.join("\n")
    );
    assert_eq!(leftovers(pid), Vec::<String>::new(), "left behind");
}

#[test]
fn ctrl_c_stops_the_demo_and_removes_the_lab() {
    let _one = serial();
    let child = Command::new(AGENT)
        .args(["demo", "--plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let pid = child.id();
    // Wait until the agents run (the pins exist), then interrupt.
    eventually(
        "the demo's agents pin their maps",
        Duration::from_secs(30),
        || {
            leftovers(pid)
                .iter()
                .filter(|l| l.starts_with("/sys"))
                .count()
                >= 2
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(st.success());
    let out = child.wait_with_output().expect("demo output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed on Ctrl-C:\n{text}");
    assert!(text.contains("stopped. Measured so far:"), "{text}");
    assert!(text.contains("cleaning up"), "{text}");
    assert_eq!(leftovers(pid), Vec::<String>::new(), "left behind");
}
