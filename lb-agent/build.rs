//! Builds the XDP object and the test peer program (lb-ebpf's binaries) with the
//! nightly toolchain and bpf-linker, into OUT_DIR, where `lb_agent::dataplane`
//! embeds them from.
//!
//! Quietly: a build script can only speak to the person building in `warning:`
//! lines, so the sub-build's progress (dozens of `Compiling core ...`) is not
//! echoed; cargo's own progress bar shows the build script running. The compiler's
//! warnings are passed on, and when the sub-build fails, everything it printed.
//!
//! bpf-linker is looked for on PATH and in the project cache that
//! `cargo xtask build-ebpf` fills (`.cache/bpf-linker/bin`).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The programs' log writers (lb-ebpf/src/log.rs): exported, so each is a global BPF
/// function the verifier checks once on its own.
const LOG_FUNCTIONS: [&str; 3] = [
    "lb_log_insert_failed",
    "lb_log_internal",
    "lb_log_snat_exhausted",
];

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .context("lb-agent has no parent directory")?;
    let ebpf = root.join("lb-ebpf");
    for dir in [root.join("lb-common"), ebpf.clone()] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let mut path = vec![root.join(".cache").join("bpf-linker").join("bin")];
    path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The BPF target of the host's byte order, and the host's architecture as
    // the `bpf_target_arch` cfg aya-ebpf reads.
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN")?.as_str() {
        "big" => "bpfeb-unknown-none",
        _ => "bpfel-unknown-none",
    };
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let target_dir = out.join("ebpf-target");
    // Without the agent's `lab` feature, the object holds only what the agent loads
    // (no `lb_floor`), and the `lb-peer` object is not built.
    let lab = env::var_os("CARGO_FEATURE_LAB").is_some();
    let run = Command::new("rustup")
        .args(["run", "nightly", "cargo", "build", "--package", "lb-ebpf"])
        .args(if lab { &[][..] } else { &["--no-default-features"][..] })
        .args(["--bins", "--release", "--target", target])
        .args(["-Z", "build-std=core", "--color=never"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&ebpf)
        .env("PATH", env::join_paths(path)?)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!(
                "--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Clink-arg=--export={}",
                LOG_FUNCTIONS.join(",")
            ),
        )
        // The host build's compiler settings are not the sub-build's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .output()
        .context("running `rustup run nightly cargo build` for lb-ebpf (run `cargo xtask build-ebpf` once to install the toolchain)")?;
    let said = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        // The errors in full, without cargo's progress lines.
        for line in said.lines().filter(|l| !is_progress(l)) {
            println!("cargo:warning={line}");
        }
        bail!(
            "building the XDP program failed ({}): its output is above (run `cargo xtask build-ebpf` once to install its toolchain)",
            run.status
        );
    }
    // Compiler warnings, whole (with their source lines), without the progress.
    if said.lines().any(|l| l.starts_with("warning")) {
        for line in said.lines().filter(|l| !is_progress(l)) {
            println!("cargo:warning={line}");
        }
    }
    let built = target_dir.join(target).join("release");
    if !lab {
        // A copy left by a build with the lab: not part of this one.
        let _ = std::fs::remove_file(out.join("lb-peer"));
    }
    for bin in bins(&ebpf, lab)? {
        std::fs::copy(built.join(&bin), out.join(&bin))
            .with_context(|| format!("copying {bin} from {}", built.display()))?;
    }
    Ok(())
}

/// One of cargo's progress lines (`Compiling core ...`, `Finished ...`).
fn is_progress(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or_default();
    line.starts_with(' ')
        && matches!(
            word,
            "Compiling"
                | "Finished"
                | "Blocking"
                | "Updating"
                | "Locking"
                | "Downloading"
                | "Downloaded"
        )
}

/// lb-ebpf's binaries: `lb-ebpf`, and with `lab` one per file of `src/bin/`.
fn bins(ebpf: &Path, lab: bool) -> anyhow::Result<Vec<String>> {
    let mut out = vec!["lb-ebpf".to_string()];
    if !lab {
        return Ok(out);
    }
    for e in std::fs::read_dir(ebpf.join("src").join("bin"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs")
            && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
        {
            out.push(stem.to_string());
        }
    }
    Ok(out)
}
