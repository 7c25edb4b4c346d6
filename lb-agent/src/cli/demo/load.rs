//! A demo client: one request (HTTP or HTTPS GET) on a new connection after another,
//! from a namespace, tallied per answering backend. Keeps the last
//! second of results for rates and shares, and the longest gap between two answered
//! requests since the last `mark` (what a user of the service saw of an outage).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use lb_agent::lab::{LabError, Netns};

/// Pause between two requests.
const PACE: Duration = Duration::from_millis(4);
/// The window rates and shares are computed over.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Record {
    /// (when, answering backend or None for a failure) over the last WINDOW.
    recent: VecDeque<(Instant, Option<String>)>,
    answered: u64,
    failed: u64,
    last_failure: Option<String>,
    last_ok: Option<Instant>,
    longest_gap: Duration,
}

/// What the client saw, for the view.
pub struct LoadView {
    /// Backend name -> answers in the last second.
    pub shares: BTreeMap<String, u64>,
    pub answered_per_s: u64,
    pub failed_last_s: u64,
    pub answered: u64,
    pub failed: u64,
    pub last_failure: Option<String>,
    /// Longest time between two answered requests since `mark`.
    pub longest_gap: Duration,
}

impl LoadView {
    /// Before the client starts.
    pub fn empty() -> Self {
        Self {
            shares: BTreeMap::new(),
            answered_per_s: 0,
            failed_last_s: 0,
            answered: 0,
            failed: 0,
            last_failure: None,
            longest_gap: Duration::ZERO,
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts making requests with `request` (on a new connection each: the
    /// answering backend's name, or why not) from inside `ns`.
    pub fn start(
        ns: &Netns,
        request: impl Fn() -> Result<String, String> + Send + 'static,
    ) -> Result<Self, LabError> {
        let entry = ns.entry()?;
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let (flag, rec) = (stop.clone(), record.clone());
        let thread = std::thread::spawn(move || {
            if entry.enter().is_err() {
                return;
            }
            while !flag.load(Ordering::Relaxed) {
                let result = request();
                let now = Instant::now();
                let mut r = rec.lock().unwrap_or_else(PoisonError::into_inner);
                match result {
                    Ok(name) => {
                        r.answered += 1;
                        if let Some(last) = r.last_ok {
                            r.longest_gap = r.longest_gap.max(now - last);
                        }
                        r.last_ok = Some(now);
                        r.recent.push_back((now, Some(name)));
                    }
                    Err(e) => {
                        r.failed += 1;
                        r.last_failure = Some(e);
                        r.recent.push_back((now, None));
                    }
                }
                while r.recent.front().is_some_and(|(t, _)| now - *t > WINDOW) {
                    r.recent.pop_front();
                }
                drop(r);
                std::thread::sleep(PACE);
            }
        });
        Ok(Self {
            stop,
            record,
            thread: Some(thread),
        })
    }

    /// Starts a new outage measurement.
    pub fn mark(&self) {
        let mut r = self.lock();
        r.longest_gap = Duration::ZERO;
    }

    pub fn view(&self) -> LoadView {
        let r = self.lock();
        let now = Instant::now();
        let mut shares = BTreeMap::new();
        let mut failed_last_s = 0;
        for (t, who) in &r.recent {
            if now - *t > WINDOW {
                continue;
            }
            match who {
                Some(name) => *shares.entry(name.clone()).or_default() += 1,
                None => failed_last_s += 1,
            }
        }
        // A gap still open counts too: the outage is not over while nothing answers.
        let open = r.last_ok.map_or(Duration::ZERO, |t| now - t);
        LoadView {
            answered_per_s: shares.values().sum(),
            shares,
            failed_last_s,
            answered: r.answered,
            failed: r.failed,
            last_failure: r.last_failure.clone(),
            longest_gap: r.longest_gap.max(open),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
