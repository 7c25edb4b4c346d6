//! Socket-level balancing, the user side: which network namespace the socket
//! programs serve, where the cgroup v2 hierarchy is, and their links, pinned under
//! `pin_path` like the interfaces' and replaced without a gap on restart (the new
//! link is made and pinned before the old one's pin is replaced).

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use lb_common::PROG_SOCK;

use super::{
    Dataplane, DataplaneError, PinLayout,
    loader::program,
    pins::{pin_link, remove_pin},
};

/// `SO_NETNS_COOKIE` (Linux 5.14), not in every libc crate version.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's network namespace (what `bpf_get_netns_cookie`
/// returns for its sockets).
pub fn netns_cookie() -> Result<u64, DataplaneError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("[::1]:0"))
        .map_err(|source| DataplaneError::Netns { source })?;
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(DataplaneError::Netns {
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(cookie)
}

/// Inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO` in the kernel).
const INITIAL_CGROUP_NS: u64 = 0xEFFF_FFFB;

/// Where the cgroup v2 hierarchy is mounted (its root), from /proc/self/mountinfo:
/// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
///
/// In a cgroup namespace of its own (a container) the root it sees is the
/// container's cgroup, and programs attached there would balance the container's
/// sockets only: that is an error naming the way out, not a silent no-op.
pub fn cgroup2_root() -> Result<PathBuf, DataplaneError> {
    let ns = std::fs::metadata("/proc/self/ns/cgroup").map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.ino()
    });
    if let Ok(ino) = ns
        && ino != INITIAL_CGROUP_NS
    {
        return Err(DataplaneError::Cgroup {
            path: PathBuf::from("/proc/self/ns/cgroup"),
            why: "the agent runs in a cgroup namespace of its own (a container): the cgroup \
                  root it sees is its own cgroup, where the socket programs would balance \
                  the container's sockets only; mount the host's cgroup v2 hierarchy into \
                  the container and set socket_lb_cgroup to it (examples/kubernetes), or \
                  socket_lb = false"
                .into(),
        });
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| {
        DataplaneError::Cgroup {
            path: PathBuf::from("/proc/self/mountinfo"),
            why: format!("cannot read it: {source}"),
        }
    })?;
    cgroup2_in_mountinfo(&text).ok_or_else(|| DataplaneError::Cgroup {
        path: PathBuf::from("/proc/self/mountinfo"),
        why: "no cgroup2 file system is mounted (mount one, e.g. `mount -t cgroup2 none \
              /sys/fs/cgroup`, set socket_lb_cgroup, or socket_lb = false)"
            .into(),
    })
}

/// The mount point of the first cgroup2 mount of a hierarchy's root in `mountinfo`.
fn cgroup2_in_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let fields: Vec<&str> = mount.split(' ').collect();
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        (fs.split(' ').next() == Some("cgroup2") && *root == "/").then(|| unescape(point))
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\\ooo`.
fn unescape(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (b[i], octal) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

impl Dataplane {
    /// Attaches every socket program to `cgroup`; the links live as long as `self`
    /// (labs, benchmarks; the agent uses `attach_sockets_pinned`).
    pub fn attach_sockets(&mut self, cgroup: &Path) -> Result<(), DataplaneError> {
        let dir = open_cgroup(cgroup)?;
        for (name, _) in PROG_SOCK {
            let prog: &mut CgroupSockAddr = program(&mut self.ebpf, name)?;
            prog.attach(&dir, CgroupAttachMode::Single)
                .map_err(|source| DataplaneError::Program {
                    name,
                    what: "attach to the cgroup",
                    source,
                })?;
        }
        Ok(())
    }

    /// The socket program of `hook` (e.g. for its run-time statistics).
    pub fn socket_program(
        &mut self,
        name: &'static str,
    ) -> Result<&CgroupSockAddr, DataplaneError> {
        program::<CgroupSockAddr>(&mut self.ebpf, name).map(|p| &*p)
    }

    /// Attaches every socket program to `cgroup` through links pinned under `pins`.
    /// A link of an earlier start is replaced by the new one in a single rename of
    /// its pin: the two run side by side for that moment (the second sees a backend
    /// address and leaves it), never neither.
    pub fn attach_sockets_pinned(
        &mut self,
        cgroup: &Path,
        pins: &PinLayout,
    ) -> Result<(), DataplaneError> {
        let dir = open_cgroup(cgroup)?;
        for (name, _) in PROG_SOCK {
            let prog: &mut CgroupSockAddr = program(&mut self.ebpf, name)?;
            let id = prog
                .attach(&dir, CgroupAttachMode::Single)
                .map_err(|source| DataplaneError::Program {
                    name,
                    what: "attach to the cgroup",
                    source,
                })?;
            let link = prog
                .take_link(id)
                .map_err(|source| DataplaneError::Program {
                    name,
                    what: "take link",
                    source,
                })?;
            let path = pins.sock_link(name);
            let fresh = pins.sock_link(&format!("{name}_new"));
            remove_pin(&fresh)?;
            pin_link(link, &fresh, name)?;
            std::fs::rename(&fresh, &path).map_err(|source| DataplaneError::Pin {
                what: format!("link of {name}"),
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

fn open_cgroup(cgroup: &Path) -> Result<File, DataplaneError> {
    File::open(cgroup).map_err(|e| DataplaneError::Cgroup {
        path: cgroup.to_path_buf(),
        why: format!("cannot open it: {e}"),
    })
}

/// Detaches the socket programs (their pinned links removed); true if any was.
pub fn detach_sockets(pins: &PinLayout) -> Result<bool, DataplaneError> {
    let mut any = false;
    for (name, _) in PROG_SOCK {
        let path = pins.sock_link(name);
        any |= path.exists();
        remove_pin(&path)?;
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_root_on_hybrid_and_unified_hosts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "25 21 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        // A container's view of its own cgroup is not the hierarchy's root.
        let container = "900 800 0:22 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_in_mountinfo(container), None);
        let escaped = "1 1 0:1 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(escaped),
            Some(PathBuf::from("/mnt/with space"))
        );
    }
}
