//! Which backends are on this node: an address of this network namespace (any
//! interface, loopback included), read with getifaddrs whenever services are
//! applied and every refresh, so an address added later is noticed.

use std::{collections::BTreeSet, net::IpAddr};

use super::DataplaneError;

/// Every address of the calling thread's network namespace.
pub fn node_addresses() -> Result<BTreeSet<IpAddr>, DataplaneError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(DataplaneError::Addresses {
            source: std::io::Error::last_os_error(),
        });
    }
    let mut out = BTreeSet::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed;
        // `ifa_addr` is null or points at a sockaddr of the family it names, which
        // is read as that family's struct.
        unsafe {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*addr.cast::<libc::sockaddr_in>();
                        out.insert(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*addr.cast::<libc::sockaddr_in6>();
                        out.insert(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_an_address_of_this_node() {
        let addrs = node_addresses().expect("getifaddrs");
        assert!(
            addrs.contains(&"127.0.0.1".parse::<IpAddr>().expect("literal")),
            "{addrs:?}"
        );
    }
}
