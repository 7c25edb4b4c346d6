//! Flow state and age: what each direction's packets say about a connection, and
//! how long a flow and its NAT binding live after their last packet.
//!
//! The client's packets move a flow entry; the backend's replies (NAT: they cross
//! the LB) move its binding. Entries are rewritten at most once a clock tick
//! (about a second) while their state stays the same, so an established packet
//! pays a compare, not a map write. Expiry is a compare with the entry's `expires`
//! tick; the service's timeouts (`TIMEOUTS`) are read only when an entry is
//! (re)written.

use lb_common::{
    FLOW_STATES, FLOW_TCP_CLOSING, FLOW_TCP_ESTABLISHED, FLOW_TCP_RESET, FLOW_TCP_SYN,
    FLOW_TCP_TIME_WAIT, FLOW_UDP, FLOW_UDP_REPLIED, PROTO_TCP, Timeouts,
};

use crate::{
    headers::Tcp,
    maps::{self, TIMEOUTS},
    packet::Packet,
    parse::Ip,
};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

pub use lb_common::ticks::{expired, tick};

/// The TCP flags byte of the packet (0 for UDP or a short header).
#[inline(always)]
pub fn tcp_flags(pkt: &Packet, ip: &Ip) -> u8 {
    if ip.proto != PROTO_TCP {
        return 0;
    }
    Tcp::<7>::at(pkt, ip.l4).map_or(0, Tcp::flags)
}

/// A flow's first state, from its first packet: a SYN opens a connection; a TCP
/// packet without one is a connection whose flow entry was lost (evicted, expired)
/// while it went on.
#[inline(always)]
pub fn first(proto: u8, flags: u8) -> u8 {
    if proto != PROTO_TCP {
        FLOW_UDP
    } else if flags & TCP_RST != 0 {
        FLOW_TCP_RESET
    } else if flags & TCP_SYN != 0 && flags & TCP_ACK == 0 {
        FLOW_TCP_SYN
    } else {
        FLOW_TCP_ESTABLISHED
    }
}

/// A TCP packet that cannot open a connection (no SYN, no RST): met without a flow
/// entry, its connection began before the entry was lost, or elsewhere.
#[inline(always)]
pub fn midstream(proto: u8, flags: u8) -> bool {
    proto == PROTO_TCP && flags & (TCP_SYN | TCP_RST) == 0
}

/// A client's SYN on a flow whose connection is over: a new connection reusing the
/// 5-tuple, to be chosen (and bound) afresh.
#[inline(always)]
pub fn reopens(state: u8, flags: u8) -> bool {
    flags & TCP_SYN != 0
        && flags & TCP_ACK == 0
        && matches!(
            state,
            FLOW_TCP_CLOSING | FLOW_TCP_TIME_WAIT | FLOW_TCP_RESET
        )
}

/// The state after a client packet with `flags`.
#[inline(always)]
pub fn from_client(state: u8, proto: u8, flags: u8) -> u8 {
    if proto != PROTO_TCP {
        return state;
    }
    if flags & TCP_RST != 0 {
        FLOW_TCP_RESET
    } else if flags & TCP_FIN != 0 && matches!(state, FLOW_TCP_SYN | FLOW_TCP_ESTABLISHED) {
        FLOW_TCP_CLOSING
    } else if state == FLOW_TCP_SYN && flags & TCP_SYN == 0 {
        FLOW_TCP_ESTABLISHED
    } else {
        state
    }
}

/// The state after a backend's reply with `flags` (NAT replies).
#[inline(always)]
pub fn from_backend(state: u8, proto: u8, flags: u8) -> u8 {
    if proto != PROTO_TCP {
        return FLOW_UDP_REPLIED;
    }
    if flags & TCP_RST != 0 {
        FLOW_TCP_RESET
    } else if flags & TCP_FIN != 0 && matches!(state, FLOW_TCP_SYN | FLOW_TCP_ESTABLISHED) {
        FLOW_TCP_TIME_WAIT
    } else if state == FLOW_TCP_SYN {
        FLOW_TCP_ESTABLISHED
    } else {
        state
    }
}

/// Ticks a flow of VIP slot `vip_id` in `state` lives after its last packet.
#[inline(always)]
pub fn timeout(vip_id: u32, state: u8) -> u32 {
    let Some(p) = TIMEOUTS.get_ptr(vip_id) else {
        return 1;
    };
    // Read in place (a copy would take 32 bytes of BPF stack), indexed with a mask
    // the verifier follows.
    let t: &Timeouts = maps::value_ref(p);
    t.by_state[usize::from(state) & (FLOW_STATES - 1)]
}
