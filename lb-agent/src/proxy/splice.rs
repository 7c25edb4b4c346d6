//! Bytes moved from one socket to another inside the kernel: `splice(2)` from the
//! source socket into a pipe, and from the pipe into the destination socket, so a
//! proxied connection's payload is never copied through user space. Each
//! direction owns a pipe (64 KiB, the kernel's default size).
//!
//! `splice`, `pipe2` and `ioctl(FIONREAD)` are the only unsafe code here, each a
//! plain system call on descriptors this module owns or borrows for the call.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd},
};

/// A pipe's two ends, both non-blocking.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// At most this much per `splice` call (the pipe's default capacity).
pub const CHUNK: usize = 64 * 1024;

impl Pipe {
    pub fn new() -> io::Result<Self> {
        let mut fds: [RawFd; 2] = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given, which
        // has room for two; on success both are new and ours to own.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptors were just created by pipe2 and nothing else holds them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { read, write })
    }

    /// The pipe of two descriptors a process was handed (see `handover`).
    pub fn from_fds(read: OwnedFd, write: OwnedFd) -> Self {
        Self { read, write }
    }

    /// Its two descriptors (read, write), to hand to another process.
    pub fn into_fds(self) -> (OwnedFd, OwnedFd) {
        (self.read, self.write)
    }

    /// Bytes in the pipe, not yet moved on.
    pub fn pending(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, the count of unread bytes, into `n`;
        // the descriptor is ours and open.
        let rc = unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Moves up to `CHUNK` bytes from socket `from` into the pipe: 0 at the
    /// socket's end of stream, `WouldBlock` when it has nothing now.
    pub fn fill(&self, from: &impl AsRawFd) -> io::Result<usize> {
        splice(from.as_raw_fd(), self.write.as_raw_fd(), CHUNK)
    }

    /// Moves up to `len` bytes from the pipe into socket `to`.
    pub fn drain(&self, to: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_raw_fd(), to.as_raw_fd(), len)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice reads and writes only the descriptors' kernel buffers; the
    // offsets are null (both are a socket or a pipe), and the descriptors stay
    // open for the call (borrowed from their owners).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    #[test]
    fn bytes_cross_through_the_pipe() {
        let l = TcpListener::bind("127.0.0.1:0").expect("listen");
        let mut client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        let l2 = TcpListener::bind("127.0.0.1:0").expect("listen");
        let out = TcpStream::connect(l2.local_addr().expect("addr")).expect("connect");
        let (mut far, _) = l2.accept().expect("accept");
        let pipe = Pipe::new().expect("pipe");
        server.set_nonblocking(true).expect("nonblocking");
        assert_eq!(
            pipe.fill(&server).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "nothing sent yet"
        );
        client.write_all(b"hello, far side").expect("send");
        let mut n = 0;
        while n == 0 {
            n = match pipe.fill(&server) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => panic!("{e}"),
            };
        }
        assert_eq!(n, 15);
        assert_eq!(pipe.pending().expect("FIONREAD"), 15);
        assert_eq!(pipe.drain(&out, n).expect("drain"), 15);
        assert_eq!(pipe.pending().expect("FIONREAD"), 0);
        let mut got = [0u8; 15];
        far.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hello, far side");
        drop(client);
        let mut end = None;
        while end.is_none() {
            match pipe.fill(&server) {
                Ok(n) => end = Some(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(end, Some(0), "end of stream");
    }
}
