//! Adding and removing addresses with rtnetlink (RTM_NEWADDR / RTM_DELADDR), no
//! `ip` shell-outs. One request, one acknowledgement; "already there" on add and
//! "not there" on delete count as done.

use std::{
    io::{self, Read as _},
    net::IpAddr,
};

use socket2::{Domain, Protocol, Socket, Type};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// The address is usable at once (no duplicate address detection).
const IFA_F_NODAD: u8 = 0x02;
const RT_SCOPE_UNIVERSE: u8 = 0;

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn request(kind: u16, flags: u16, ifindex: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, bytes): (u8, Vec<u8>) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let mut m = vec![0u8; 16];
    // ifaddrmsg
    m.extend_from_slice(&[
        family,
        prefix,
        if addr.is_ipv6() { IFA_F_NODAD } else { 0 },
        RT_SCOPE_UNIVERSE,
    ]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    attr(&mut m, IFA_LOCAL, &bytes);
    attr(&mut m, IFA_ADDRESS, &bytes);
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    m
}

fn exchange(msg: &[u8]) -> io::Result<i32> {
    let s = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW.cloexec(),
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    // Unaddressed netlink messages go to the kernel.
    s.send(msg)?;
    let mut reply = [0u8; 4096];
    let n = (&s).read(&mut reply)?;
    let reply = &reply[..n];
    if reply.len() < 20 || u16::from_ne_bytes([reply[4], reply[5]]) != NLMSG_ERROR {
        return Err(io::Error::other("unexpected rtnetlink reply"));
    }
    Ok(i32::from_ne_bytes([
        reply[16], reply[17], reply[18], reply[19],
    ]))
}

/// Adds `addr/prefix` to interface `ifindex` (already there: fine).
pub fn add(ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    match exchange(&request(
        RTM_NEWADDR,
        NLM_F_CREATE | NLM_F_REPLACE,
        ifindex,
        addr,
        prefix,
    ))? {
        0 => Ok(()),
        e if -e == libc::EEXIST => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Removes `addr/prefix` from interface `ifindex` (not there: fine).
pub fn remove(ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    match exchange(&request(RTM_DELADDR, 0, ifindex, addr, prefix))? {
        0 => Ok(()),
        e if -e == libc::EADDRNOTAVAIL || -e == libc::ENOENT || -e == libc::ESRCH => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}
