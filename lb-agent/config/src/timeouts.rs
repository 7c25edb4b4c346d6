//! How long flows and their NAT bindings live after their last packet, by state
//! (what netfilter conntrack calls its timeouts). Defaults, and why:
//!
//! | state | default | why |
//! |---|---|---|
//! | TCP, SYN seen, no answer | 10 s | a backend that does not answer a SYN within seconds will not; the client's own retries make a new flow. (conntrack keeps 120 s, Cilium 60 s: longer only holds a port.) |
//! | TCP established | 3 h | outlives Linux's default keepalive (2 h idle, then probes 75 s apart) with room to spare; every connection that vanished without FIN or RST holds its port this long, so not conntrack's 5 days (Cilium: 6 h, IPVS: 15 min) |
//! | TCP, the client closed first | 30 s | the backend closes passively (no TIME_WAIT on its side): room for its FIN and the last ACK, as conntrack's LAST_ACK (30 s) |
//! | TCP, the backend closed first | 120 s | the backend may hold the 4-tuple in TIME_WAIT (60 s on Linux); a port reused sooner would meet it. conntrack's TIME_WAIT: 120 s |
//! | TCP reset | 10 s | over; conntrack's CLOSE: 10 s |
//! | UDP, one way | 30 s | conntrack's `udp_timeout` |
//! | UDP, replied | 120 s | conntrack's `udp_timeout_stream` |
//!
//! A NAT flow's port stays taken while its binding lives, so these set the
//! sustained rate of new flows one SNAT address can carry to one backend: its
//! ports / the closed-flow lifetime (31,744 / 30 s = 1,058 per second when clients
//! close first, 264 when backends do).

use std::time::Duration;

use lb_common::{
    CLOCK_TICK_SHIFT, FLOW_STATES, FLOW_TCP_CLOSING, FLOW_TCP_ESTABLISHED, FLOW_TCP_RESET,
    FLOW_TCP_SYN, FLOW_TCP_TIME_WAIT, FLOW_UDP_REPLIED, Timeouts,
};

/// The lifetimes of one service's flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    pub tcp_closing: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_reset: Duration,
    pub udp: Duration,
    pub udp_replied: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        Self {
            tcp_syn: Duration::from_secs(10),
            tcp_established: Duration::from_secs(3 * 3600),
            tcp_closing: Duration::from_secs(30),
            tcp_time_wait: Duration::from_secs(120),
            tcp_reset: Duration::from_secs(10),
            udp: Duration::from_secs(30),
            udp_replied: Duration::from_secs(120),
        }
    }
}

/// Nanoseconds in one clock tick of the data plane.
pub const TICK_NS: u64 = 1 << CLOCK_TICK_SHIFT;

/// `d` in ticks, rounded up (at least one).
pub fn ticks(d: Duration) -> u32 {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    u32::try_from(ns.div_ceil(TICK_NS))
        .unwrap_or(u32::MAX)
        .max(1)
}

impl FlowTimeouts {
    /// The lifetime of `state` (`FLOW_*`).
    pub fn of(&self, state: u8) -> Duration {
        match state {
            FLOW_TCP_SYN => self.tcp_syn,
            FLOW_TCP_ESTABLISHED => self.tcp_established,
            FLOW_TCP_CLOSING => self.tcp_closing,
            FLOW_TCP_TIME_WAIT => self.tcp_time_wait,
            FLOW_TCP_RESET => self.tcp_reset,
            FLOW_UDP_REPLIED => self.udp_replied,
            _ => self.udp,
        }
    }

    /// The map value: every lifetime in ticks, by state.
    pub fn to_map(&self) -> Timeouts {
        let mut by_state = [1u32; FLOW_STATES];
        for (state, t) in by_state.iter_mut().enumerate().skip(1) {
            *t = ticks(self.of(state as u8));
        }
        Timeouts { by_state }
    }

    /// The longest a closed NAT flow holds its port (a backend that closed first).
    pub fn closed_lifetime(&self) -> Duration {
        self.tcp_closing.max(self.tcp_time_wait).max(self.tcp_reset)
    }
}

/// Ticks as a duration (for ages shown to people).
pub fn ticks_to_duration(t: u32) -> Duration {
    Duration::from_nanos(u64::from(t) * TICK_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_never_vanish() {
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_nanos(TICK_NS)), 1);
        assert_eq!(ticks(Duration::from_nanos(TICK_NS + 1)), 2);
        // 3 h: 10,800 s is 10,058.3 ticks of 1.07 s.
        assert_eq!(ticks(Duration::from_secs(3 * 3600)), 10_059);
        assert!(ticks_to_duration(ticks(Duration::from_secs(120))) >= Duration::from_secs(120));
    }
}
