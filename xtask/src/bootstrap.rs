//! Installs what the eBPF build needs, on a fresh machine, with no manual step:
//! the nightly's rust-src (for `-Z build-std=core`) and bpf-linker built against that
//! nightly's own libLLVM, in the project-local cache `.cache/`.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{output, root, run, step};

/// The toolchain the eBPF crate builds with (the one installed on these machines).
const NIGHTLY: &str = "nightly";
/// bpf-linker release that builds against LLVM 22 with the `llvm-22` feature.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// rust-src for the nightly, then bpf-linker.
pub fn ebpf_toolchain() -> Result<()> {
    rust_src()?;
    bpf_linker()
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .context("the nightly toolchain is required for the eBPF crate")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        step("rust-src for nightly: present");
        return Ok(());
    }
    step("rust-src for nightly: installing");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// `.cache/bpf-linker/bin`, where build.rs of lb-agent looks for bpf-linker.
pub fn linker_bin() -> PathBuf {
    root().join(".cache").join("bpf-linker").join("bin")
}

fn bpf_linker() -> Result<()> {
    let bin = linker_bin();
    if bin.join("bpf-linker").exists() {
        step("bpf-linker: present in .cache");
        return Ok(());
    }
    let sysroot =
        output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    // The file name differs per toolchain (libLLVM.so.22.1-rust-1.97.0-nightly).
    let llvm = fs::read_dir(&lib)
        .with_context(|| format!("cannot list {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .with_context(|| format!("no libLLVM.so.*-rust-* in {}", lib.display()))?;
    let name = llvm
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let major = name
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or_default();
    if major.parse::<u32>().is_err() {
        bail!("cannot tell the LLVM version of {}", llvm.display());
    }
    let prefix = root().join(".cache").join("llvm");
    let link_dir = prefix.join("lib");
    fs::create_dir_all(&link_dir)?;
    let link = link_dir.join("libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), llvm.display()))?;
    step(&format!(
        "bpf-linker {BPF_LINKER_VERSION}: building against the nightly's LLVM {major} (about a minute)"
    ));
    let install_root = root().join(".cache").join("bpf-linker");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
            "--root",
        ])
        .arg(&install_root)
        .env("LLVM_PREFIX", &prefix))
}

/// cargo-fuzz, installed into `.cache/cargo-fuzz` once; returns the binary.
pub fn cargo_fuzz() -> Result<PathBuf> {
    let root_dir = root().join(".cache").join("cargo-fuzz");
    let bin = root_dir.join("bin").join("cargo-fuzz");
    if bin.exists() {
        step("cargo-fuzz: present in .cache");
        return Ok(bin);
    }
    step("cargo-fuzz: installing into .cache (about half a minute)");
    run(Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked", "--root"])
        .arg(&root_dir))?;
    Ok(bin)
}

/// Mounts bpffs at /sys/fs/bpf unless it is there already.
pub fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        step("bpffs: mounted");
        return Ok(());
    }
    step("bpffs: mounting at /sys/fs/bpf");
    fs::create_dir_all("/sys/fs/bpf").ok();
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// The benchmark's peers and servers (Debian packages): installed with apt-get when
/// one is missing.
pub fn bench_tools() -> Result<()> {
    const TOOLS: [(&str, &str); 5] = [
        ("haproxy", "haproxy"),
        ("nft", "nftables"),
        ("iperf3", "iperf3"),
        ("nginx", "nginx-light"),
        ("taskset", "util-linux"),
    ];
    let on_path = |bin: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(bin).exists())
    };
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        step("benchmark tools: haproxy, nftables, iperf3, nginx present");
        return Ok(());
    }
    step(&format!(
        "benchmark tools: installing {}",
        missing.join(" ")
    ));
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
