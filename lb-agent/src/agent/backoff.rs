//! Accept loops that meet an error (out of file descriptors, above all) wait before
//! the next try, doubling from 10 ms to 1 s, and say so once per streak instead of
//! spinning on a core.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(10);
const MOST: Duration = Duration::from_secs(1);

/// The wait before an accept loop's next try.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// An accept failed: log it (the first of a streak) and wait.
    pub async fn failed(&mut self, what: &str, e: &std::io::Error) {
        let delay = match self.delay {
            None => {
                tracing::warn!("{what}: accept failed ({e}); retrying with a backoff up to 1 s");
                FIRST
            }
            Some(d) => (d * 2).min(MOST),
        };
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }

    /// An accept succeeded: the next failure starts a new streak.
    pub fn succeeded(&mut self) {
        self.delay = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_a_second_and_reset_on_success() {
        let mut b = Backoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            b.failed("test", &e).await;
        }
        // 10+20+40+...+640 ms, then 1 s thrice.
        assert_eq!(start.elapsed(), Duration::from_millis(1270 + 3000));
        b.succeeded();
        let t = tokio::time::Instant::now();
        b.failed("test", &e).await;
        assert_eq!(t.elapsed(), FIRST);
    }
}
