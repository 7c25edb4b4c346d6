//! Labs of network namespaces: the hosts of the demo and of the integration tests.
//! Namespace and interface names carry the process id and a counter, so labs run in
//! parallel; guards delete what they made on drop, also on panic.

mod netns;

pub use netns::{LabError, Netns, run_cmd, unique_name};
