//! What VRRP needs to know of an interface: index, MAC, addresses, whether it is up
//! (from rtnetlink, so it answers for the caller's network namespace).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::netlink::route;

/// An interface as rtnetlink describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub up: bool,
    pub addrs: Vec<IpAddr>,
}

impl Interface {
    /// The first IPv4 address not in `exclude` (the VIPs it may hold).
    pub fn primary_v4(&self, exclude: &[IpAddr]) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V4(v) if !exclude.contains(a) => Some(*v),
            _ => None,
        })
    }

    /// Its IPv6 link-local address (VRRP v3 over IPv6 sends from it).
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V6(v) if v.is_unicast_link_local() => Some(*v),
            _ => None,
        })
    }
}

/// Looks up `name` in the current network namespace.
pub fn lookup(name: &str) -> io::Result<Interface> {
    let link = route::link(name)?;
    let addrs = route::addresses()?
        .into_iter()
        .filter(|a| a.index == link.index)
        .map(|a| a.addr)
        .collect();
    Ok(Interface {
        name: link.name,
        index: link.index,
        mac: link.mac.unwrap_or_default(),
        up: link.up,
        addrs,
    })
}
