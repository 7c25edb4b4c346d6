//! `lb-agent hold-connections --connection ...`: started by a stopping agent, not by
//! people. It relays the routed connections the agent handed over (their sockets
//! and pipes inherited, see `lb_agent::proxy::handover`) until each ends, then
//! exits. It listens on nothing and reads no config.

use anyhow::{Result, anyhow};
use clap::Args;
use lb_agent::proxy::{handover, serve::resume};

#[derive(Args)]
pub struct HoldArgs {
    /// `IDLE_MS:CLIENT,BACKEND,UP_READ,UP_WRITE,DOWN_READ,DOWN_WRITE`: one handed-over
    /// connection's idle timeout and inherited descriptors.
    #[arg(long = "connection", required = true)]
    connections: Vec<String>,
}

pub fn run(a: &HoldArgs) -> Result<()> {
    let handed = handover::adopt(&a.connections).map_err(|e| anyhow!(e))?;
    let n = handed.len();
    tracing::info!(
        "holding {n} proxied connection(s) handed over by the stopping agent, until they end"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for h in handed {
            tasks.spawn(resume(h));
        }
        while tasks.join_next().await.is_some() {}
    });
    tracing::info!("the {n} handed-over connection(s) ended");
    Ok(())
}
