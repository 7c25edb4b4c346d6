//! What VRRP needs to know of an interface: index, MAC, addresses, whether it is up
//! (from `getifaddrs`, so it answers for the caller's network namespace).

use std::{
    ffi::CStr,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// An interface as `getifaddrs` sees it.
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
    let mut out = Interface {
        name: name.to_string(),
        ..Interface::default()
    };
    let mut found = false;
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until
        // freeifaddrs; its name is a NUL-terminated string and its address (when not
        // null) a sockaddr of the family it states, of that family's size.
        let (ifa, ifname) = unsafe { (&*cur, CStr::from_ptr((*cur).ifa_name)) };
        cur = ifa.ifa_next;
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        found = true;
        out.up = ifa.ifa_flags & (libc::IFF_UP as u32) != 0
            && ifa.ifa_flags & (libc::IFF_RUNNING as u32) != 0;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: see above: the family says which sockaddr this is.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out.addrs
                        .push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                libc::AF_PACKET => {
                    let sll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    out.index = sll.sll_ifindex as u32;
                    if sll.sll_halen == 6 {
                        out.mac.copy_from_slice(&sll.sll_addr[..6]);
                    }
                }
                _ => {}
            }
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    if !found || out.index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name} not found"),
        ));
    }
    Ok(out)
}
