//! Routing by the first bytes of a connection (the homelab front door): the TLS
//! server name of a ClientHello or the host of an HTTP/1.x request picks a backend
//! pool, and the connection to the backend starts with a PROXY protocol header.
//! These are the pieces the proxy path of routed VIPs is built from; each is bounded
//! (size) and never panics on what a client sends.

pub mod client_hello;
pub mod handover;
pub mod http_host;
pub mod names;
pub mod proxy_header;
pub mod serve;
pub mod splice;
