//! `lb-agent`: the load balancer's command line. Thin: each subcommand is a small
//! file in `cli/` over the library (`lb_agent::dataplane`, `lb_agent::lab`).

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lb-agent", version, about = "XDP L4 load balancer agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a lab in network namespaces (client, LB, three web backends), drive
    /// traffic through the XDP data plane and show it live. Needs root.
    Demo(cli::demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Demo(args) => cli::demo::run(&args),
    }
}
