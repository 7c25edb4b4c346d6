//! VRRP (RFC 5798 v3, RFC 3768 v2), interoperable with keepalived: the wire codec,
//! the state machine, and (later) sockets, addresses and trackers.

pub mod machine;
#[cfg(test)]
mod machine_tests;
pub mod packet;
#[cfg(test)]
mod packet_tests;
pub mod priority;
