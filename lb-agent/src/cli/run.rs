//! `lb-agent run --config FILE`: the daemon (see `lb_agent::agent`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct RunArgs {
    /// The config file (re-read on SIGHUP and `lb-agent reload`).
    #[arg(long)]
    config: PathBuf,
}

pub fn run(a: &RunArgs) -> Result<()> {
    let path = std::path::absolute(&a.config)?;
    lb_agent::agent::run(&path)?;
    Ok(())
}
