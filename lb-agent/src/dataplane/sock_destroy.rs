//! Closing this node's sockets whose backend went down: the socket programs sent
//! them to a backend at connect, so a backend's failure would leave them hanging
//! until TCP gives up. sock_diag lists the namespace's TCP and UDP sockets connected
//! to the backend; those whose cookie `SOCK_REVNAT` holds for that backend (sockets
//! balanced through a VIP, not ones that dialled the backend themselves) are closed
//! with SOCK_DESTROY, and their owners see ECONNABORTED and reconnect.

use std::net::IpAddr;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use lb_common::{MAP_SOCK_REVNAT, SockKey, SockOrigin, maps::addr::to_words};
use netlink_packet_sock_diag::{
    SockDiagDestroy, SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::{DataplaneError, PinLayout, Protocol, services::map_err};
use crate::netlink::{self, Kind};

/// A backend whose balanced sockets are to be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownBackend {
    pub addr: IpAddr,
    /// The port sockets were sent to; 0: any (a backend of an every-port VIP).
    pub port: u16,
    pub protocol: Protocol,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> DataplaneError {
    move |source| DataplaneError::Io { what, source }
}

/// Closes every socket of this namespace the socket programs sent to one of
/// `down`; returns how many were closed.
pub fn close_balanced_sockets(
    pins: &PinLayout,
    down: &[DownBackend],
) -> Result<usize, DataplaneError> {
    if down.is_empty() {
        return Ok(0);
    }
    let path = pins.map(MAP_SOCK_REVNAT);
    let data = MapData::from_pin(&path).map_err(|e| DataplaneError::PinnedMap {
        path: path.clone(),
        why: format!("cannot open it: {e}"),
    })?;
    let map = Map::from_map_data(data).map_err(map_err(MAP_SOCK_REVNAT, "open"))?;
    let revnat: BpfHashMap<MapData, SockKey, SockOrigin> = map
        .try_into()
        .map_err(map_err(MAP_SOCK_REVNAT, "type check"))?;
    let mut closed = 0;
    for (proto, protocol) in [(IPPROTO_TCP, Protocol::Tcp), (IPPROTO_UDP, Protocol::Udp)] {
        let wanted: Vec<&DownBackend> = down.iter().filter(|d| d.protocol == protocol).collect();
        if wanted.is_empty() {
            continue;
        }
        for family in [AF_INET, AF_INET6] {
            for id in dump(family, proto)? {
                let peer = unmapped(id.destination_address);
                let hit = wanted
                    .iter()
                    .any(|d| d.addr == peer && (d.port == 0 || d.port == id.destination_port));
                if !hit || !balanced(&revnat, &id, peer, protocol) {
                    continue;
                }
                if destroy(family, proto, id)? {
                    closed += 1;
                }
            }
        }
    }
    Ok(closed)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Was this socket sent to `peer` by the socket programs?
fn balanced(
    revnat: &BpfHashMap<MapData, SockKey, SockOrigin>,
    id: &SocketId,
    peer: IpAddr,
    protocol: Protocol,
) -> bool {
    let c = id.cookie;
    let cookie = u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        | u64::from(u32::from_ne_bytes([c[4], c[5], c[6], c[7]])) << 32;
    let (addr, family) = to_words(peer);
    let key = SockKey {
        cookie,
        addr,
        port: id.destination_port.to_be(),
        family,
        proto: protocol.number(),
        _pad: 0,
    };
    revnat.get(&key, 0).is_ok()
}

/// The ids of every socket of `family`/`proto` in this namespace.
fn dump(family: u8, proto: u8) -> Result<Vec<SocketId>, DataplaneError> {
    let reply: Vec<SockDiagMessage> = netlink::request(
        NETLINK_SOCK_DIAG,
        Kind::Dump,
        0,
        SockDiagMessage::InetRequest(request(family, proto, blank(family))),
    )
    .map_err(io("a sock_diag dump"))?;
    Ok(reply
        .into_iter()
        .filter_map(|m| match m {
            SockDiagMessage::InetResponse(r) => Some(r.header.socket_id),
            _ => None,
        })
        .collect())
}

/// Closes one socket; false if it was already gone.
fn destroy(family: u8, proto: u8, id: SocketId) -> Result<bool, DataplaneError> {
    match netlink::request::<_, SockDiagDestroy>(
        NETLINK_SOCK_DIAG,
        Kind::Do,
        0,
        SockDiagDestroy::new(SockDiagMessage::InetRequest(request(family, proto, id))),
    ) {
        Ok(_) => Ok(true),
        // Gone in the meantime (closed by its owner): nothing to do.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(source) => Err(DataplaneError::Io {
            what: "SOCK_DESTROY (the kernel needs CONFIG_INET_DIAG_DESTROY)",
            source,
        }),
    }
}

fn blank(family: u8) -> SocketId {
    if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    }
}

fn request(family: u8, proto: u8, socket_id: SocketId) -> InetRequest {
    InetRequest {
        family,
        protocol: proto,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id,
    }
}
