//! An LB node of a lab: a host on the LAN ready for XDP (the pass program on its
//! switch port), its own directory, config file and pin directory, and the real
//! `lb-agent run` process inside its namespace. Its sysctls are a new namespace's,
//! as on a stock host (forwarding off): the agent turns on what it needs.
//!
//! The agent is started with `nsenter --net`, which keeps the host's mounts, so its
//! pins land in the host's bpffs, under a directory of this node. Dropping the node
//! kills the agent and removes its pins (which detaches the program) and directory.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use super::{Host, LabError, Lan, PeerPass, unique_name};

/// The HTTP endpoint of every lab agent, inside its own namespace.
pub const LAB_API: &str = "127.0.0.1:9100";

/// One LB node and, while it runs, its agent.
pub struct AgentNode {
    pub lb: Host,
    /// Config, control socket and log.
    pub dir: PathBuf,
    /// `pin_path` of its agent, in the host's bpffs.
    pub pins: PathBuf,
    pub config: PathBuf,
    agent: Option<Child>,
    /// Drops every frame the node receives while set (a node that lost power).
    dead: Option<PeerPass>,
    _peer: PeerPass,
}

impl AgentNode {
    /// LB host `index` on `lan`, its namespace named after `prefix`.
    pub fn new(lan: &Lan, prefix: &str, index: u8) -> Result<Self, LabError> {
        let lb = lan.host(prefix, index)?;
        let peer = PeerPass::attach(&lan.switch, &lb.port)?;
        let name = unique_name("lbagent");
        let dir = std::env::temp_dir().join(&name);
        fs::create_dir_all(&dir).map_err(|source| LabError::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        Ok(Self {
            pins: PathBuf::from("/sys/fs/bpf").join(&name),
            config: dir.join("lb.toml"),
            dir,
            agent: None,
            dead: None,
            _peer: peer,
            lb,
        })
    }

    /// The control socket its config names.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// Writes the config: an `[agent]` section for this node, then `rest` (TOML).
    pub fn write_config(&self, rest: &str) -> Result<(), LabError> {
        let text = format!(
            "[agent]\ninterfaces = [\"eth0\"]\nxdp_mode = \"native\"\npin_path = \"{}\"\n\
             api_listen = \"{LAB_API}\"\ncontrol_socket = \"{}\"\nflow_table_size = 65536\n\n{rest}",
            self.pins.display(),
            self.socket().display(),
        );
        fs::write(&self.config, text).map_err(|source| LabError::Spawn {
            command: format!("write {}", self.config.display()),
            source,
        })
    }

    /// Starts `exe run --config CONFIG` in the node's namespace, output appended to
    /// `agent.log`. Its own process group: a Ctrl-C meant for the caller does not
    /// reach it.
    pub fn spawn(&mut self, exe: &Path) -> Result<(), LabError> {
        if self.agent.is_some() {
            return Ok(());
        }
        let log_path = self.log_path();
        let io = |source| LabError::Spawn {
            command: format!("open {}", log_path.display()),
            source,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io)?;
        let err = log.try_clone().map_err(io)?;
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.lb.ns.name()))
                .arg(exe)
                .args(["run", "--config"])
                .arg(&self.config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .map_err(|source| LabError::Spawn {
                    command: format!("{} run", exe.display()),
                    source,
                })?
        };
        self.agent = Some(child);
        Ok(())
    }

    /// Whether the agent process runs (reaps it when it exited).
    pub fn running(&mut self) -> bool {
        match self.agent.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.agent = None;
                false
            }
            None => false,
        }
    }

    /// The agent process, while it runs.
    pub fn agent_mut(&mut self) -> Option<&mut Child> {
        self.agent.as_mut()
    }

    /// Hands the agent process over (to signal and wait for it); `None` when none runs.
    pub fn take_agent(&mut self) -> Option<Child> {
        self.agent.take()
    }

    /// `kill -9` of the agent, if it runs.
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node loses power with its link up: agent killed, the addresses it added
    /// gone (as after a reboot), data plane detached (pins removed) and every frame
    /// it receives dropped until `power_on`.
    pub fn power_off(&mut self) -> Result<(), LabError> {
        self.kill_agent();
        // A dead node says nothing: its kernel must not answer for the VIP it held
        // (a RST to every connection) in the moment between its XDP program going
        // (with the pins) and the blackhole: the addresses go first, as a reboot
        // would take them.
        self.lb
            .ns
            .ip(&["addr", "flush", "dev", "eth0", "secondary"])?;
        let _ = fs::remove_dir_all(&self.pins);
        if self.dead.is_none() {
            self.dead = Some(PeerPass::blackhole(&self.lb.ns, "eth0")?);
        }
        Ok(())
    }

    /// Undoes `power_off`'s blackhole (the agent is started separately).
    pub fn power_on(&mut self) {
        self.dead = None;
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for AgentNode {
    fn drop(&mut self) {
        self.kill_agent();
        // Removing the pinned links detaches the program; the maps go with the dir.
        let _ = fs::remove_dir_all(&self.pins);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
