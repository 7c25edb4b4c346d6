//! `lb-agent run --config FILE`: the daemon (see `lb_agent::agent`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use lb_agent::logging::LogFormat;

#[derive(Args)]
pub struct RunArgs {
    /// The config file (re-read on SIGHUP and `lb-agent reload`).
    #[arg(long)]
    config: PathBuf,
    /// Log lines as `text` or `json` (one object per line); overrides the config's
    /// `[agent] log_format`.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

pub fn run(a: &RunArgs) -> Result<()> {
    let path = std::path::absolute(&a.config)?;
    lb_agent::agent::run(&path, a.log_format)?;
    Ok(())
}
