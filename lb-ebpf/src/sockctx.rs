//! The one accessor for `struct bpf_sock_addr`, the context of the socket programs:
//! the verifier allows only 4-byte loads and stores of its address and port fields,
//! so every access is a volatile `u32` (the compiler may neither merge two stores
//! into one 8-byte store nor split a load). `unsafe` for the socket programs lives
//! here only.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_set_retval},
    programs::SockAddrContext,
};

/// A socket program's view of the syscall's address.
pub struct SockAddr<'a>(&'a SockAddrContext);

impl<'a> SockAddr<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a SockAddrContext) -> Self {
        Self(ctx)
    }

    /// IP protocol of the socket (`IPPROTO_TCP`, `IPPROTO_UDP`, ...).
    #[inline(always)]
    pub fn protocol(&self) -> u32 {
        // SAFETY: `sock_addr` is the context pointer the kernel passed this program;
        // `protocol` is a readable 4-byte field.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.sock_addr).protocol) }
    }

    /// The IPv4 address of the call (destination of connect/sendmsg, peer for
    /// getpeername, source of a received datagram), as in the packet.
    #[inline(always)]
    pub fn ip4(&self) -> u32 {
        // SAFETY: as in `protocol`; a 4-byte load of `user_ip4`.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.sock_addr).user_ip4) }
    }

    #[inline(always)]
    pub fn set_ip4(&self, v: u32) {
        // SAFETY: `user_ip4` is writable with a 4-byte store in every hook used here.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0.sock_addr).user_ip4, v) }
    }

    /// The IPv6 address of the call, word by word.
    #[inline(always)]
    pub fn ip6(&self) -> [u32; 4] {
        // SAFETY: four 4-byte loads inside `user_ip6`.
        unsafe {
            let p = &raw const (*self.0.sock_addr).user_ip6;
            [
                core::ptr::read_volatile(p.cast::<u32>()),
                core::ptr::read_volatile(p.cast::<u32>().add(1)),
                core::ptr::read_volatile(p.cast::<u32>().add(2)),
                core::ptr::read_volatile(p.cast::<u32>().add(3)),
            ]
        }
    }

    #[inline(always)]
    pub fn set_ip6(&self, v: &[u32; 4]) {
        // SAFETY: four 4-byte stores inside `user_ip6`, writable in every hook used.
        unsafe {
            let p = (&raw mut (*self.0.sock_addr).user_ip6).cast::<u32>();
            core::ptr::write_volatile(p, v[0]);
            core::ptr::write_volatile(p.add(1), v[1]);
            core::ptr::write_volatile(p.add(2), v[2]);
            core::ptr::write_volatile(p.add(3), v[3]);
        }
    }

    /// The port of the call, network order (the field holds it in its low half).
    #[inline(always)]
    pub fn port(&self) -> u16 {
        // SAFETY: a 4-byte load of `user_port`.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.sock_addr).user_port) as u16 }
    }

    #[inline(always)]
    pub fn set_port(&self, port: u16) {
        // SAFETY: a 4-byte store of `user_port`.
        unsafe {
            core::ptr::write_volatile(&raw mut (*self.0.sock_addr).user_port, u32::from(port));
        }
    }

    /// The socket's cookie (what sock_diag reports as `idiag_cookie`).
    #[inline(always)]
    pub fn cookie(&self) -> u64 {
        // SAFETY: helper call on this program's own context.
        unsafe { bpf_get_socket_cookie(self.0.as_ptr()) }
    }

    /// Cookie of the socket's network namespace.
    #[inline(always)]
    pub fn netns_cookie(&self) -> u64 {
        // SAFETY: helper call on this program's own context.
        unsafe { bpf_get_netns_cookie(self.0.as_ptr()) }
    }

    /// Makes the syscall fail with `-errno` when the program returns 0 (reject).
    #[inline(always)]
    pub fn fail_with(&self, errno: i32) {
        // SAFETY: plain helper call; only the syscall's return value changes.
        unsafe { bpf_set_retval(-errno) };
    }
}
