//! Links and addresses (`NETLINK_ROUTE`, with `netlink-packet-route`'s messages): the
//! interface VRRP runs on, the node's own addresses, and the addresses VRRP holds as
//! master. Each answers for the caller's network namespace.

use std::{io, net::IpAddr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkMessage},
};
use netlink_sys::protocols::NETLINK_ROUTE;

use super::{Kind, request};

/// An interface: its index, name, MAC and whether it is up and running.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The Ethernet address (none on links without one, like loopback's zeros).
    pub mac: Option<[u8; 6]>,
    /// Up and running (`IFF_UP` and `IFF_RUNNING`, as `ip link` shows `UP,LOWER_UP`).
    pub up: bool,
}

/// An address of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

fn route(kind: Kind, extra: u16, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    request(NETLINK_ROUTE, kind, extra, msg)
}

/// The link named `name` (`NotFound` if there is none).
pub fn link(name: &str) -> io::Result<Link> {
    let mut ask = LinkMessage::default();
    ask.attributes.push(LinkAttribute::IfName(name.to_string()));
    let reply = route(Kind::Do, 0, RouteNetlinkMessage::GetLink(ask)).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name} not found"),
            )
        } else {
            e
        }
    })?;
    reply
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
            _ => None,
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name} not found"),
            )
        })
}

fn to_link(l: &LinkMessage) -> Link {
    let mut out = Link {
        index: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up | LinkFlags::Running),
        ..Link::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => out.name.clone_from(n),
            LinkAttribute::Address(mac) => {
                if let Ok(mac) = <[u8; 6]>::try_from(mac.as_slice())
                    && mac != [0; 6]
                {
                    out.mac = Some(mac);
                }
            }
            _ => {}
        }
    }
    out
}

/// Every address of every interface, in the kernel's order (an interface's primary
/// address before its secondaries).
pub fn addresses() -> io::Result<Vec<Address>> {
    let reply = route(
        Kind::Dump,
        0,
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )?;
    Ok(reply
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => to_address(a),
            _ => None,
        })
        .collect())
}

fn to_address(a: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on a
    // point-to-point link); IPv6 carries only IFA_ADDRESS.
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let addr = local.or_else(|| {
        a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    Some(Address {
        index: a.header.index,
        addr,
        prefix: a.header.prefix_len,
    })
}

fn address_message(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.header.scope = AddressScope::Universe;
    if addr.is_ipv6() {
        // Usable at once: no duplicate address detection holding it tentative.
        m.header.flags = AddressHeaderFlags::Nodad;
    }
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m
}

/// Adds `addr/prefix` to interface `index` (already there: fine).
pub fn add_address(index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    match route(
        Kind::Do,
        NLM_F_CREATE | NLM_F_REPLACE,
        RouteNetlinkMessage::NewAddress(address_message(index, addr, prefix)),
    ) {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
        _ => Ok(()),
    }
}

/// Removes `addr/prefix` from interface `index` (not there: fine).
pub fn remove_address(index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    match route(
        Kind::Do,
        0,
        RouteNetlinkMessage::DelAddress(address_message(index, addr, prefix)),
    ) {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ESRCH)
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_a_link_with_its_addresses() {
        let lo = link("lo").expect("lo");
        assert!(lo.index > 0, "{lo:?}");
        assert_eq!(lo.name, "lo");
        assert_eq!(lo.mac, None, "loopback's all-zero address is no MAC");
        let addrs = addresses().expect("dump");
        assert!(
            addrs.iter().any(|a| a.index == lo.index
                && a.addr == IpAddr::from([127, 0, 0, 1])
                && a.prefix == 8),
            "{addrs:?}"
        );
    }

    #[test]
    fn a_missing_link_is_not_found_by_name() {
        let e = link("no-such-if0").expect_err("no such link");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such-if0"), "{e}");
    }
}
