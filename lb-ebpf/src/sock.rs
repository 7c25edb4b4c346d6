//! Socket-level balancing: cgroup sock_addr programs for this node's own sockets.
//!
//! A process on an LB node that connects to a VIP never reaches the XDP program (its
//! packets leave the node, or, on the VIP's holder, stay in it). These hooks make
//! the choice at the syscall instead, over the same services, rings and backend
//! states as the XDP program:
//! - connect (TCP, connected UDP) and sendmsg (unconnected UDP): a VIP destination
//!   becomes a backend's address and port, chosen by the service's live Maglev ring
//!   from the socket's cookie (one socket, one backend). No backend up: the call
//!   fails with ECONNREFUSED, as the XDP path answers with a reset.
//! - getpeername and recvmsg (UDP source): the backend is shown as the VIP again, from
//!   `SOCK_REVNAT`, which the agent also reads to close sockets whose backend went
//!   down.
//!
//! Only sockets of one network namespace are balanced (`LB_NETNS_COOKIE`, the
//! agent's), unless the agent was told to balance every namespace (cookie 0). IPv4
//! VIPs are found behind IPv4-mapped IPv6 addresses too (dual-stack sockets).
//!
//! These run in process context and may be preempted: no per-CPU scratch, only the
//! stack.

use aya_ebpf::{bindings::BPF_ANY, macros::cgroup_sock_addr, programs::SockAddrContext};
use lb_common::{
    ADDR_F_SOCK_ANY_PORT, ADDR_F_SOCK_PORTS, AddrKey, BACKEND_UP, Backend, Counter, FAMILY_V4,
    FAMILY_V6, FlowKey, NO_BACKEND, PROTO_TCP, PROTO_UDP, SockKey, SockOrigin, VipKey, VipMeta,
    hash::flow_hash,
};

use crate::{
    maps::{self, BACKEND_STATS, RINGS, SOCK_REVNAT, VIP_STATS, account_flow, count},
    packet::htonl,
    sockctx::SockAddr,
};

/// Return values of a sock_addr program.
const ALLOW: i32 = 1;
const REJECT: i32 = 0;
const ECONNREFUSED: i32 = 111;

/// Word 2 of an IPv4-mapped IPv6 address (::ffff:a.b.c.d), as stored.
const V4_MAPPED_WORD: u32 = htonl(0x0000_ffff);

#[cgroup_sock_addr(connect4)]
pub fn lb_sock_connect4(ctx: SockAddrContext) -> i32 {
    balance(&SockAddr::new(&ctx), FAMILY_V4)
}

#[cgroup_sock_addr(connect6)]
pub fn lb_sock_connect6(ctx: SockAddrContext) -> i32 {
    balance(&SockAddr::new(&ctx), FAMILY_V6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn lb_sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    balance(&SockAddr::new(&ctx), FAMILY_V4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn lb_sock_sendmsg6(ctx: SockAddrContext) -> i32 {
    balance(&SockAddr::new(&ctx), FAMILY_V6)
}

#[cgroup_sock_addr(recvmsg4)]
pub fn lb_sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    show_vip(&SockAddr::new(&ctx), FAMILY_V4, PROTO_UDP);
    ALLOW
}

#[cgroup_sock_addr(recvmsg6)]
pub fn lb_sock_recvmsg6(ctx: SockAddrContext) -> i32 {
    show_vip(&SockAddr::new(&ctx), FAMILY_V6, PROTO_UDP);
    ALLOW
}

#[cgroup_sock_addr(getpeername4)]
pub fn lb_sock_getpeername4(ctx: SockAddrContext) -> i32 {
    let sa = SockAddr::new(&ctx);
    if let Some(proto) = transport(&sa) {
        show_vip(&sa, FAMILY_V4, proto);
    }
    ALLOW
}

#[cgroup_sock_addr(getpeername6)]
pub fn lb_sock_getpeername6(ctx: SockAddrContext) -> i32 {
    let sa = SockAddr::new(&ctx);
    if let Some(proto) = transport(&sa) {
        show_vip(&sa, FAMILY_V6, proto);
    }
    ALLOW
}

/// TCP or UDP, as `PROTO_*`.
#[inline(always)]
fn transport(sa: &SockAddr) -> Option<u8> {
    match sa.protocol() {
        p if p == u32::from(PROTO_TCP) => Some(PROTO_TCP),
        p if p == u32::from(PROTO_UDP) => Some(PROTO_UDP),
        _ => None,
    }
}

/// The call's address as a map address: `(words, family, mapped)`, an IPv4-mapped
/// IPv6 address as IPv4 (`mapped` set).
#[inline(always)]
fn address(sa: &SockAddr, family: u8) -> ([u32; 4], u8, bool) {
    if family == FAMILY_V4 {
        return ([sa.ip4(), 0, 0, 0], FAMILY_V4, false);
    }
    let a = sa.ip6();
    if a[0] == 0 && a[1] == 0 && a[2] == V4_MAPPED_WORD {
        return ([a[3], 0, 0, 0], FAMILY_V4, true);
    }
    (a, FAMILY_V6, false)
}

/// Writes `addr` (of `family`, mapped back if the call used a mapped address).
#[inline(always)]
fn set_address(sa: &SockAddr, hook_family: u8, addr: &[u32; 4], mapped: bool) {
    if hook_family == FAMILY_V4 {
        sa.set_ip4(addr[0]);
    } else if mapped {
        sa.set_ip6(&[0, 0, V4_MAPPED_WORD, addr[0]]);
    } else {
        sa.set_ip6(addr);
    }
}

/// The service behind `addr:port` for `proto`, if `addr` is one of our VIPs.
#[inline(always)]
fn service(addr: &[u32; 4], family: u8, port: u16, proto: u8, out: &mut VipMeta) -> bool {
    let flags = maps::addr_flags(&AddrKey {
        addr: *addr,
        family: u32::from(family),
    });
    if flags & (ADDR_F_SOCK_PORTS | ADDR_F_SOCK_ANY_PORT) == 0 {
        return false;
    }
    let mut vk = VipKey {
        addr: *addr,
        port,
        proto,
        family,
    };
    if flags & ADDR_F_SOCK_PORTS != 0 && maps::vip(&vk, out) {
        return true;
    }
    if flags & ADDR_F_SOCK_ANY_PORT != 0 {
        vk.port = 0;
        return maps::vip(&vk, out);
    }
    false
}

/// connect/sendmsg: a VIP destination becomes a backend (see the module doc).
#[inline(always)]
fn balance(sa: &SockAddr, hook_family: u8) -> i32 {
    let Some(proto) = transport(sa) else {
        return ALLOW;
    };
    let (addr, family, mapped) = address(sa, hook_family);
    let port = sa.port();
    let mut vip = VipMeta::default();
    if !service(&addr, family, port, proto, &mut vip) {
        return ALLOW;
    }
    let netns = maps::netns_cookie();
    if netns != 0 && sa.netns_cookie() != netns {
        return ALLOW;
    }
    let cookie = sa.cookie();
    let mut backend = Backend::default();
    let Some(slot) = choose(&vip, &addr, family, port, proto, cookie, &mut backend) else {
        count(Counter::SockNoBackend);
        sa.fail_with(ECONNREFUSED);
        return REJECT;
    };
    let bport = if backend.port == 0 {
        port
    } else {
        backend.port
    };
    let key = SockKey {
        cookie,
        addr: backend.addr,
        port: bport,
        family,
        proto,
        _pad: 0,
    };
    // sendmsg runs for every datagram: write the entry only when it is missing.
    if SOCK_REVNAT.get_ptr(key).is_none() {
        let origin = SockOrigin {
            vip: addr,
            port,
            family,
            _pad: 0,
            vip_id: vip.id,
            backend: slot,
            _pad2: 0,
        };
        // Should the insert fail, the socket works; only its peer shows the backend.
        if let Err(e) = SOCK_REVNAT.insert(key, origin, u64::from(BPF_ANY)) {
            crate::log::insert_failed(crate::log::Table::SockRevnat, e);
        }
        account_flow(&VIP_STATS, vip.id);
        account_flow(&BACKEND_STATS, slot);
        count(Counter::SockBalanced);
    }
    set_address(sa, hook_family, &backend.addr, mapped);
    sa.set_port(bport);
    ALLOW
}

/// The backend the service's live ring gives this socket, if it is up: its slot,
/// the backend in `out`.
#[inline(always)]
fn choose(
    vip: &VipMeta,
    addr: &[u32; 4],
    family: u8,
    port: u16,
    proto: u8,
    cookie: u64,
    out: &mut Backend,
) -> Option<u32> {
    let size = maps::ring_size();
    if size == 0 || vip.id >= maps::max_vips() {
        return None;
    }
    // The socket stands in for the client's address and port: one socket, one
    // position on the ring.
    let flow = FlowKey {
        src: [cookie as u32, (cookie >> 32) as u32, 0, 0],
        dst: *addr,
        sport: 0,
        dport: port,
        proto,
        family,
        _pad: [0; 2],
    };
    let ring = vip.id * 2 + (vip.ring & 1);
    let index = ring * size + flow_hash(&flow) % size;
    let slot = RINGS.get_ptr(index).map(maps::copy)?;
    if slot == NO_BACKEND || !maps::backend(slot, out) || out.state != BACKEND_UP {
        return None;
    }
    Some(slot)
}

/// getpeername/recvmsg: a backend this socket was sent to is shown as its VIP.
#[inline(always)]
fn show_vip(sa: &SockAddr, hook_family: u8, proto: u8) {
    let (addr, family, mapped) = address(sa, hook_family);
    let key = SockKey {
        cookie: sa.cookie(),
        addr,
        port: sa.port(),
        family,
        proto,
        _pad: 0,
    };
    if let Some(o) = SOCK_REVNAT.get_ptr(key).map(maps::copy) {
        set_address(sa, hook_family, &o.vip, mapped);
        sa.set_port(o.port);
    }
}
