//! Test support: packet building and independent verification, network namespace
//! labs. Tests run as root against the real kernel.

pub mod bench;
pub mod harness;
pub mod packet;
pub mod rawsock;
