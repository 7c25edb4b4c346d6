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
    #[cfg(feature = "lab")]
    Demo(cli::demo::DemoArgs),
    /// Check a config file: every error with its file, line and key; applies nothing.
    CheckConfig(cli::check_config::CheckConfigArgs),
    /// Convert an HAProxy + keepalived setup into an lb-agent config (checked before
    /// it is written); everything not expressed is a warning with FILE:LINE.
    Import(cli::import::ImportArgs),
    /// Run the agent: load and pin the data plane, health-check, serve the control
    /// socket and HTTP. SIGHUP reloads; SIGTERM stops, handing the VIP over (a
    /// restart by systemd keeps it); forwarding continues either way.
    Run(cli::run::RunArgs),
    /// The agent at a glance: interfaces, readiness, VIPs.
    Status(cli::target::Target),
    /// VIPs with traffic and rates.
    Vips(cli::target::Target),
    /// Backends: admin state, health, last check, traffic.
    Backends(cli::inspect::BackendsArgs),
    /// Flow table entries, filtered by VIP and backend.
    Flows(cli::flows::FlowsArgs),
    /// Data plane counters with rates.
    Stats(cli::inspect::StatsArgs),
    /// A VIP's Maglev ring: share of entries per backend.
    Maglev(cli::inspect::MaglevArgs),
    /// Drain a backend: keeps its flows, gets no new ones (until `enable` or a restart).
    Drain(cli::admin::BackendArgs),
    /// Undo `drain`: the backend takes new flows again when healthy.
    Enable(cli::admin::BackendArgs),
    /// Re-read and apply the config file (all or nothing).
    Reload(cli::target::Target),
    /// VRRP instances: state, effective priority, master, transitions, counters.
    Vrrp(cli::target::Target),
    /// Planned maintenance: VRRP masters hand the VIP over now (priority 0) and this
    /// node stays out of the election until `--undo` (or a restart).
    Handover(cli::admin::HandoverArgs),
    /// Leave for a restart: VRRP masters keep the VIP; the agent exits and its next
    /// start (by the supervisor) resumes as master, no VRRP state change anywhere.
    Restart(cli::target::Target),
    /// Started by a stopping agent: relays the routed connections it handed over
    /// until they end.
    #[command(hide = true)]
    HoldConnections(cli::hold::HoldArgs),
    /// Write the man pages and shell completions of this command line into a
    /// directory (packaging: `cargo xtask dist`).
    #[command(hide = true)]
    GenerateFiles(cli::generate::GenerateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `run` picks its format from its flag or its config; everything else writes text.
    if !matches!(cli.command, Command::Run(_)) {
        lb_agent::logging::init(lb_agent::logging::LogFormat::Text, false);
    }
    let result = match cli.command {
        #[cfg(feature = "lab")]
        Command::Demo(args) => cli::demo::run(&args),
        Command::CheckConfig(args) => cli::check_config::run(&args),
        Command::Import(args) => cli::import::run(&args),
        Command::Run(a) => cli::run::run(&a),
        Command::Status(t) => cli::inspect::show_status(&t),
        Command::Vips(t) => cli::inspect::vips(&t),
        Command::Backends(a) => cli::inspect::backends(&a),
        Command::Flows(a) => cli::flows::run(&a),
        Command::Stats(a) => cli::inspect::stats(&a),
        Command::Maglev(a) => cli::inspect::maglev(&a),
        Command::Drain(a) => cli::admin::drain(&a),
        Command::Enable(a) => cli::admin::enable(&a),
        Command::Reload(t) => cli::admin::reload(&t),
        Command::Vrrp(t) => cli::inspect::vrrp(&t),
        Command::Handover(a) => cli::admin::handover(&a),
        Command::Restart(t) => cli::admin::restart(&t),
        Command::HoldConnections(a) => cli::hold::run(&a),
        Command::GenerateFiles(a) => {
            cli::generate::run(&a, <Cli as clap::CommandFactory>::command())
        }
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
