//! Sending raw Ethernet frames out of an interface (AF_PACKET), for benchmarks that
//! need real traffic on a veth.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// An AF_PACKET socket bound to one interface.
pub struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    /// Opens a raw socket on `ifindex` (in the calling thread's network namespace).
    pub fn bind(ifindex: u32) -> io::Result<Self> {
        // SAFETY: plain socket(2)/bind(2) calls; the fd is owned right away and the
        // sockaddr_ll is a fully initialised local.
        unsafe {
            let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = ifindex as i32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { fd })
        }
    }

    /// Sends one frame; retries when the queue is momentarily full.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is a valid buffer of its length for the duration of the call.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOBUFS) && e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            std::thread::yield_now();
        }
    }
}
