//! The XDP data plane as the agent sees it: the embedded object, loading with
//! load-time capacities, attaching, programming services, reading counters.

mod addresses;
mod adopt;
mod batch;
mod capacity;
mod compat;
mod error;
mod lifecycle;
mod loader;
mod local;
mod mapset;
pub mod migrate;
mod pins;
mod program_log;
pub mod read;
mod services;
mod shapes;
mod simulate;
mod sock_destroy;
mod sockets;
mod sweep;
mod timeouts;

pub use adopt::AdoptedBackend;
pub use capacity::Capacities;
pub use error::DataplaneError;
pub use lifecycle::state_name;
pub use loader::{AttachMode, Dataplane, SocketScope};
pub use local::node_addresses;
pub use mapset::{MapSet, PinnedMaps, typed};
pub use pins::{Attached, PinLayout, detach_others};
pub use program_log::ProgramLog;
pub use read::{BackendView, GlobalCounters, ServiceView, Traffic};
pub use services::{
    BackendSpec, BackendState, Forwarding, LiveRing, NoBackend, Protocol, ServiceSpec,
};
pub use shapes::{MapShape, map_shapes};
pub use simulate::{ClientFlow, Simulated};
pub use sock_destroy::{DownBackend, close_balanced_sockets};
pub use sockets::{cgroup2_root, detach_sockets, netns_cookie};
pub use sweep::{SweepPass, Sweeper, TablePass};
pub use timeouts::{FlowTimeouts, TICK_NS, now_tick, ticks, ticks_to_duration};

/// The compiled XDP object, built by build.rs into OUT_DIR.
pub static LB_EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf"));

/// The pass-everything program for the far end of a veth (labs, benchmarks).
#[cfg(feature = "lab")]
pub static LB_PEER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-peer"));
