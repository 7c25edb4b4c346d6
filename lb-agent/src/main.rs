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
    /// Check a config file: every error with its file, line and key; applies nothing.
    CheckConfig(cli::check_config::CheckConfigArgs),
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match Cli::parse().command {
        Command::Demo(args) => cli::demo::run(&args),
        Command::CheckConfig(args) => cli::check_config::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes on one line; no backtrace for an operator.
            eprintln!("lb-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
