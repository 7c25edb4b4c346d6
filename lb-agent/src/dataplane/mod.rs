//! The XDP data plane as the agent sees it: the embedded object, loading with
//! load-time capacities, attaching, programming services, reading counters.

mod addresses;
mod capacity;
mod counters;
mod error;
mod flows;
mod loader;
mod services;
mod simulate;

pub use capacity::Capacities;
pub use counters::{GlobalCounters, Traffic};
pub use error::DataplaneError;
pub use loader::{AttachMode, Dataplane};
pub use services::{BackendSpec, BackendState, Forwarding, NoBackend, Protocol, ServiceSpec};
pub use simulate::{ClientFlow, Simulated};

/// The compiled XDP object, built by build.rs into OUT_DIR.
pub static LB_EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf"));

/// The pass-everything program for the far end of a veth (labs, benchmarks).
pub static LB_PEER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-peer"));
