//! The agent's log as JSON (`[agent] log_format = "json"`): every line is one
//! object, and a state change is one event whose fields carry it (a backend going
//! down: vip, backend, state, reason, up, total; a reload: ok, outcome). A reload
//! that sets `log_format = "text"` switches the running agent back to text lines,
//! whose events keep their fields. Needs root.

mod common;

use std::time::Duration;

use common::{AgentLab, BACKENDS, LB, VIP, eventually::eventually_some_or};
use lb_agent::lab::{TcpServer, lan_v4};
use serde_json::Value;

fn config(format: &str) -> String {
    let mut out = format!(
        "log_format = \"{format}\"\n\n[[vip]]\nname = \"web\"\naddress = \"{}\"\nport = 80\n\
         snat_address = \"{}\"\n[vip.check]\ninterval = \"200ms\"\n",
        lan_v4(VIP),
        lan_v4(LB)
    );
    for b in BACKENDS {
        out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
    }
    out
}

/// The log's lines as JSON objects; panics on a line that is not one.
fn objects(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn json_log_events_carry_their_fields_and_a_reload_switches_to_text() {
    let mut lab = AgentLab::new();
    let servers = lab.banners(lan_v4, 80);
    lab.write_config(&config("json"));
    lab.start();
    lab.wait_for("all up", Duration::from_secs(5), |s| {
        s.vip("web").is_some_and(|v| v.up == 3)
    });
    let started = objects(&lab.log());
    assert!(
        started.iter().any(|o| o["level"] == "INFO"
            && o["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("running:"))),
        "no JSON 'running:' line:\n{}",
        lab.log()
    );

    let mut servers: Vec<Option<TcpServer>> = servers.into_iter().map(Some).collect();
    servers[0] = None;
    let backend = format!("{}:80", lan_v4(BACKENDS[0]));
    let (down, _) = eventually_some_or(
        "a backend_state event for the stopped backend",
        Duration::from_secs(5),
        || {
            objects(&lab.log())
                .into_iter()
                .find(|o| o["event"] == "backend_state" && o["backend"] == backend.as_str())
        },
        || lab.log(),
    );
    assert_eq!(down["level"], "WARN", "{down}");
    assert_eq!(down["vip"], "web", "{down}");
    assert_eq!(down["state"], "DOWN", "{down}");
    assert_eq!(
        (down["up"].as_u64(), down["total"].as_u64()),
        (Some(2), Some(3)),
        "{down}"
    );
    assert!(
        down["reason"]
            .as_str()
            .is_some_and(|r| r.contains("connection refused")),
        "{down}"
    );
    assert!(down["timestamp"].is_string(), "{down}");

    // A reload to text: the reload is logged (as text now), later lines are text.
    let before = lab.log().len();
    lab.write_config(&config("text"));
    lab.sighup();
    let (tail, _) = eventually_some_or(
        "the reload logged in text",
        Duration::from_secs(5),
        || {
            let log = lab.log();
            let tail = log[before..].to_string();
            tail.contains("reload: applied").then_some(tail)
        },
        || lab.log(),
    );
    let switched = tail
        .find("log format now text")
        .unwrap_or_else(|| panic!("no switch logged:\n{tail}"));
    let after = &tail[tail[..switched].rfind('\n').map_or(0, |n| n + 1)..];
    for line in after.lines() {
        assert!(
            !line.starts_with('{'),
            "a JSON line after the switch: {line}"
        );
    }
    let reload = after
        .lines()
        .find(|l| l.contains("reload: applied"))
        .expect("reload line");
    assert!(
        reload.contains("INFO")
            && reload.contains("event=\"reload\"")
            && reload.contains("ok=true"),
        "{reload}"
    );
}
