//! Types shared by the kernel side (`lb-ebpf`) and the user side (`lb-agent`).
//!
//! Every map key and value is defined here once: `#[repr(C)]`, no implicit padding
//! (explicit `_pad` fields), sizes asserted at compile time. The `user` feature adds
//! `aya::Pod` impls and the Maglev table builder.
#![no_std]

#[cfg(feature = "user")]
extern crate std;

pub mod consts;
pub mod hash;
pub mod map_table;
pub mod maps;
pub mod stats;
pub mod ticks;

#[cfg(feature = "user")]
pub mod maglev;

pub use consts::*;
pub use map_table::{Entries, MAPS, MapDef, MapRole, MapType, PRIVATE_MAPS, map_def};
pub use maps::*;
pub use stats::*;
