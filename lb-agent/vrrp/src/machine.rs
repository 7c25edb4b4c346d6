//! The VRRP state machine of RFC 5798 section 6 (and RFC 3768 for v2's timers), pure:
//! events in (start, an advert, time passing, priority change, fault, stop), actions
//! out (send an advert, take or release the addresses). The driver owns sockets and
//! clocks and sleeps until `next_deadline`. Times are `tokio::time::Instant`, so
//! tests run it under paused time.

use std::{net::IpAddr, time::Duration};

use tokio::time::Instant;

use super::packet::Version;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// A weight-0 tracker fails: not a candidate, holds nothing.
    Fault,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 = leaving).
    Send { priority: u8 },
    /// Became master: add the addresses and announce them (GARP / NA).
    TakeAddresses,
    /// Resumed as master after a restart: the addresses back and announced; the
    /// pinned data plane never stopped serving them (nothing to ask first).
    RetakeAddresses,
    /// Stopped being master: remove the addresses.
    ReleaseAddresses,
    /// The state changed (log, notify, metrics).
    Transition { from: State, to: State },
}

/// Settings of one instance.
#[derive(Clone, Debug)]
pub struct Params {
    pub version: Version,
    /// Our advertisement interval.
    pub interval: Duration,
    pub preempt: bool,
    /// How long after start a higher-priority backup holds back before preempting.
    pub preempt_delay: Duration,
    /// Our primary address (the adverts' source): breaks priority ties.
    pub primary: IpAddr,
}

/// One instance's protocol state.
#[derive(Clone, Debug)]
pub struct Machine {
    p: Params,
    state: State,
    priority: u8,
    /// The interval the master advertises (v3: backups adopt it).
    master_interval: Duration,
    master_down_at: Option<Instant>,
    advert_at: Option<Instant>,
    preempt_from: Option<Instant>,
    master: Option<IpAddr>,
    pub last_transition: Option<Instant>,
}

impl Machine {
    pub fn new(p: Params, priority: u8) -> Self {
        let interval = p.interval;
        Self {
            p,
            state: State::Initialize,
            priority,
            master_interval: interval,
            master_down_at: None,
            advert_at: None,
            preempt_from: None,
            master: None,
            last_transition: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The master as last heard (ourselves when master).
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.p.primary),
            State::Backup => self.master,
            _ => None,
        }
    }

    /// Skew_Time: v3 ((256 - priority) x Master_Adver_Interval / 256), v2
    /// ((256 - priority) / 256 s).
    pub fn skew(&self) -> Duration {
        let share = f64::from(u32::from(256 - u16::from(self.priority).min(255))) / 256.0;
        match self.p.version {
            Version::V3 => self.master_interval.mul_f64(share),
            Version::V2 => Duration::from_secs(1).mul_f64(share),
        }
    }

    /// Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew()
    }

    /// When `on_timer` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backup => self.master_down_at,
            State::Master => self.advert_at,
            _ => None,
        }
    }

    fn go(&mut self, now: Instant, to: State, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        if from == State::Master {
            out.push(Action::ReleaseAddresses);
        }
        self.state = to;
        self.last_transition = Some(now);
        out.push(Action::Transition { from, to });
        match to {
            State::Master => {
                out.push(Action::Send {
                    priority: self.priority,
                });
                out.push(Action::TakeAddresses);
                self.advert_at = Some(now + self.p.interval);
                self.master_down_at = None;
                self.master = None;
            }
            State::Backup => {
                self.master_interval = self.p.interval;
                self.master_down_at = Some(now + self.master_down_interval());
                self.advert_at = None;
            }
            State::Fault | State::Initialize => {
                self.master_down_at = None;
                self.advert_at = None;
                self.master = None;
            }
        }
    }

    /// Startup: the address owner (255) becomes master at once, others backup.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.preempt_from = Some(now + self.p.preempt_delay);
        let to = if self.priority == 255 {
            State::Master
        } else {
            State::Backup
        };
        self.go(now, to, &mut out);
        out
    }

    /// A restart's successor resuming as master (`resume.rs`): an advert at once and
    /// the addresses back, with no state change (the backups never saw one).
    pub fn resume(&mut self, now: Instant) -> Vec<Action> {
        self.preempt_from = Some(now + self.p.preempt_delay);
        self.state = State::Master;
        self.advert_at = Some(now + self.p.interval);
        self.master_down_at = None;
        self.master = None;
        vec![
            Action::Send {
                priority: self.priority,
            },
            Action::RetakeAddresses,
        ]
    }

    /// Leaving for a restart: a master advertises once more at its own priority
    /// (resetting the backups' Master_Down timers, never priority 0) and removes its
    /// addresses; the state stays, for the record.
    pub fn leave(&mut self) -> Vec<Action> {
        if self.state != State::Master {
            return Vec::new();
        }
        self.advert_at = None;
        vec![
            Action::Send {
                priority: self.priority,
            },
            Action::ReleaseAddresses,
        ]
    }

    /// Whether an advert from `src` with `priority` beats ours.
    fn beats_us(&self, priority: u8, src: IpAddr) -> bool {
        priority > self.priority || (priority == self.priority && src > self.p.primary)
    }

    /// An accepted advertisement (already checked by the codec) from `src`.
    pub fn on_advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        priority: u8,
        interval_cs: u16,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Backup => {
                if priority == 0 {
                    // The master is leaving: take over after the skew only.
                    self.master_down_at = Some(now + self.skew());
                    return out;
                }
                let preempting = self.p.preempt
                    && self.preempt_from.is_none_or(|t| now >= t)
                    && !self.beats_us(priority, src);
                if !preempting {
                    if self.p.version == Version::V3 && interval_cs > 0 {
                        self.master_interval = Duration::from_millis(u64::from(interval_cs) * 10);
                    }
                    self.master = Some(src);
                    self.master_down_at = Some(now + self.master_down_interval());
                }
                // Preempting: the lower-priority master's adverts are ignored, so
                // Master_Down expires and we take over.
            }
            State::Master => {
                if priority == 0 {
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    self.advert_at = Some(now + self.p.interval);
                } else if self.beats_us(priority, src) {
                    self.go(now, State::Backup, &mut out);
                    if self.p.version == Version::V3 && interval_cs > 0 {
                        self.master_interval = Duration::from_millis(u64::from(interval_cs) * 10);
                    }
                    self.master = Some(src);
                    self.master_down_at = Some(now + self.master_down_interval());
                } else {
                    // A lower priority claims mastership: advertise at once so it
                    // hears us and steps down.
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    self.advert_at = Some(now + self.p.interval);
                }
            }
            State::Initialize | State::Fault => {}
        }
        out
    }

    /// Time passed: master down (backup), or advert due (master).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Backup if self.master_down_at.is_some_and(|t| now >= t) => {
                self.go(now, State::Master, &mut out);
            }
            State::Master if self.advert_at.is_some_and(|t| now >= t) => {
                out.push(Action::Send {
                    priority: self.priority,
                });
                self.advert_at = Some(now + self.p.interval);
            }
            _ => {}
        }
        out
    }

    /// The effective priority changed (trackers). A master advertises it at once.
    pub fn set_priority(&mut self, now: Instant, priority: u8) -> Vec<Action> {
        let mut out = Vec::new();
        if priority == self.priority || priority == 0 {
            return out;
        }
        self.priority = priority;
        if self.state == State::Master {
            out.push(Action::Send { priority });
            self.advert_at = Some(now + self.p.interval);
        }
        out
    }

    /// A weight-0 tracker failed (`true`) or recovered (`false`).
    pub fn set_fault(&mut self, now: Instant, fault: bool) -> Vec<Action> {
        let mut out = Vec::new();
        match (fault, self.state) {
            (true, State::Fault) | (false, State::Backup | State::Master) => {}
            (true, was) => {
                if was == State::Master {
                    out.push(Action::Send { priority: 0 });
                }
                self.go(now, State::Fault, &mut out);
            }
            (false, _) => self.go(now, State::Backup, &mut out),
        }
        out
    }

    /// Graceful stop: a master says priority 0 so a backup takes over after its
    /// skew, and releases the addresses.
    pub fn stop(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Send { priority: 0 });
        }
        self.go(now, State::Initialize, &mut out);
        out
    }
}
