//! The data plane's clock; flows' lifetimes are config values (`lb_config::timeouts`).

pub use lb_config::timeouts::{FlowTimeouts, TICK_NS, ticks, ticks_to_duration};

/// The data plane's clock now, in ticks (`CLOCK_MONOTONIC_COARSE`, the clock of
/// `bpf_ktime_get_coarse_ns`).
pub fn now_tick() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ns = (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64;
    lb_common::ticks::tick(ns)
}
