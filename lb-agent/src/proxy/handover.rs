//! Proxied connections outliving the agent: when it stops (a restart, an
//! upgrade, a stop), each routed connection's relay stops between two `splice`
//! calls, and its two sockets and two pipes (with any bytes still in them) go to a
//! process of their own, `lb-agent hold-connections`, which goes on relaying them
//! until they end. The agent exits at once and the next one listens again; no
//! connection is cut and no byte is lost (a byte is either in a socket's buffer or
//! in a pipe, and both are handed over).
//!
//! Socket handover to a holder process, rather than the proxy in a process of its
//! own all along: the proxy shares the agent's health state, config reloads and
//! metrics with no protocol between two daemons, and only a stop needs a second
//! process. The holder is spawned from the running binary image (`/proc/self/exe`),
//! so an upgrade that replaced the file on disk hands over to the code that was
//! relaying.
//!
//! The descriptors cross `exec` by inheritance; their numbers are the holder's
//! arguments (`--connection IDLE_MS:CLIENT,BACKEND,UP_READ,UP_WRITE,DOWN_READ,DOWN_WRITE`).
//! The few unsafe calls (clearing close-on-exec, checking and adopting inherited
//! descriptors) are in this file, each commented.

use std::{
    collections::HashSet,
    io,
    net::TcpStream,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use super::splice::Pipe;

/// One routed connection, stopped between two moves.
#[derive(Debug)]
pub struct Handed {
    pub client: TcpStream,
    pub backend: TcpStream,
    /// Client to backend, and back.
    pub up: Pipe,
    pub down: Pipe,
    /// The listener's idle timeout, which goes on applying.
    pub idle: Duration,
}

/// A listener's side: connection tasks watch for the request, and send
/// themselves when it comes.
#[derive(Clone, Debug)]
pub struct Handover {
    stop: watch::Receiver<bool>,
    out: mpsc::UnboundedSender<Handed>,
}

/// The agent's side: request the handover, receive the connections.
#[derive(Debug)]
pub struct HandoverControl {
    stop: watch::Sender<bool>,
    pub handed: mpsc::UnboundedReceiver<Handed>,
}

pub fn channel() -> (HandoverControl, Handover) {
    let (stop, rx) = watch::channel(false);
    let (out, handed) = mpsc::unbounded_channel();
    (HandoverControl { stop, handed }, Handover { stop: rx, out })
}

impl Handover {
    /// Waits until a handover is requested (forever if none will be).
    pub async fn requested(&mut self) {
        if self.stop.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Passes a stopped connection on; if nobody takes it any more, it is dropped
    /// (closed).
    pub fn send(&self, h: Handed) {
        let _ = self.out.send(h);
    }
}

impl HandoverControl {
    /// Asks every connection of the listener to stop and come here.
    pub fn request(&self) {
        self.stop.send_replace(true);
    }
}

/// The arguments of `lb-agent hold-connections` for `handed`, and the descriptors
/// it must inherit (kept open until the holder has started).
pub fn holder_args(handed: Vec<Handed>) -> io::Result<(Vec<String>, Vec<OwnedFd>)> {
    let mut args = Vec::new();
    let mut keep = Vec::new();
    for h in handed {
        let (ur, uw) = h.up.into_fds();
        let (dr, dw) = h.down.into_fds();
        let fds: [OwnedFd; 6] = [h.client.into(), h.backend.into(), ur, uw, dr, dw];
        for fd in &fds {
            inheritable(fd)?;
        }
        let nums: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
        args.push("--connection".to_string());
        args.push(format!("{}:{}", h.idle.as_millis(), nums.join(",")));
        keep.extend(fds);
    }
    Ok((args, keep))
}

/// Clears close-on-exec: the descriptor survives into the holder.
fn inheritable(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own changes only its flags.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What kind of file an inherited descriptor is, if it is open.
fn kind(fd: RawFd) -> Option<libc::mode_t> {
    // SAFETY: fstat writes a `stat` for an open descriptor and fails (EBADF)
    // for any other number; the struct is ours.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd, &mut st) };
    (rc == 0).then_some(st.st_mode & libc::S_IFMT)
}

/// The connections named by `--connection` arguments, adopted: each descriptor
/// checked to be open and of the kind its place says (a socket, a pipe), and named
/// once. Errors name the argument.
pub fn adopt(specs: &[String]) -> Result<Vec<Handed>, String> {
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for spec in specs {
        let bad = |why: &str| format!("--connection {spec}: {why}");
        let (idle, fds) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected IDLE_MS:CLIENT,BACKEND,UP_R,UP_W,DOWN_R,DOWN_W"))?;
        let idle: u64 = idle.parse().map_err(|_| bad("IDLE_MS is not a number"))?;
        let fds: Vec<RawFd> = fds
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad("a descriptor is not a number"))?;
        let [c, b, ur, uw, dr, dw] = fds[..] else {
            return Err(bad("expected six descriptors"));
        };
        for (fd, want, what) in [
            (c, libc::S_IFSOCK, "the client's socket"),
            (b, libc::S_IFSOCK, "the backend's socket"),
            (ur, libc::S_IFIFO, "a pipe"),
            (uw, libc::S_IFIFO, "a pipe"),
            (dr, libc::S_IFIFO, "a pipe"),
            (dw, libc::S_IFIFO, "a pipe"),
        ] {
            if fd <= 2 || !seen.insert(fd) {
                return Err(bad(&format!("descriptor {fd} is given twice or is stdio")));
            }
            if kind(fd) != Some(want) {
                return Err(bad(&format!(
                    "descriptor {fd} is not {what} of this process"
                )));
            }
        }
        parsed.push((Duration::from_millis(idle), [c, b, ur, uw, dr, dw]));
    }
    Ok(parsed
        .into_iter()
        .map(|(idle, [c, b, ur, uw, dr, dw])| {
            // SAFETY: each number was checked above to be an open descriptor of the
            // right kind, inherited from the agent for this purpose, and named once:
            // nothing else in this process owns it.
            let own = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
            Handed {
                client: TcpStream::from(own(c)),
                backend: TcpStream::from(own(b)),
                up: Pipe::from_fds(own(ur), own(uw)),
                down: Pipe::from_fds(own(dr), own(dw)),
                idle,
            }
        })
        .collect())
}

/// Starts `lb-agent hold-connections` (the running binary image) with `handed`;
/// its process id. Its output goes where the agent's goes.
pub fn spawn_holder(handed: Vec<Handed>) -> io::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let (args, fds) = holder_args(handed)?;
    let child = std::process::Command::new("/proc/self/exe")
        .arg("hold-connections")
        .args(&args)
        .stdin(std::process::Stdio::null())
        // Not in the agent's process group: a signal for the agent's group (a
        // terminal's Ctrl-C) is not for the connections.
        .process_group(0)
        .spawn()?;
    // The holder has its copies; ours close.
    drop(fds);
    Ok(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_inherited_descriptors_are_refused() {
        for (spec, why) in [
            ("x", "expected IDLE_MS"),
            ("10:1,2", "six descriptors"),
            ("abc:3,4,5,6,7,8", "IDLE_MS is not a number"),
            ("10:3,4,5,6,7,x", "not a number"),
            ("10:0,4,5,6,7,8", "stdio"),
            ("10:900,901,902,903,904,905", "is not the client's socket"),
        ] {
            let e = adopt(&[spec.to_string()]).expect_err(spec);
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
