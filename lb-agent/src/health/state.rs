//! A backend's health as HAProxy defines it: `fall` consecutive failures take an up
//! backend down, `rise` consecutive successes bring a down backend up. While a change
//! is under way checks come every `fastinter`, while down every `downinter`, else
//! every `interval`.

use std::time::Duration;

/// How often to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    pub interval: Duration,
    pub fastinter: Duration,
    pub downinter: Duration,
}

/// Health of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
    rise: u32,
    fall: u32,
    /// Not yet confirmed by any check: the first result decides at once.
    fresh: bool,
}

impl HealthState {
    /// A backend never checked: taken as up until its first check (which runs at
    /// start) says otherwise, without waiting for `fall` failures.
    pub fn fresh(rise: u32, fall: u32) -> Self {
        Self {
            up: true,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
            fresh: true,
        }
    }

    /// A backend whose state is known (e.g. from before a restart): it keeps it until
    /// `fall` failures or `rise` successes say otherwise, so a restart does not flap.
    pub fn known(up: bool, rise: u32, fall: u32) -> Self {
        Self {
            up,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
            fresh: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// A change is under way (some results already disagree with the state).
    pub fn changing(&self) -> bool {
        self.streak > 0
    }

    /// Records one check result; returns the new state when it flips.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if self.fresh {
            self.fresh = false;
            self.streak = 0;
            let flipped = self.up != ok;
            self.up = ok;
            return flipped.then_some(ok);
        }
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }

    /// Time until the next check.
    pub fn next_delay(&self, i: &Intervals) -> Duration {
        if self.changing() {
            i.fastinter
        } else if self.up {
            i.interval
        } else {
            i.downinter
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Intervals = Intervals {
        interval: Duration::from_secs(2),
        fastinter: Duration::from_millis(500),
        downinter: Duration::from_secs(5),
    };

    #[test]
    fn fall_failures_take_it_down_and_rise_successes_bring_it_back() {
        let mut h = HealthState::known(true, 2, 3);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true));
        assert!(h.is_up());
    }

    #[test]
    fn an_interrupted_streak_starts_over() {
        let mut h = HealthState::known(true, 2, 3);
        h.record(false);
        h.record(false);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert!(
            h.is_up(),
            "two failures after a success are not three in a row"
        );
    }

    #[test]
    fn the_first_check_of_a_fresh_backend_decides_at_once() {
        let mut down = HealthState::fresh(2, 3);
        assert!(down.is_up());
        assert_eq!(down.record(false), Some(false));
        let mut up = HealthState::fresh(2, 3);
        assert_eq!(up.record(true), None);
        assert!(up.is_up());
        // Afterwards the thresholds apply.
        assert_eq!(up.record(false), None);
    }

    #[test]
    fn intervals_follow_the_state() {
        let mut h = HealthState::known(true, 2, 3);
        assert_eq!(h.next_delay(&I), I.interval);
        h.record(false);
        assert_eq!(h.next_delay(&I), I.fastinter, "going down");
        h.record(false);
        h.record(false);
        assert_eq!(h.next_delay(&I), I.downinter, "down");
        h.record(true);
        assert_eq!(h.next_delay(&I), I.fastinter, "going up");
    }
}
