//! Busy time of one CPU from `/proc/stat`: what the load balancer's core spent.

use anyhow::{Context as _, Result};

/// Busy seconds of `cpu` since boot (user, nice, system, irq, softirq, steal).
pub fn busy_seconds(cpu: usize) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let name = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&name))
        .with_context(|| format!("no {name}in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("/proc/stat: {line}"))?;
    let field = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Ok(busy as f64 / clock_ticks()?)
}

/// USER_HZ, the unit of `/proc/stat`.
fn clock_ticks() -> Result<f64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("getconf CLK_TCK")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK output")
}

/// Measures the busy time of `cpu` over `f`.
pub fn measure<T>(cpu: usize, f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let before = busy_seconds(cpu)?;
    let out = f()?;
    Ok((out, busy_seconds(cpu)? - before))
}
