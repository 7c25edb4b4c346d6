//! `lb-agent check-config --config FILE`: checks a config without applying anything.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use lb_agent::{
    config::{self, Config},
    dataplane::node_addresses,
    status::host_port,
};

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
            let node_local: Vec<&str> = c
                .vips
                .iter()
                .filter(|v| v.node_local())
                .map(|v| v.name.as_str())
                .collect();
            let local = local_backends(&c);
            let capacity = config::capacity::nat(&c);
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "services": c.vips.len(),
                        "backends": backends,
                        "node_local_vips": node_local,
                        "local_backends": local,
                        "nat_capacity": capacity,
                    })
                );
            } else {
                println!(
                    "{}: OK ({} services, {} backends)",
                    args.config.display(),
                    c.vips.len(),
                    backends
                );
                for v in &c.vips {
                    if v.node_local() {
                        println!(
                            "  {}: node-local VIP {}: serves this node's own sockets only \
                             (socket programs), never packets from the network",
                            v.name,
                            host_port(&v.address.to_string(), v.port)
                        );
                    }
                }
                for b in &local {
                    println!(
                        "  backend {b} is an address of this machine: its packets go through \
                         the local stack"
                    );
                }
                for n in &capacity {
                    println!("  capacity of VIP {}", n.describe());
                }
                let together: u64 = capacity.iter().map(|n| n.total).sum();
                if together > u64::from(c.agent.flow_table_size) {
                    println!(
                        "  note: the NAT VIPs together take up to {together} concurrent flows, \
                         more than flow_table_size {}: the table is then the bound, its least \
                         recently used flows evicted first",
                        c.agent.flow_table_size
                    );
                }
                if let Some(why) = config::capacity::snat_conflict(&c) {
                    println!("  note: on this machine the agent would not start: {why}");
                }
                for v in &c.vips {
                    if v.timeouts.tcp_time_wait < std::time::Duration::from_secs(60) {
                        println!(
                            "  note: VIP {}: timeouts.tcp_time_wait {:?} is shorter than Linux's \
                             TIME_WAIT (60 s): a port may be reused while a backend that closed \
                             first still holds the old connection",
                            v.name, v.timeouts.tcp_time_wait
                        );
                    }
                }
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

/// Backend addresses of `c` that are addresses of the machine running the check
/// (where the config will run, if it is checked there).
fn local_backends(c: &Config) -> Vec<String> {
    let Ok(node) = node_addresses() else {
        return Vec::new();
    };
    let mut out: Vec<String> = c
        .vips
        .iter()
        .flat_map(|v| &v.backends)
        .filter(|b| node.contains(&b.address))
        .map(|b| b.address.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}
