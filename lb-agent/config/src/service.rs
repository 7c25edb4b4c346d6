//! What the data plane is asked to serve: services, their backends and how packets
//! reach them, as plain values (the agent's `dataplane` writes them to the maps).

use std::net::IpAddr;

use lb_common::{PROTO_TCP, PROTO_UDP};

use crate::timeouts::FlowTimeouts;

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        }
    }
}

/// How packets reach the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// Full NAT: backends see the SNAT address and reply to the LB.
    Nat,
    /// L2 direct server return: backends hold the VIP and reply to the client.
    Dsr,
}

/// What a service does when no backend is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoBackend {
    Drop,
    /// TCP gets a RST (UDP is dropped).
    Reset,
}

/// A backend's effective state (configured state combined with health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    Up,
    /// Keeps its flows, gets no new ones.
    Drain,
    /// Gets nothing; its flows move.
    Down,
}

/// One backend of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    pub addr: IpAddr,
    /// 0 = the port the client connected to.
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
}

impl BackendSpec {
    /// A backend taking new flows at weight 1, on the port the client connected to.
    pub fn up(addr: IpAddr) -> Self {
        Self {
            addr,
            port: 0,
            weight: 1,
            state: BackendState::Up,
        }
    }
}

/// One service: VIP, port (0 = every port), protocol and its backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub forwarding: Forwarding,
    /// NAT source addresses, 1..=`MAX_SNAT_ADDRS` (required for NAT but for a
    /// node-local VIP, ignored for DSR). Each adds a port range per backend.
    pub snat: Vec<IpAddr>,
    pub on_no_backend: NoBackend,
    pub backends: Vec<BackendSpec>,
    /// This node does not hold the VIP now (its VRRP instance is not master). Only
    /// DSR services heed it: their new flows here are a backend's (`VIP_F_STANDBY`).
    pub standby: bool,
    /// How long its flows live after their last packet, by state.
    pub timeouts: FlowTimeouts,
}

impl ServiceSpec {
    /// A node-local VIP (a loopback address): served to this node's own sockets by
    /// the socket programs, never by the XDP program.
    pub fn node_local(&self) -> bool {
        self.vip.is_loopback()
    }
}

/// Whose sockets the socket programs balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketScope {
    /// Sockets of the network namespace the data plane is loaded in (the node's).
    ThisNamespace,
    /// Sockets of every network namespace the attached cgroup's processes use.
    Every,
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, else generic.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode.
    Generic,
}
