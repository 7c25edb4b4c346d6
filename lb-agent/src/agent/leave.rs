//! How the agent leaves: handing the VIP over (a stop: masters send priority 0, as
//! keepalived does) or keeping it for the next agent (a restart: see
//! `vrrp::resume`). SIGINT and `lb-agent handover` always hand over; `lb-agent
//! restart` is always a restart; SIGTERM is a restart when systemd is restarting
//! the unit (`systemctl restart`, a package upgrade) or `[agent] on_sigterm =
//! "restart"` (a static pod: its container restarts are upgrades), else a stop,
//! including while the system shuts down.

use std::{process::Command, time::Duration};

use crate::config::{AgentConfig, OnSigterm};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    Handover,
    Restart,
}

/// Targets whose start job means the machine is going down.
const SHUTDOWN_TARGETS: &[&str] = &[
    "shutdown.target",
    "reboot.target",
    "poweroff.target",
    "halt.target",
    "kexec.target",
    "soft-reboot.target",
];

/// What SIGTERM means now, and why (for the log).
pub fn on_sigterm(cfg: &AgentConfig) -> (Leave, String) {
    if cfg.on_sigterm == OnSigterm::Restart {
        return (Leave::Restart, "on_sigterm = \"restart\"".into());
    }
    match systemd_unit() {
        Some(unit) => match systemctl_jobs() {
            Some(jobs) => systemd_intent(&unit, &jobs),
            None => (
                Leave::Handover,
                format!("SIGTERM to {unit}, and systemd's jobs could not be read"),
            ),
        },
        None => (Leave::Handover, "SIGTERM".into()),
    }
}

/// The systemd service this process runs in (`INVOCATION_ID` set, the cgroup's
/// last component a `.service`).
fn systemd_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .find(|u| u.ends_with(".service"))
        .map(str::to_string)
}

/// `systemctl list-jobs` (its output, at most 2 s).
fn systemctl_jobs() -> Option<String> {
    let mut child = Command::new("systemctl")
        .args(["list-jobs", "--no-legend", "--no-pager", "--plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads `systemctl list-jobs` lines (`ID UNIT TYPE STATE`): a restart job of
/// `unit` is a restart; a shutdown target's job or a stop of `unit` is a stop.
pub fn systemd_intent(unit: &str, jobs: &str) -> (Leave, String) {
    let rows: Vec<Vec<&str>> = jobs
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    if let Some(t) = rows
        .iter()
        .find_map(|r| r.get(1).filter(|u| SHUTDOWN_TARGETS.contains(u)))
    {
        return (Leave::Handover, format!("the system is going down ({t})"));
    }
    let job = rows
        .iter()
        .find(|r| r.get(1) == Some(&unit))
        .and_then(|r| r.get(2).copied());
    match job {
        Some(j) if j.contains("restart") => {
            (Leave::Restart, format!("systemd's {j} job of {unit}"))
        }
        Some(j) => (Leave::Handover, format!("systemd's {j} job of {unit}")),
        None => (
            Leave::Handover,
            format!("SIGTERM to {unit} without a systemd job"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_jobs_tell_a_restart_from_a_stop_and_a_shutdown() {
        let unit = "lb-agent.service";
        let restart = "1531 lb-agent.service restart running\n";
        assert_eq!(systemd_intent(unit, restart).0, Leave::Restart);
        let try_restart = "1532 lb-agent.service try-restart running\n";
        assert_eq!(systemd_intent(unit, try_restart).0, Leave::Restart);
        let stop = "1533 lb-agent.service stop running\n";
        assert_eq!(systemd_intent(unit, stop).0, Leave::Handover);
        let shutdown = "1 shutdown.target start waiting\n1540 lb-agent.service restart running\n";
        let (leave, why) = systemd_intent(unit, shutdown);
        assert_eq!(leave, Leave::Handover, "going down wins: {why}");
        let other = "1600 nginx.service restart running\n";
        assert_eq!(systemd_intent(unit, other).0, Leave::Handover);
    }
}
