//! `drain`, `enable`, `reload`: changes made by the running daemon.

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
