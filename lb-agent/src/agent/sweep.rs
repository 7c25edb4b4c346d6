//! The sweeper thread: every few seconds a pass over the flow table and the NAT
//! bindings removes what expired (`dataplane::Sweeper`), at a bounded pace, off the
//! owner task. What it found is shared for the status, `/metrics` and a log line a
//! minute when something was removed.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use lb_common::FLOW_STATES;

use super::error::chain;
use crate::dataplane::{PinLayout, SweepPass, Sweeper, state_name};

/// Time between the starts of two passes.
const EVERY: Duration = Duration::from_secs(5);
/// Entries a pass looks at per second at most: a 1M-entry table in about 4 s, at a
/// few percent of one core.
const PACE: u64 = 256 * 1024;
/// Removals are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What the sweeps found.
#[derive(Clone, Debug, Default)]
pub struct Swept {
    /// The last pass.
    pub last: Option<SweepPass>,
    /// Expired entries removed since the agent started, by state.
    pub flows_removed: [u64; FLOW_STATES],
    pub bindings_removed: [u64; FLOW_STATES],
    pub passes: u64,
    /// The last pass's error, if it failed.
    pub error: Option<String>,
}

/// The running sweeper; stopped (and joined) on drop.
pub struct SweepThread {
    pub shared: Arc<Mutex<Swept>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SweepThread {
    /// Starts sweeping the maps pinned under `pins`.
    pub fn start(pins: &PinLayout) -> Result<Self, crate::dataplane::DataplaneError> {
        let mut sweeper = Sweeper::open(pins, PACE)?;
        let shared = Arc::new(Mutex::new(Swept::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let out = shared.clone();
        let thread = std::thread::Builder::new()
            .name("lb-sweep".into())
            .spawn(move || {
                let mut logged = Instant::now();
                let mut unlogged = (0u64, 0u64, [0u64; FLOW_STATES]);
                loop {
                    let started = Instant::now();
                    let pass = sweeper.pass();
                    {
                        let mut s = out.lock().unwrap_or_else(PoisonError::into_inner);
                        s.passes += 1;
                        match pass {
                            Ok(p) => {
                                for i in 0..FLOW_STATES {
                                    s.flows_removed[i] += p.flows.removed[i];
                                    s.bindings_removed[i] += p.bindings.removed[i];
                                    unlogged.2[i] += p.flows.removed[i];
                                }
                                unlogged.0 += p.flows.removed.iter().sum::<u64>();
                                unlogged.1 += p.bindings.removed.iter().sum::<u64>();
                                s.last = Some(p);
                                s.error = None;
                            }
                            Err(e) => {
                                tracing::warn!("sweeping expired flows failed: {}", chain(&e));
                                s.error = Some(chain(&e));
                            }
                        }
                    }
                    if (unlogged.0 > 0 || unlogged.1 > 0) && logged.elapsed() >= LOG_EVERY {
                        let by: Vec<String> = (0..FLOW_STATES)
                            .filter(|i| unlogged.2[*i] > 0)
                            .map(|i| format!("{} {}", state_name(i as u8), unlogged.2[i]))
                            .collect();
                        tracing::info!(
                            "swept {} expired flows ({}) and {} NAT bindings in the last {} s",
                            unlogged.0,
                            by.join(", "),
                            unlogged.1,
                            logged.elapsed().as_secs()
                        );
                        unlogged = (0, 0, [0; FLOW_STATES]);
                        logged = Instant::now();
                    }
                    let wait = EVERY.saturating_sub(started.elapsed());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .map_err(|source| crate::dataplane::DataplaneError::Io {
                what: "starting the sweeper thread",
                source,
            })?;
        Ok(Self {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A copy of what the sweeps found so far.
    pub fn read(&self) -> Swept {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for SweepThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
