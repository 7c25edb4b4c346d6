//! Which agent a CLI command talks to, and how: its control socket when it runs,
//! else the maps it pinned (read-only inspection works with the daemon down).

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use lb_agent::{
    agent::{
        ask,
        protocol::{Request, Response},
        snapshot::offline_status,
    },
    config::{self, Config, defaults},
    dataplane::{PinLayout, PinnedMaps},
    status::Status,
};

#[derive(Args, Clone)]
pub struct Target {
    /// The agent's config file (names its control socket and pin_path).
    #[arg(long, default_value = defaults::CONFIG_FILE)]
    pub config: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Where to reach the agent, and its config when the file is valid (names for what
/// the pinned maps hold).
pub struct Agent {
    pub socket: PathBuf,
    pub pin_path: PathBuf,
    pub config: Option<Config>,
}

impl Target {
    /// The agent's endpoints. A config file with errors still names them (the
    /// daemon keeps running its last good config); the errors are shown.
    pub fn load(&self) -> Result<Agent> {
        match config::load(&self.config) {
            Ok(c) => Ok(Agent {
                socket: c.agent.control_socket.clone(),
                pin_path: c.agent.pin_path.clone(),
                config: Some(c),
            }),
            Err(errors) => {
                let (socket, pin_path) =
                    config::endpoints(&self.config).map_err(|e| anyhow!("{e}"))?;
                eprintln!(
                    "note: {} has {} error(s) (`lb-agent check-config` lists them); using its [agent] section",
                    self.config.display(),
                    errors.0.len()
                );
                Ok(Agent {
                    socket,
                    pin_path,
                    config: None,
                })
            }
        }
    }
}

/// The daemon's answer, or `None` when no agent listens on the socket.
pub fn request(agent: &Agent, req: &Request) -> Result<Option<Response>> {
    let socket = &agent.socket;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match runtime.block_on(ask(socket, req)) {
        Ok(r) => Ok(Some(r)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("control socket {}", socket.display())),
    }
}

/// The daemon's answer; an error when it does not run (commands that change state).
pub fn require(agent: &Agent, req: &Request) -> Result<Response> {
    match request(agent, req)? {
        Some(Response::Error { message }) => bail!("{message}"),
        Some(r) => Ok(r),
        None => bail!(
            "the agent is not running (nothing listens on {})",
            agent.socket.display()
        ),
    }
}

/// Live status, or the pinned maps' when the daemon is down (said on stderr).
pub fn status(agent: &Agent) -> Result<Status> {
    match request(agent, &Request::Status)? {
        Some(Response::Status { status }) => Ok(*status),
        Some(Response::Error { message }) => bail!("{message}"),
        Some(_) => bail!("unexpected answer from the agent"),
        None => {
            eprintln!(
                "lb-agent is not running (nothing on {}): reading the maps pinned under {}",
                agent.socket.display(),
                agent.pin_path.display()
            );
            let mut maps = PinnedMaps::open(&PinLayout::new(&agent.pin_path))?;
            Ok(offline_status(&mut maps, agent.config.as_ref())?)
        }
    }
}
