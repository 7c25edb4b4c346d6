//! The last minutes of each backend (traffic and state) and of each VRRP instance
//! (state and transitions), for the status page's charts. The daemon keeps one
//! fixed-size ring per backend and per instance, filled from the `Status` it builds
//! (`Recorder::sample` every `STEP`), and publishes a copy inside that `Status`
//! (`Status::history`, also in `/stats.json`). Memory only: a restart starts afresh.
//!
//! A backend is keyed by VIP name, address and port: a reload that keeps it keeps its
//! history, and a backend (or instance) no longer in the status loses its own.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::status::{Status, unix_now};

/// Time between two samples.
pub const STEP: Duration = Duration::from_secs(2);
/// Samples kept per backend and per instance: `STEP` × `WINDOW` = 10 minutes.
pub const WINDOW: usize = 300;
/// Transitions kept per VRRP instance (the older ones in the window are dropped).
const MAX_TRANSITIONS: usize = 16;
/// A sample is due this much before `STEP` has fully passed: the once-a-second
/// refresh that asks is never exactly on time.
const SLACK: Duration = Duration::from_millis(500);

/// What the status carries: the window, and each backend's and instance's samples,
/// oldest first (fewer than `window_samples` while the agent or the backend is new).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// Seconds between samples.
    pub step_s: u64,
    /// Samples in a full window (the window is `step_s` × `window_samples`).
    pub window_samples: usize,
    /// When the newest sample was taken (unix seconds; 0 before the first).
    pub newest_unix: u64,
    pub backends: Vec<BackendHistory>,
    pub vrrp: Vec<VrrpHistory>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BackendHistory {
    /// The VIP's name (as `VipStatus::name`).
    pub vip: String,
    pub address: String,
    pub port: u16,
    pub samples: Vec<BackendSample>,
}

/// A backend over one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendSample {
    /// Packets per second the data plane forwarded for the backend (with NAT, its
    /// replies too) since the previous sample.
    pub packets_per_s: f64,
    /// Its data plane state when sampled (`BackendStatus::state`).
    pub state: BackendMark,
}

/// A backend's data plane state in a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendMark {
    Up,
    Drain,
    Down,
    Standby,
}

impl BackendMark {
    /// From `BackendStatus::state` ("up", "drain", "down", "standby"); anything else
    /// (not written by the daemon) counts as down.
    pub fn of(state: &str) -> Self {
        match state {
            "up" => Self::Up,
            "drain" => Self::Drain,
            "standby" => Self::Standby,
            _ => Self::Down,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Drain => "drain",
            Self::Down => "down",
            Self::Standby => "standby",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VrrpHistory {
    /// The instance's name.
    pub name: String,
    /// Its state at each sample ("MASTER", "BACKUP", "FAULT", "INIT").
    pub states: Vec<String>,
    /// Its transitions in the window, oldest first (at most 16).
    pub transitions: Vec<VrrpTransition>,
}

/// A state change of a VRRP instance, as the agent saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpTransition {
    pub at_unix: u64,
    /// The state seen before ("" if none was); a quicker flap in between is not
    /// shown, `changes` counts it.
    pub from: String,
    pub to: String,
    /// Transitions since the one recorded before (1 unless it flapped in between).
    pub changes: u64,
}

/// One backend's ring, and its packet counter at the last sample (for the rate).
struct BackendRing {
    samples: VecDeque<BackendSample>,
    packets: u64,
    at: Instant,
}

/// One instance's ring and the transition count last seen.
struct VrrpRing {
    states: VecDeque<String>,
    transitions: VecDeque<VrrpTransition>,
    seen: Option<(u64, String)>,
}

/// (VIP name, address, port).
type BackendId = (String, String, u16);

/// The rings; kept by the agent's owner task.
#[derive(Default)]
pub struct Recorder {
    backends: HashMap<BackendId, BackendRing>,
    vrrp: HashMap<String, VrrpRing>,
    last: Option<Instant>,
    newest_unix: u64,
}

impl Recorder {
    /// Whether a sample is due at `now` (asked once a second).
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|l| now.saturating_duration_since(l) + SLACK >= STEP)
    }

    /// Notes VRRP transitions in `status` (on every status built: a change is seen
    /// even between two samples).
    pub fn observe(&mut self, status: &Status) {
        let window = STEP.as_secs() * WINDOW as u64;
        let oldest = unix_now().saturating_sub(window);
        for st in &status.vrrp {
            let ring = self
                .vrrp
                .entry(st.name.clone())
                .or_insert_with(|| VrrpRing {
                    states: VecDeque::with_capacity(WINDOW),
                    transitions: VecDeque::new(),
                    seen: None,
                });
            let before = ring.seen.as_ref().map_or(0, |(n, _)| *n);
            if st.transitions != before && st.last_transition_unix > 0 {
                ring.transitions.push_back(VrrpTransition {
                    at_unix: st.last_transition_unix,
                    from: ring.seen.take().map(|(_, s)| s).unwrap_or_default(),
                    to: st.state.clone(),
                    changes: st.transitions.saturating_sub(before).max(1),
                });
            }
            while ring.transitions.len() > MAX_TRANSITIONS
                || ring.transitions.front().is_some_and(|t| t.at_unix < oldest)
            {
                ring.transitions.pop_front();
            }
            ring.seen = Some((st.transitions, st.state.clone()));
        }
    }

    /// Appends a sample of every backend and instance in `status` (taken at `now`),
    /// and forgets those no longer in it.
    pub fn sample(&mut self, status: &Status, now: Instant) {
        self.observe(status);
        let mut backends = HashMap::with_capacity(self.backends.len());
        for v in &status.vips {
            for b in &v.backends {
                let id = (v.name.clone(), b.address.clone(), b.port);
                let mut ring = self.backends.remove(&id).unwrap_or_else(|| BackendRing {
                    samples: VecDeque::with_capacity(WINDOW),
                    packets: b.traffic.packets,
                    at: now,
                });
                let secs = now.saturating_duration_since(ring.at).as_secs_f64();
                let packets_per_s = if ring.samples.is_empty() || secs <= 0.0 {
                    b.rates.packets_per_s
                } else {
                    // A counter that went back (its slot reused) reads as no traffic.
                    b.traffic.packets.saturating_sub(ring.packets) as f64 / secs
                };
                push(
                    &mut ring.samples,
                    BackendSample {
                        packets_per_s,
                        state: BackendMark::of(&b.state),
                    },
                );
                ring.packets = b.traffic.packets;
                ring.at = now;
                backends.insert(id, ring);
            }
        }
        self.backends = backends;
        self.vrrp
            .retain(|name, _| status.vrrp.iter().any(|st| &st.name == name));
        for st in &status.vrrp {
            if let Some(ring) = self.vrrp.get_mut(&st.name) {
                push(&mut ring.states, st.state.clone());
            }
        }
        self.last = Some(now);
        self.newest_unix = unix_now();
    }

    /// A copy for the status, in the status's order (VIPs, their backends, instances).
    pub fn view(&self, status: &Status) -> History {
        History {
            step_s: STEP.as_secs(),
            window_samples: WINDOW,
            newest_unix: self.newest_unix,
            backends: status
                .vips
                .iter()
                .flat_map(|v| v.backends.iter().map(move |b| (v, b)))
                .filter_map(|(v, b)| {
                    let ring = self
                        .backends
                        .get(&(v.name.clone(), b.address.clone(), b.port))?;
                    Some(BackendHistory {
                        vip: v.name.clone(),
                        address: b.address.clone(),
                        port: b.port,
                        samples: ring.samples.iter().copied().collect(),
                    })
                })
                .collect(),
            vrrp: status
                .vrrp
                .iter()
                .filter_map(|st| {
                    let ring = self.vrrp.get(&st.name)?;
                    Some(VrrpHistory {
                        name: st.name.clone(),
                        states: ring.states.iter().cloned().collect(),
                        transitions: ring.transitions.iter().cloned().collect(),
                    })
                })
                .collect(),
        }
    }
}

/// Appends to a ring of `WINDOW` samples, dropping the oldest when full.
fn push<T>(ring: &mut VecDeque<T>, sample: T) {
    if ring.len() == WINDOW {
        ring.pop_front();
    }
    ring.push_back(sample);
}

impl History {
    /// No samples yet, in the daemon's window.
    pub fn empty() -> Self {
        Self {
            step_s: STEP.as_secs(),
            window_samples: WINDOW,
            ..Self::default()
        }
    }

    /// The samples of backend `address:port` of VIP `vip` (empty if none yet).
    pub fn backend(&self, vip: &str, address: &str, port: u16) -> &[BackendSample] {
        self.backends
            .iter()
            .find(|h| h.vip == vip && h.address == address && h.port == port)
            .map_or(&[], |h| h.samples.as_slice())
    }

    pub fn instance(&self, name: &str) -> Option<&VrrpHistory> {
        self.vrrp.iter().find(|h| h.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dataplane::Traffic,
        status::{BackendStatus, VipStatus},
        vrrp::InstanceStatus,
    };

    fn backend(address: &str, packets: u64, state: &str) -> BackendStatus {
        BackendStatus {
            address: address.into(),
            port: 80,
            state: state.into(),
            traffic: Traffic {
                packets,
                ..Traffic::default()
            },
            ..BackendStatus::default()
        }
    }

    fn status(backends: Vec<BackendStatus>) -> Status {
        Status {
            vips: vec![VipStatus {
                name: "web".into(),
                backends,
                ..VipStatus::default()
            }],
            ..Status::default()
        }
    }

    #[test]
    fn rates_come_from_the_counters_between_samples() {
        let mut r = Recorder::default();
        let t0 = Instant::now();
        r.sample(&status(vec![backend("10.0.0.1", 100, "up")]), t0);
        r.sample(&status(vec![backend("10.0.0.1", 300, "up")]), t0 + STEP);
        r.sample(
            &status(vec![backend("10.0.0.1", 50, "down")]),
            t0 + 2 * STEP,
        );
        let s = status(vec![backend("10.0.0.1", 50, "down")]);
        let h = r.view(&s);
        let samples = h.backend("web", "10.0.0.1", 80);
        let rates: Vec<f64> = samples.iter().map(|s| s.packets_per_s).collect();
        assert_eq!(rates, [0.0, 100.0, 0.0], "a counter going back reads as 0");
        assert_eq!(samples[2].state, BackendMark::Down);
        assert_eq!((h.step_s, h.window_samples), (2, WINDOW));
    }

    #[test]
    fn a_ring_holds_the_window_and_a_removed_backend_goes() {
        let mut r = Recorder::default();
        let t0 = Instant::now();
        for i in 0..WINDOW as u32 + 5 {
            let both = vec![backend("10.0.0.1", 0, "up"), backend("10.0.0.2", 0, "up")];
            r.sample(&status(both), t0 + STEP * i);
        }
        let both = status(vec![
            backend("10.0.0.1", 0, "up"),
            backend("10.0.0.2", 0, "up"),
        ]);
        assert_eq!(r.view(&both).backend("web", "10.0.0.1", 80).len(), WINDOW);
        // A reload keeps .1 and removes .2; .2 coming back starts afresh.
        let one = status(vec![backend("10.0.0.1", 0, "drain")]);
        r.sample(&one, t0 + STEP * 400);
        assert_eq!(r.backends.len(), 1);
        r.sample(&both, t0 + STEP * 401);
        let h = r.view(&both);
        assert_eq!(h.backend("web", "10.0.0.1", 80).len(), WINDOW);
        assert_eq!(h.backend("web", "10.0.0.2", 80).len(), 1);
        assert!(h.backend("web", "10.0.0.3", 80).is_empty());
    }

    #[test]
    fn a_sample_is_due_once_per_step_with_slack() {
        let mut r = Recorder::default();
        let t0 = Instant::now();
        assert!(r.due(t0));
        r.sample(&status(Vec::new()), t0);
        assert!(!r.due(t0 + Duration::from_millis(1000)));
        assert!(r.due(t0 + Duration::from_millis(1990)));
    }

    fn instance(state: &str, transitions: u64, at: u64) -> InstanceStatus {
        InstanceStatus {
            name: "vi".into(),
            state: state.into(),
            transitions,
            last_transition_unix: at,
            ..InstanceStatus::default()
        }
    }

    #[test]
    fn vrrp_transitions_are_seen_between_samples() {
        let mut r = Recorder::default();
        let now = unix_now();
        let mut s = Status {
            vrrp: vec![instance("INIT", 0, 0)],
            ..Status::default()
        };
        r.sample(&s, Instant::now());
        s.vrrp = vec![instance("BACKUP", 1, now - 5)];
        r.observe(&s);
        s.vrrp = vec![instance("MASTER", 4, now)];
        r.sample(&s, Instant::now());
        let h = r.view(&s);
        let vi = h.instance("vi").expect("instance");
        assert_eq!(vi.states, ["INIT", "MASTER"]);
        let seen: Vec<_> = vi
            .transitions
            .iter()
            .map(|t| (t.from.as_str(), t.to.as_str(), t.changes))
            .collect();
        assert_eq!(seen, [("INIT", "BACKUP", 1), ("BACKUP", "MASTER", 3)]);
        s.vrrp.clear();
        r.sample(&s, Instant::now());
        assert!(r.view(&s).vrrp.is_empty() && r.vrrp.is_empty());
    }
}
