//! VRRP's sockets on one interface: raw IP protocol 112, TTL / hop limit 255. One
//! socket sends, bound to the instance's source address (which enters the v3
//! checksum, so the kernel must not pick another); one receives everything VRRP on
//! the interface (the multicast group joined), with the TTL of each packet.

use std::{
    io::{self, Read as _},
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
};

use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

use super::{iface::Interface, packet::IPPROTO_VRRP};

/// VRRP's IPv4 multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// VRRP's IPv6 multicast group.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// `IPV6_HOPLIMIT` control message type.
const IPV6_HOPLIMIT: i32 = 52;

/// One received VRRP packet.
#[derive(Debug)]
pub struct Received {
    pub src: IpAddr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// The sockets of one instance.
pub struct Endpoint {
    send: AsyncFd<Socket>,
    recv: AsyncFd<Socket>,
    v6: bool,
    scope: u32,
}

fn raw(v6: bool) -> io::Result<Socket> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::from(i32::from(IPPROTO_VRRP)))
    } else {
        (Domain::IPV4, Protocol::from(i32::from(IPPROTO_VRRP)))
    };
    let s = Socket::new(domain, Type::RAW.nonblocking().cloexec(), Some(proto))?;
    Ok(s)
}

impl Endpoint {
    /// Opens the sockets on `iface`, sending from `src`.
    pub fn open(iface: &Interface, src: IpAddr) -> io::Result<Self> {
        let v6 = src.is_ipv6();
        let name = iface.name.as_bytes();
        let send = raw(v6)?;
        let recv = raw(v6)?;
        for s in [&send, &recv] {
            s.bind_device(Some(name))?;
        }
        if v6 {
            for s in [&send, &recv] {
                s.set_multicast_hops_v6(255)?;
                s.set_unicast_hops_v6(255)?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(iface.index)?;
            }
            let IpAddr::V6(a) = src else {
                return Err(io::Error::other("not an IPv6 source"));
            };
            let scope = if a.is_unicast_link_local() {
                iface.index
            } else {
                0
            };
            send.bind(&SockAddr::from(SocketAddrV6::new(a, 0, 0, scope)))?;
            recv.join_multicast_v6(&GROUP_V6, iface.index)?;
            recv.set_recv_hoplimit_v6(true)?;
        } else {
            let IpAddr::V4(src4) = src else {
                return Err(io::Error::other("not an IPv4 source"));
            };
            for s in [&send, &recv] {
                s.set_multicast_ttl_v4(255)?;
                s.set_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
                s.set_multicast_if_v4(&src4)?;
            }
            send.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
            recv.join_multicast_v4_n(
                &GROUP_V4,
                &socket2::InterfaceIndexOrAddress::Index(iface.index),
            )?;
        }
        // The sending socket would also queue unicast adverts to `src`; nobody reads
        // it, so keep that queue tiny.
        send.set_recv_buffer_size(1)?;
        Ok(Self {
            send: register(send, Interest::WRITABLE)?,
            recv: register(recv, Interest::READABLE)?,
            v6,
            scope: iface.index,
        })
    }

    /// Sends one VRRP message to `dst`.
    pub async fn send(&self, msg: &[u8], dst: IpAddr) -> io::Result<()> {
        let to = match dst {
            IpAddr::V6(a) if a.is_multicast() || a.is_unicast_link_local() => {
                SockAddr::from(SocketAddrV6::new(a, 0, 0, self.scope))
            }
            a => SockAddr::from(SocketAddr::new(a, 0)),
        };
        loop {
            let mut guard = self.send.writable().await?;
            match guard.try_io(|s| s.get_ref().send_to(msg, &to)) {
                Ok(r) => return r.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next VRRP packet received on the interface.
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.recv.readable().await?;
            let r = guard.try_io(|s| {
                if self.v6 {
                    recv_v6(s.get_ref())
                } else {
                    recv_v4(s.get_ref())
                }
            });
            match r {
                Ok(Ok(Some(p))) => return Ok(p),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

fn register(s: Socket, interest: Interest) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the `Socket` owns its descriptor, which stays open and the same until
    // the `AsyncFd` (its only owner from here) drops it.
    unsafe { AsyncFd::register_with_interest(s, interest) }.map_err(|e| e.into_parts().1)
}

/// IPv4 raw sockets deliver the IP header: TTL and source come from it.
fn recv_v4(s: &Socket) -> io::Result<Option<Received>> {
    let mut buf = [0u8; 2048];
    let n = (&*s).read(&mut buf)?;
    let b = &buf[..n];
    if b.len() < 20 || b[0] >> 4 != 4 {
        return Ok(None);
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([b[2], b[3]])).min(b.len());
    if ihl < 20 || total < ihl {
        return Ok(None);
    }
    Ok(Some(Received {
        src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
        ttl: b[8],
        payload: b[ihl..total].to_vec(),
    }))
}

/// IPv6 raw sockets deliver the payload; the hop limit comes as a control message.
fn recv_v6(s: &Socket) -> io::Result<Option<Received>> {
    let mut data = [MaybeUninit::<u8>::uninit(); 2048];
    let mut control = [MaybeUninit::<u8>::uninit(); 64];
    // Any IPv6 address: recvmsg overwrites it with the sender (same size).
    let mut from = SockAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
    let (n, clen) = {
        let mut bufs = [MaybeUninitSlice::new(&mut data)];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut from)
            .with_buffers(&mut bufs)
            .with_control(&mut control);
        let n = s.recvmsg(&mut msg, 0)?;
        (n, msg.control_len())
    };
    // SAFETY: recvmsg initialised the first `n` data bytes and `clen` control bytes.
    let (payload, cmsgs) = unsafe {
        (
            std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), n.min(data.len())),
            std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), clen.min(control.len())),
        )
    };
    let Some(src) = from.as_socket().map(|a| a.ip()) else {
        return Ok(None);
    };
    Ok(Some(Received {
        src,
        ttl: hop_limit(cmsgs).unwrap_or(0),
        payload: payload.to_vec(),
    }))
}

/// The `IPV6_HOPLIMIT` value among control messages (`cmsghdr`: len as usize, level
/// and type as i32, data aligned to usize).
fn hop_limit(mut c: &[u8]) -> Option<u8> {
    const W: usize = size_of::<usize>();
    while c.len() >= W + 8 {
        let len = usize::from_ne_bytes(c[..W].try_into().ok()?);
        let level = i32::from_ne_bytes(c[W..W + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(c[W + 4..W + 8].try_into().ok()?);
        if len < W + 8 || len > c.len() {
            return None;
        }
        if level == libc::IPPROTO_IPV6 && kind == IPV6_HOPLIMIT && len >= W + 12 {
            let v = i32::from_ne_bytes(c[W + 8..W + 12].try_into().ok()?);
            return u8::try_from(v).ok();
        }
        let step = len.div_ceil(W) * W;
        c = c.get(step..)?;
    }
    None
}
