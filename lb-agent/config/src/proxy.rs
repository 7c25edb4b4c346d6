//! What a routed VIP's proxy does, as config values: what it routes by, and which
//! PROXY protocol header starts each connection to a backend (the agent's
//! `proxy/serve.rs` and `proxy/proxy_header.rs` do it).

/// Which header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Text: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    V1,
    /// Binary, with TLVs.
    V2,
}

/// What a routed listener looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteBy {
    /// The TLS ClientHello's server name.
    Sni,
    /// The HTTP/1.x request's host.
    Host,
}
