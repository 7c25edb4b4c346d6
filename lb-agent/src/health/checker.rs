//! One task per backend: checks at start, then on the schedule its health state asks
//! for, offset per backend so checks of different backends do not run in lockstep.
//! Every check is reported (the agent keeps the last result for metrics and the
//! status page); a report says whether the state flipped.

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle, time::sleep};

use super::{
    probe::{self, Outcome, ProbeSpec},
    state::{HealthState, Intervals},
};
use crate::tasks::Tasks;

/// After every check of a backend.
#[derive(Clone, Debug)]
pub struct Report<K> {
    pub key: K,
    pub outcome: Outcome,
    pub up: bool,
    /// The check flipped the state.
    pub changed: bool,
}

/// A share of `interval` from `seed` (e.g. a hash of the backend), to spread checks.
pub fn spread(seed: u64, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(seed % ms)
}

/// Starts checking on `tasks`; stops when they are cancelled (a check under way is
/// dropped) or the receiver of `reports` is gone.
pub fn spawn<K: Clone + Send + 'static>(
    tasks: &Tasks,
    key: K,
    spec: ProbeSpec,
    mut state: HealthState,
    intervals: Intervals,
    offset: Duration,
    reports: mpsc::UnboundedSender<Report<K>>,
) -> JoinHandle<()> {
    tasks.spawn("health checker", async move {
        let mut extra = offset;
        loop {
            let outcome = probe::run(&spec).await;
            let changed = state.record(outcome.ok).is_some();
            let report = Report {
                key: key.clone(),
                outcome,
                up: state.is_up(),
                changed,
            };
            if reports.send(report).is_err() {
                return;
            }
            sleep(state.next_delay(&intervals) + std::mem::take(&mut extra)).await;
        }
    })
}
