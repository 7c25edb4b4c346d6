//! Errors of the data plane layer.

use std::{net::IpAddr, path::PathBuf};

/// What went wrong loading, attaching or programming the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("invalid capacity {what}: {why}")]
    Capacity { what: &'static str, why: String },
    #[error("the programs' log ring")]
    ProgramLog {
        #[source]
        source: aya_log::Error,
    },
    #[error("loading the XDP object failed")]
    Load {
        #[source]
        source: aya::EbpfError,
    },
    #[error("program {name} is missing from the object")]
    MissingProgram { name: &'static str },
    #[error("map {name} is missing from the object")]
    MissingMap { name: &'static str },
    #[error("program {name}: {what} failed")]
    Program {
        name: &'static str,
        what: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map {name}: {what} failed")]
    Map {
        name: &'static str,
        what: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map {name}: batch update failed")]
    MapWrite {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot count the possible CPUs")]
    Cpus {
        #[source]
        source: std::io::Error,
    },
    #[error("interface {name} not found")]
    NoInterface { name: String },
    #[error("service {service}: {why}")]
    Service { service: String, why: String },
    #[error("too many {what}: capacity is {capacity}")]
    Full { what: &'static str, capacity: u32 },
    #[error("service {service}: address families differ ({vip} vs {other})")]
    FamilyMismatch {
        service: String,
        vip: IpAddr,
        other: IpAddr,
    },
    #[error("pin path {path}: {why}")]
    PinPath { path: PathBuf, why: String },
    #[error("pinning {what} at {path}")]
    Pin {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("carrying map {name} into the new layout: {what} failed")]
    Carry {
        name: &'static str,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pinned map {path} does not fit this agent: {why}")]
    PinnedMap { path: PathBuf, why: String },
    #[error("pinned link {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("cannot read this network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14)")]
    Netns {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list this node's addresses (getifaddrs)")]
    Addresses {
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path}: {why}")]
    Cgroup { path: PathBuf, why: String },
    #[error("service {service}: Maglev table")]
    Maglev {
        service: String,
        #[source]
        source: lb_common::maglev::MaglevError,
    },
}
