//! `lb-agent flows [--vip NAME] [--backend ADDR[:PORT]] [--limit N]`: the flow table,
//! from the daemon or (when it is down) straight from the pinned map.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use lb_agent::{
    agent::{
        protocol::{FlowList, Request, Response},
        snapshot::flow_list,
    },
    dataplane::{PinLayout, PinnedMaps},
};

use super::{
    table::print,
    target::{Target, request},
};

#[derive(Args)]
pub struct FlowsArgs {
    #[command(flatten)]
    target: Target,
    /// Only flows of this VIP (its name).
    #[arg(long)]
    vip: Option<String>,
    /// Only flows to this backend: ADDR or ADDR:PORT.
    #[arg(long)]
    backend: Option<String>,
    /// Rows shown at most (all are counted).
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

pub fn run(a: &FlowsArgs) -> Result<()> {
    let agent = a.target.load()?;
    let req = Request::Flows {
        vip: a.vip.clone(),
        backend: a.backend.clone(),
        limit: a.limit,
    };
    let list: FlowList = match request(&agent, &req)? {
        Some(Response::Flows { flows }) => flows,
        Some(Response::Error { message }) => bail!("{message}"),
        Some(_) => bail!("unexpected answer from the agent"),
        None => {
            eprintln!(
                "lb-agent is not running: reading the maps pinned under {}",
                agent.pin_path.display()
            );
            let mut maps = PinnedMaps::open(&PinLayout::new(&agent.pin_path))?;
            flow_list(
                &mut maps,
                agent.config.as_ref(),
                a.vip.as_deref(),
                a.backend.as_deref(),
                a.limit,
            )
            .map_err(|e| anyhow!(e))?
        }
    };
    if a.target.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .flows
        .iter()
        .map(|f| {
            vec![
                f.protocol.clone(),
                f.client.clone(),
                f.vip_name.clone(),
                f.vip.clone(),
                f.backend.clone(),
                if f.snat.is_empty() {
                    "-".into()
                } else {
                    f.snat.clone()
                },
                if f.learned {
                    format!("{} (learned)", f.state)
                } else {
                    f.state.clone()
                },
                format!("{}s", f.idle_s),
                if f.expires_in_s < 0 {
                    "expired".into()
                } else {
                    format!("{}s", f.expires_in_s)
                },
            ]
        })
        .collect();
    print(
        &[
            "PROTO",
            "CLIENT",
            "VIP",
            "VIP ADDRESS",
            "BACKEND",
            "SNAT",
            "STATE",
            "IDLE",
            "EXPIRES IN",
        ],
        &rows,
    );
    println!("{} flows matched, {} shown", list.matched, list.flows.len());
    Ok(())
}
