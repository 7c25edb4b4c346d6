//! Running commands with visible progress.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context as _, Result, bail};

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

/// Runs `cargo test ARGS`, echoing its output, and ends with one line adding up every
/// test binary's result: `tests: N passed, M failed`.
pub fn cargo_test(args: &[&str]) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count_of(rest, "passed");
                failed += count_of(rest, "failed");
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// The number before `word` in a `test result:` line ("ok. 7 passed; 0 failed; ...").
fn count_of(line: &str, word: &str) -> u64 {
    line.split(';')
        .filter_map(|part| {
            let mut it = part.split_whitespace().rev();
            if it.next() != Some(word) {
                return None;
            }
            it.next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Runs `cargo ARGS` with the nightly toolchain (the eBPF crate's), through rustup.
pub fn nightly_cargo(args: &[&str]) -> Result<()> {
    nightly_tool(Path::new("cargo"), args)
}

/// Runs `tool ARGS` under the nightly toolchain (its `cargo` and `rustc`).
pub fn nightly_tool(tool: &Path, args: &[&str]) -> Result<()> {
    nightly_tool_env(tool, args, &[])
}

/// [`nightly_tool`] with extra environment.
pub fn nightly_tool_env(tool: &Path, args: &[&str], env: &[(String, String)]) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly"])
        .arg(tool)
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
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
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
