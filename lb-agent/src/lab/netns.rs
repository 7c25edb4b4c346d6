//! A network namespace guard and the commands that build a lab.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Lab construction failures.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {name}")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `prefix` + process id + counter, at most 15 characters (interface name limit).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id());
    name.chars().take(15).collect()
}

/// Runs a command, returning its stdout; a non-zero exit is an error with stderr.
pub fn run_cmd(args: &[&str]) -> Result<String, LabError> {
    let command = args.join(" ");
    let (prog, rest) = args.split_first().ok_or_else(|| LabError::Command {
        command: command.clone(),
        stderr: "empty command".into(),
    })?;
    let out = Command::new(prog)
        .args(rest)
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `prefix` + pid + counter, loopback up.
    pub fn new(prefix: &str) -> Result<Self, LabError> {
        let name = unique_name(prefix);
        run_cmd(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run_cmd(&v)
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Result<String, LabError> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run_cmd(&v)
    }

    /// Creates a veth pair: `name` here, `peer` in namespace `other`.
    pub fn veth(&self, name: &str, other: &Netns, peer: &str) -> Result<(), LabError> {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &other.name,
        ])
        .map(|_| ())
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Moves the calling thread into the namespace (network only): sockets it opens,
    /// programs it attaches and `BPF_PROG_TEST_RUN` calls it makes then live there.
    pub fn enter_current_thread(&self) -> Result<(), LabError> {
        self.entry()?.enter()
    }

    /// Runs `f` on a thread inside the namespace and returns its result: for work
    /// that resolves names there (attaching to an interface) without moving the
    /// caller's thread.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LabError> {
        let entry = self.entry()?;
        std::thread::spawn(move || entry.enter().map(|()| f()))
            .join()
            .map_err(|_| LabError::Command {
                command: format!("work inside {}", self.name),
                stderr: "thread panicked".into(),
            })?
    }

    /// A handle another thread can use to enter the namespace.
    pub fn entry(&self) -> Result<NetnsEntry, LabError> {
        let file =
            File::open(format!("/run/netns/{}", self.name)).map_err(|source| LabError::Enter {
                name: self.name.clone(),
                source,
            })?;
        Ok(NetnsEntry {
            name: self.name.clone(),
            file,
        })
    }

    /// A permanent neighbour entry: `addr` is at `mac` on `dev` (no ARP/ND needed).
    pub fn static_neighbour(
        &self,
        addr: std::net::IpAddr,
        mac: [u8; 6],
        dev: &str,
    ) -> Result<(), LabError> {
        let lladdr = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        self.ip(&[
            "neigh",
            "replace",
            &addr.to_string(),
            "lladdr",
            &lladdr,
            "dev",
            dev,
            "nud",
            "permanent",
        ])
        .map(|_| ())
    }

    /// The MAC address of an interface in this namespace.
    pub fn mac(&self, dev: &str) -> Result<[u8; 6], LabError> {
        let text = self.exec(&["cat", &format!("/sys/class/net/{dev}/address")])?;
        let bad = || LabError::Command {
            command: format!("MAC of {dev}"),
            stderr: format!("unexpected output {text:?}"),
        };
        let bytes: Vec<u8> = text
            .trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        bytes.try_into().map_err(|_| bad())
    }

    /// Index of an interface in this namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32, LabError> {
        let out = self.exec(&["cat", &format!("/sys/class/net/{dev}/ifindex")])?;
        out.trim().parse().map_err(|_| LabError::Command {
            command: format!("ifindex of {dev}"),
            stderr: format!("unexpected output {out:?}"),
        })
    }
}

/// An open namespace, to enter from any thread.
#[derive(Debug)]
pub struct NetnsEntry {
    name: String,
    file: File,
}

impl NetnsEntry {
    /// Moves the calling thread into the namespace (network only).
    pub fn enter(&self) -> Result<(), LabError> {
        // SAFETY: setns on a valid namespace fd; affects only this thread's network
        // namespace.
        let rc = unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(LabError::Enter {
                name: self.name.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kills what still runs inside, then deletes the namespace (its veths go too).
        // Never this process: a thread of ours may have entered the namespace.
        let me = std::process::id().to_string();
        if let Ok(pids) = run_cmd(&["ip", "netns", "pids", &self.name]) {
            for pid in pids.split_whitespace().filter(|p| *p != me) {
                let _ = run_cmd(&["kill", "-9", pid]);
            }
        }
        if let Err(e) = run_cmd(&["ip", "netns", "del", &self.name]) {
            eprintln!("lab: could not delete namespace {}: {e}", self.name);
        }
    }
}
