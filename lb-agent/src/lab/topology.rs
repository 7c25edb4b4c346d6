//! A LAN in namespaces: one "switch" namespace holding a Linux bridge, every host a
//! namespace with `eth0` plugged into it. VRRP multicast and gratuitous ARP behave as
//! on a real segment. Addresses: 198.18.1.N/24 and fd00:1b:1::N/64 for host N.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{LabError, Netns};

/// A host on the lab LAN.
#[derive(Debug)]
pub struct Host {
    pub ns: Netns,
    pub index: u8,
    /// Name of the host's switch port (in the switch namespace).
    pub port: String,
}

impl Host {
    pub fn v4(&self) -> IpAddr {
        lan_v4(self.index)
    }

    pub fn v6(&self) -> IpAddr {
        lan_v6(self.index)
    }
}

/// 198.18.1.N
pub fn lan_v4(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, n))
}

/// fd00:1b:1::N
pub fn lan_v6(n: u8) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x1b, 1, 0, 0, 0, 0, u16::from(n)))
}

/// The switch; hosts hang off it. Dropping it (and the hosts) removes everything.
#[derive(Debug)]
pub struct Lan {
    pub switch: Netns,
}

impl Lan {
    pub fn new() -> Result<Self, LabError> {
        let switch = Netns::new("lbsw")?;
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        Ok(Self { switch })
    }

    /// Adds host N: a namespace with `eth0` (both families addressed) on the bridge.
    pub fn host(&self, prefix: &str, index: u8) -> Result<Host, LabError> {
        let ns = Netns::new(prefix)?;
        let port = format!("p{index}");
        ns.veth("eth0", &self.switch, &port)?;
        self.switch
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        // A veth hands the next hop a CHECKSUM_PARTIAL packet whose TCP/UDP checksum
        // field holds only the pseudo-header sum; the kernel finishes it, an XDP
        // program that forwards the bytes cannot. On a wire checksums are complete:
        // make the lab's hosts send them complete.
        ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", lan_v4(index)),
            "dev",
            "eth0",
        ])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/64", lan_v6(index)),
            "dev",
            "eth0",
            "nodad",
        ])?;
        Ok(Host { ns, index, port })
    }
}
