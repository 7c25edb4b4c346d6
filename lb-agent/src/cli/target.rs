//! Which agent a CLI command talks to, and how: its control socket when it runs,
//! else the maps it pinned (read-only inspection works with the daemon down).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
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

impl Target {
    pub fn load(&self) -> Result<Config> {
        config::load(&self.config).map_err(|e| anyhow!("{e}"))
    }
}

/// The daemon's answer, or `None` when no agent listens on the socket.
pub fn request(config: &Config, req: &Request) -> Result<Option<Response>> {
    let socket = &config.agent.control_socket;
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
pub fn require(config: &Config, req: &Request) -> Result<Response> {
    match request(config, req)? {
        Some(Response::Error { message }) => bail!("{message}"),
        Some(r) => Ok(r),
        None => bail!(
            "the agent is not running (nothing listens on {})",
            config.agent.control_socket.display()
        ),
    }
}

/// Live status, or the pinned maps' when the daemon is down (said on stderr).
pub fn status(config: &Config) -> Result<Status> {
    match request(config, &Request::Status)? {
        Some(Response::Status { status }) => Ok(*status),
        Some(Response::Error { message }) => bail!("{message}"),
        Some(_) => bail!("unexpected answer from the agent"),
        None => {
            eprintln!(
                "lb-agent is not running (nothing on {}): reading the maps pinned under {}",
                config.agent.control_socket.display(),
                config.agent.pin_path.display()
            );
            let mut maps = PinnedMaps::open(&PinLayout::new(&config.agent.pin_path))?;
            Ok(offline_status(&mut maps, Some(config))?)
        }
    }
}
