//! Waiting in tests: one poller for every "until this holds" instead of fixed sleeps and
//! hand-written loops, and the one slack every timing bound allows.

use std::time::{Duration, Instant};

/// How often a condition is evaluated.
const STEP: Duration = Duration::from_millis(10);

/// What a timing bound of these tests allows above the protocol's own figure. CI runs
/// on two shared cores with builds beside the tests, where a process is now and then
/// held up for a few hundred milliseconds; the precise figures are measured on a quiet
/// machine and reported in bench/RESULTS.md (the tests print theirs too).
pub const TIMING_SLACK: Duration = Duration::from_millis(500);

/// Evaluates `condition` every 10 ms until it yields a value or `limit` passes: the
/// value and how long it took, or `None`. For the rare wait whose timeout is not a
/// failure; the others use [`eventually`] and its kin, which panic.
pub fn within<T>(
    limit: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = condition() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(STEP);
    }
}

/// Waits until `condition` yields a value, and returns the value and how long that
/// took. Panics after `limit`, naming `what` and adding `context()` (the agent's log,
/// say), evaluated only then.
pub fn eventually_some_or<T>(
    what: &str,
    limit: Duration,
    condition: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> (T, Duration) {
    match within(limit, condition) {
        Some(done) => done,
        None => panic!("{what}: not within {limit:?}\n{}", context()),
    }
}

/// [`eventually_some_or`] without context.
pub fn eventually_some<T>(
    what: &str,
    limit: Duration,
    condition: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    eventually_some_or(what, limit, condition, String::new)
}

/// Waits until `condition` holds; returns how long it took. Panics after `limit`.
pub fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    eventually_some(what, limit, || condition().then_some(())).1
}

/// [`eventually`] with `context()` added to the panic message.
pub fn eventually_or(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) -> Duration {
    eventually_some_or(what, limit, || condition().then_some(()), context).1
}
