//! Telling the LAN where the addresses are now: gratuitous ARP (IPv4) from the
//! interface's MAC, unsolicited neighbour advertisements with the override flag
//! (IPv6) to all nodes. Sent on the interface that carries the addresses.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::iface::Interface;

const ETH_P_ARP: u16 = 0x0806;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A gratuitous ARP request for `ip` from `mac` (sender and target both `ip`).
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited NA for `ip` (override set, solicited not) with our link-layer
/// address; the kernel fills in the ICMPv6 checksum.
pub fn na_message(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[136, 0, 0, 0, 0x20, 0, 0, 0]);
    m.extend_from_slice(&ip.octets());
    m.extend_from_slice(&[2, 1]);
    m.extend_from_slice(&mac);
    m
}

fn send_garp(iface: &Interface, ip: Ipv4Addr) -> io::Result<()> {
    let s = Socket::new(
        Domain::PACKET,
        Type::RAW.cloexec(),
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )?;
    let frame = garp_frame(iface.mac, ip);
    // SAFETY: a zeroed sockaddr_ll filled field by field; `sll` outlives the call,
    // and the length given is its size.
    let rc = unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = iface.index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::from_ref::<libc::sockaddr_ll>(&sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn send_na(iface: &Interface, ip: Ipv6Addr) -> io::Result<()> {
    let s = Socket::new(Domain::IPV6, Type::RAW.cloexec(), Some(Protocol::ICMPV6))?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    s.set_multicast_hops_v6(255)?;
    s.set_multicast_if_v6(iface.index)?;
    if let Some(ll) = iface.link_local() {
        s.bind(&SockAddr::from(SocketAddrV6::new(ll, 0, 0, iface.index)))?;
    }
    let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, iface.index));
    s.send_to(&na_message(iface.mac, ip), &to)?;
    Ok(())
}

/// One announcement of every address in `addrs`.
pub fn announce(iface: &Interface, addrs: &[IpAddr]) -> io::Result<()> {
    for a in addrs {
        match a {
            IpAddr::V4(v) => send_garp(iface, *v)?,
            IpAddr::V6(v) => send_na(iface, *v)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_and_na_bytes() {
        let mac = [0x02, 0, 0, 0, 0, 0x01];
        let f = garp_frame(mac, Ipv4Addr::new(198, 18, 1, 10));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(
            &f[14..22],
            &[0, 1, 8, 0, 6, 4, 0, 1],
            "ARP request, Ethernet/IPv4"
        );
        assert_eq!(&f[28..32], &[198, 18, 1, 10], "sender IP");
        assert_eq!(&f[38..42], &[198, 18, 1, 10], "target IP");
        let na = na_message(mac, "fd00::10".parse().expect("ip"));
        assert_eq!(na.len(), 32);
        assert_eq!(na[0], 136, "neighbour advertisement");
        assert_eq!(na[4], 0x20, "override, not solicited, not router");
        assert_eq!(&na[24..26], &[2, 1], "target link-layer address option");
        assert_eq!(&na[26..32], &mac);
    }
}
