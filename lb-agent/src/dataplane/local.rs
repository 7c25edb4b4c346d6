//! Which backends are on this node: an address of this network namespace (any
//! interface, loopback included), read from rtnetlink whenever services are
//! applied and every refresh, so an address added later is noticed.

use std::{collections::BTreeSet, net::IpAddr};

use super::DataplaneError;
use crate::netlink::route;

/// Every address of the calling thread's network namespace.
pub fn node_addresses() -> Result<BTreeSet<IpAddr>, DataplaneError> {
    Ok(route::addresses()
        .map_err(|source| DataplaneError::Addresses { source })?
        .into_iter()
        .map(|a| a.addr)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_an_address_of_this_node() {
        let addrs = node_addresses().expect("addresses");
        assert!(
            addrs.contains(&"127.0.0.1".parse::<IpAddr>().expect("literal")),
            "{addrs:?}"
        );
    }
}
