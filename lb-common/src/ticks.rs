//! Flow ages in clock ticks ([`crate::CLOCK_TICK_SHIFT`]), one definition for the
//! program, which writes them, and the agent, which sweeps and shows them.

use crate::{CLOCK_TICK_SHIFT, NAT_RECLAIM_TICKS};

/// The clock tick of a `CLOCK_MONOTONIC_COARSE` time in nanoseconds.
#[inline(always)]
pub const fn tick(now_ns: u64) -> u32 {
    (now_ns >> CLOCK_TICK_SHIFT) as u32
}

/// Ticks from `expires` to `now`: positive once expired (wrapping: about 73 years
/// either way).
#[inline(always)]
pub const fn past(now: u32, expires: u32) -> i32 {
    now.wrapping_sub(expires) as i32
}

/// Whether `expires` lies before `now`.
#[inline(always)]
pub const fn expired(now: u32, expires: u32) -> bool {
    past(now, expires) > 0
}

/// Whether a NAT binding that expired at `expires` may still be taken over or given
/// back to its flow by the program at `now`: expired, within `NAT_RECLAIM_TICKS`.
#[inline(always)]
pub const fn nat_reclaimable(now: u32, expires: u32) -> bool {
    let p = past(now, expires);
    p > 0 && p <= NAT_RECLAIM_TICKS as i32
}

/// Whether the agent's sweep may delete a NAT binding that expired at `expires`:
/// past the reclaim window and a tick more, so the program no longer writes it.
#[inline(always)]
pub const fn nat_sweepable(now: u32, expires: u32) -> bool {
    past(now, expires) as i64 > NAT_RECLAIM_TICKS as i64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_and_the_sweep_never_act_on_the_same_binding() {
        for now in [0u32, 1000, u32::MAX - 5] {
            for age in -3i64..=i64::from(NAT_RECLAIM_TICKS) + 4 {
                let expires = now.wrapping_sub(age as u32);
                assert!(
                    !(nat_reclaimable(now, expires) && nat_sweepable(now, expires)),
                    "age {age}"
                );
                // A binding the sweep read as sweepable stays so a tick later.
                if nat_sweepable(now, expires) {
                    assert!(!nat_reclaimable(now.wrapping_add(1), expires));
                }
            }
        }
        assert!(!expired(10, 10) && expired(11, 10) && expired(1, u32::MAX));
    }
}
