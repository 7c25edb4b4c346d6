//! VRRP (RFC 5798 v3, RFC 3768 v2) as keepalived speaks it, the parts without I/O: the
//! advert codec (`packet`), the state machine (`machine`) and the effective priority
//! from trackers (`priority`). The agent (`lb-agent/src/vrrp/`) adds sockets,
//! addresses, announcements and trackers; the fuzz target (`fuzz/`) drives the codec.
//! Builds and tests without the eBPF toolchain: `cargo test -p lb-vrrp`.

pub mod machine;
#[cfg(test)]
mod machine_tests;
pub mod packet;
#[cfg(test)]
mod packet_tests;
pub mod priority;
