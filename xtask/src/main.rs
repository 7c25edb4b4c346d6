//! Developer commands: `cargo xtask <command>`.
//!
//! - `build-ebpf`: installs what the eBPF build needs (nightly rust-src, bpf-linker
//!   linked against the nightly's own libLLVM, into `.cache/`) and builds the object.
//! - `test`: the above, bpffs, clippy, then every test of the workspace (default
//!   members: all but lb-ebpf, which only builds for BPF) as root.
//! - `demo`: the above, then the demo lab (`lb-agent demo`).
//! - `bench`: the side-by-side benchmark (and `bench-dp`, steady then under traffic, first).
//! - `bench-dp`: per-packet cost of the XDP program under real traffic (`--steady`:
//!   through `BPF_PROG_TEST_RUN`, without traffic).
//! - `fuzz`: the VRRP advert parser under cargo-fuzz (installed into `.cache/`).
//! - `dist`: the release binary, the Debian package and the container root file
//!   system in `target/dist/`; `--verify` (or `verify-deb`) then installs the package
//!   here, serves a VIP through its service in a namespace lab and purges it.

mod bootstrap;
mod cmd;
mod dist;
mod verify;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "lb developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the eBPF toolchain pieces if missing and build the XDP object.
    BuildEbpf,
    /// Bootstrap, mount bpffs, run every test of the workspace (needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Bootstrap and run the demo lab (needs root); `--config FILE` runs the agent.
    Demo {
        /// Arguments for `lb-agent demo` (e.g. `--config FILE`, `--forwarding dsr`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the VRRP advert parser (cargo-fuzz, nightly) for a while.
    Fuzz {
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The side-by-side benchmark: XDP (nat, dsr) vs HAProxy vs nftables vs no LB,
    /// plus the program's own cost per packet, flow-table scale and Maglev rebuilds.
    Bench {
        /// Arguments for the benchmark (`--quick`, `--seconds N`, `--threads N`, `--out DIR`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Per-packet cost of the XDP program (bpf_stats) under real traffic.
    BenchDp {
        /// Arguments for the benchmark (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Release artifacts in target/dist: the static lb-agent binary (no lab), the
    /// Debian package and a container root file system.
    Dist {
        /// Then verify the package (as `verify-deb`; needs root).
        #[arg(long)]
        verify: bool,
    },
    /// Install the Debian package on this machine, run its service on a VIP in a
    /// namespace lab (client, LB, nginx backends), reload, stop, purge (needs root).
    VerifyDeb {
        /// The package (default: the one `cargo xtask dist` built for this machine).
        deb: Option<std::path::PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::BuildEbpf => {
            bootstrap::ebpf_toolchain()?;
            cmd::step("building lb-agent and the XDP object");
            cmd::cargo(&["build", "--package", "lb-agent"], &[])?;
            Ok(())
        }
        Command::Test { args } => {
            cmd::require_root("the tests load XDP programs and build network namespaces")?;
            bootstrap::ebpf_toolchain()?;
            bootstrap::bpffs()?;
            cmd::step("clippy: host crates");
            cmd::cargo(
                &[
                    "clippy",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )?;
            // The agent as a release ships it: without the lab, the demo and the
            // bench's programs (its `lab` feature).
            cmd::step("clippy: lb-agent without its lab (as released)");
            cmd::cargo(
                &[
                    "clippy",
                    "--package",
                    "lb-agent",
                    "--no-default-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )?;
            cmd::step("clippy: lb-ebpf for bpfel-unknown-none");
            cmd::nightly_cargo(&[
                "clippy",
                "--package",
                "lb-ebpf",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ])?;
            cmd::step("running the workspace tests");
            let mut test = vec!["test"];
            test.extend(args.iter().map(String::as_str));
            cmd::cargo_test(&test)
        }
        Command::Demo { args } => {
            cmd::require_root("the demo builds network namespaces and attaches XDP")?;
            bootstrap::ebpf_toolchain()?;
            bootstrap::bpffs()?;
            cmd::step("building lb-agent (release)");
            let mut run = vec!["run", "--release", "--package", "lb-agent", "--", "demo"];
            run.extend(args.iter().map(String::as_str));
            cmd::cargo(&run, &[])
        }
        Command::Fuzz { seconds } => {
            let bin = bootstrap::cargo_fuzz()?;
            cmd::step(&format!("fuzzing the VRRP parser for {seconds} s"));
            cmd::nightly_tool(
                &bin,
                &[
                    "fuzz",
                    "run",
                    "vrrp_parse",
                    "--fuzz-dir",
                    "fuzz",
                    "--",
                    &format!("-max_total_time={seconds}"),
                ],
            )
        }
        Command::Bench { args } => {
            cmd::require_root("the benchmark builds network namespaces and attaches XDP")?;
            bootstrap::ebpf_toolchain()?;
            bootstrap::bpffs()?;
            bootstrap::bench_tools()?;
            let quick = args.iter().any(|a| a == "--quick");
            cmd::step(
                "1/3: the XDP program's cost per packet, steady (BPF_PROG_TEST_RUN in turns \
                 with the floor, medians)",
            );
            bench_bin(
                "bench-dp",
                if quick {
                    &["--steady", "--quick"]
                } else {
                    &["--steady"]
                },
            )?;
            cmd::step("2/3: the XDP program's cost per packet under traffic (bpf_stats)");
            bench_bin("bench-dp", if quick { &["--quick"] } else { &[] })?;
            cmd::step(
                "3/3: side by side: no LB, XDP nat/dsr, HAProxy, nftables (fresh lab each); \
                 routed by SNI: HAProxy vs lb-agent",
            );
            // The routed workload runs the agent itself.
            cmd::cargo(&["build", "--release", "--package", "lb-agent"], &[])?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bench_bin("bench", &args)
        }
        Command::Dist { verify } => {
            if verify {
                cmd::require_root("--verify installs the package and builds network namespaces")?;
            }
            let deb = dist::build()?;
            if verify {
                verify::verify(&deb)?;
            }
            Ok(())
        }
        Command::VerifyDeb { deb } => {
            let deb = match deb {
                Some(deb) => deb,
                None => dist::dist_dir().join(dist::deb_name(&dist::debian_arch()?)),
            };
            verify::verify(&deb)
        }
        Command::BenchDp { args } => {
            cmd::require_root("the benchmark attaches XDP programs in network namespaces")?;
            bootstrap::ebpf_toolchain()?;
            cmd::step("running the data-plane cost benchmark (release)");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bench_bin("bench-dp", &args)
        }
    }
}

/// `cargo run --release` of a benchmark binary of the `tests` crate with `args`.
fn bench_bin(bin: &str, args: &[&str]) -> Result<()> {
    let mut run = vec!["run", "--release", "--package", "tests", "--bin", bin, "--"];
    run.extend_from_slice(args);
    cmd::cargo(&run, &[])
}
