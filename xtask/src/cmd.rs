//! Running commands with visible progress.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

static STEP: AtomicUsize = AtomicUsize::new(1);

/// Announces a step of a long operation.
pub fn step(what: &str) {
    let n = STEP.fetch_add(1, Ordering::Relaxed);
    eprintln!("xtask [{n}] {what}");
}

/// Runs `cargo ARGS` in the workspace with extra environment, inheriting output.
pub fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root()))
}

/// Runs `cargo ARGS` with the nightly toolchain (the eBPF crate's), through rustup.
pub fn nightly_cargo(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .args(args)
        .current_dir(root());
    // The outer cargo's compiler settings are for the stable toolchain.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
    ] {
        cmd.env_remove(var);
    }
    run(&mut cmd)
}

/// Runs a command, inheriting output; a failure names the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with a clear message unless running as root.
pub fn require_root(why: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("this command must run as root: {why}");
    }
    Ok(())
}
