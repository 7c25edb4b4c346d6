//! Labs of network namespaces: the hosts of the demo and of the integration tests.
//! Namespace and interface names carry the process id and a counter, so labs run in
//! parallel; guards delete what they made on drop, also on panic.

mod agent;
mod apiserver;
mod client;
mod netns;
mod peer;
mod server;
mod topology;

pub use agent::{AgentNode, LAB_API};
pub use apiserver::{ApiServer, https_get, self_signed};
pub use client::{Tally, answer, connections, http_get, requests};
pub use netns::{LabError, Netns, NetnsEntry, run_cmd, unique_name};
pub use peer::PeerPass;
pub use server::{TcpServer, UdpServer};
pub use topology::{Host, Lan, lan_v4, lan_v6};
