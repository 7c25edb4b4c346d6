//! What an agent leaving for a restart tells its successor: each VRRP instance's
//! state and its trackers' results, written to a file beside the control socket.
//! A master leaving this way sends one last advert at its own priority (never
//! priority 0) and removes its addresses; the data plane, pinned, keeps forwarding
//! the VIP's packets meanwhile (it matches the VIP in its maps, not on the
//! interface). A successor that starts before the backups' Master_Down_Interval
//! (3 advert intervals and a skew after that advert) resumes as master: adverts at
//! once, addresses back, no state change anywhere. One that starts later finds the
//! record stale and starts as after a crash.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::machine::State;
use crate::config::VrrpConfig;

/// One instance as it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    pub name: String,
    pub vrid: u8,
    pub interface: String,
    /// "MASTER", "BACKUP", "FAULT", "INIT".
    pub state: String,
    /// Each tracker's last result, in config order.
    pub trackers: Vec<bool>,
    /// What the backups' timers depend on: a change makes the record unusable.
    pub advert_interval_ms: u64,
    pub version: u8,
    pub priority: u8,
}

impl Left {
    /// What instance `cfg` leaves as, in `state` with these tracker results.
    pub fn of(cfg: &VrrpConfig, state: &str, trackers: Vec<bool>) -> Self {
        Self {
            name: cfg.name.clone(),
            vrid: cfg.vrid,
            interface: cfg.interface.clone(),
            state: state.to_string(),
            trackers,
            advert_interval_ms: cfg.advert_interval.as_millis() as u64,
            version: if cfg.version == crate::vrrp::packet::Version::V2 {
                2
            } else {
                3
            },
            priority: cfg.priority,
        }
    }
}

/// The whole record: when it was written (unix ms) and every instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub written_unix_ms: u64,
    pub instances: Vec<Left>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The record's file for an agent whose control socket is `control_socket`.
pub fn path(control_socket: &Path) -> PathBuf {
    control_socket.with_extension("restart")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Record {
    pub fn new(instances: Vec<Left>) -> Self {
        Self {
            written_unix_ms: now_ms(),
            instances,
        }
    }

    /// Writes the record (replacing an older one).
    pub fn write(&self, path: &Path) -> Result<(), ResumeError> {
        let text = serde_json::to_string(self).unwrap_or_default();
        let tmp = path.with_extension("restart.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ResumeError::Write {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Takes the record at `path` (it is removed: a record is used once). A missing
    /// or unreadable one is `None` (an unreadable one is logged).
    pub fn take(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let _ = std::fs::remove_file(path);
        match serde_json::from_str(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("{}: not a restart record ({e}); ignored", path.display());
                None
            }
        }
    }

    /// How long ago it was written; `None` when written in the future (a clock
    /// step: not to be trusted).
    pub fn age(&self) -> Option<Duration> {
        now_ms()
            .checked_sub(self.written_unix_ms)
            .map(Duration::from_millis)
    }

    /// What instance `cfg` left as, if it may resume from it: the same instance
    /// with the same timers (name, vrid, interface, trackers, advert interval,
    /// version, priority), recorded recently enough that no backup can have taken
    /// over (3 advert intervals: a backup's Master_Down_Interval is that plus its
    /// skew).
    pub fn resumable(&self, cfg: &VrrpConfig) -> Option<&Left> {
        let want = Left::of(cfg, "", Vec::new());
        let left = self.instances.iter().find(|l| {
            Left {
                state: String::new(),
                trackers: Vec::new(),
                ..(*l).clone()
            } == want
                && l.trackers.len() == cfg.tracks.len()
        })?;
        self.age()
            .is_some_and(|age| age < cfg.advert_interval * 3)
            .then_some(left)
    }
}

impl Left {
    pub fn was_master(&self) -> bool {
        self.state == State::Master.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn cfg() -> VrrpConfig {
        let text = "[agent]\ninterfaces = [\"eth0\"]\n[[vrrp]]\nname = \"vi\"\ninterface = \"eth0\"\nvrid = 7\npriority = 150\nadvert_interval = \"1s\"\naddresses = [\"10.0.0.9/24\"]\n";
        parse(text, Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .vrrp
            .remove(0)
    }

    #[test]
    fn a_fresh_record_of_the_same_instance_resumes_once() {
        let dir = std::env::temp_dir().join(format!("lb-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = path(&dir.join("lb-agent.sock"));
        assert_eq!(file, dir.join("lb-agent.restart"));
        let left = Left::of(&cfg(), "MASTER", Vec::new());
        Record::new(vec![left.clone()]).write(&file).expect("write");
        let r = Record::take(&file).expect("record");
        assert!(Record::take(&file).is_none(), "used once");
        assert_eq!(r.resumable(&cfg()), Some(&left));
        assert!(r.resumable(&cfg()).is_some_and(Left::was_master));

        let mut other = cfg();
        other.vrid = 8;
        assert_eq!(r.resumable(&other), None, "another virtual router");
        let mut slower = cfg();
        slower.advert_interval = Duration::from_secs(2);
        assert_eq!(r.resumable(&slower), None, "other timers");
        let future = Record {
            written_unix_ms: now_ms() + 60_000,
            ..r.clone()
        };
        assert_eq!(future.resumable(&cfg()), None, "a record from the future");
        let stale = Record {
            written_unix_ms: now_ms() - 3_001,
            ..r
        };
        assert_eq!(
            stale.resumable(&cfg()),
            None,
            "a backup may have taken over"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
