//! `drain`, `enable`, `reload`, `handover`, `restart`: changes made by the running
//! daemon.

use anyhow::Result;
use clap::Args;
use lb_agent::agent::protocol::{Request, Response};

use super::target::{Target, require};

#[derive(Args)]
pub struct BackendArgs {
    #[command(flatten)]
    target: Target,
    /// The VIP's name.
    vip: String,
    /// The backend: ADDR or ADDR:PORT.
    backend: String,
}

fn done(t: &Target, r: Response) -> Result<()> {
    if t.json {
        println!("{}", serde_json::to_string(&r)?);
    } else if let Response::Done { message } = r {
        println!("{message}");
    }
    Ok(())
}

pub fn drain(a: &BackendArgs) -> Result<()> {
    let config = a.target.load()?;
    let r = require(
        &config,
        &Request::Drain {
            vip: a.vip.clone(),
            backend: a.backend.clone(),
        },
    )?;
    done(&a.target, r)
}

pub fn enable(a: &BackendArgs) -> Result<()> {
    let config = a.target.load()?;
    let r = require(
        &config,
        &Request::Enable {
            vip: a.vip.clone(),
            backend: a.backend.clone(),
        },
    )?;
    done(&a.target, r)
}

/// Asks the daemon to re-read its config file (the one it was started with).
pub fn reload(t: &Target) -> Result<()> {
    let config = t.load()?;
    let r = require(&config, &Request::Reload)?;
    done(t, r)
}

#[derive(Args)]
pub struct HandoverArgs {
    #[command(flatten)]
    target: Target,
    /// Rejoin the VRRP election instead.
    #[arg(long)]
    undo: bool,
}

/// Planned maintenance: masters hand the VIP over at once (priority 0) and every
/// instance stays out of the election until `--undo` or a restart.
pub fn handover(a: &HandoverArgs) -> Result<()> {
    let config = a.target.load()?;
    let r = require(&config, &Request::Handover { undo: a.undo })?;
    done(&a.target, r)
}

/// Asks the daemon to leave for a restart (masters keep the VIP for the next
/// agent, which its supervisor starts).
pub fn restart(t: &Target) -> Result<()> {
    let config = t.load()?;
    let r = require(&config, &Request::Restart)?;
    done(t, r)
}
