//! `lb-agent check-config --config FILE`: checks a config without applying anything.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use lb_agent::config;

#[derive(Args)]
pub struct CheckConfigArgs {
    /// The config file.
    #[arg(long)]
    config: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CheckConfigArgs) -> Result<()> {
    match config::load(&args.config) {
        Ok(c) => {
            let backends: usize = c.vips.iter().map(|v| v.backends.len()).sum();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "services": c.vips.len(), "backends": backends})
                );
            } else {
                println!(
                    "{}: OK ({} services, {} backends)",
                    args.config.display(),
                    c.vips.len(),
                    backends
                );
            }
            Ok(())
        }
        Err(errors) => {
            if args.json {
                println!("{}", serde_json::json!({"ok": false, "errors": errors.0}));
            } else {
                eprintln!("{errors}");
            }
            bail!(
                "{}: {} error(s), nothing applied",
                args.config.display(),
                errors.0.len()
            )
        }
    }
}
