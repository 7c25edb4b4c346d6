//! lb-agent: loads the XDP data plane, programs its maps, and (later) runs health
//! checks, VRRP and the operator interfaces.

pub mod config;
pub mod dataplane;
pub mod health;
pub mod lab;
