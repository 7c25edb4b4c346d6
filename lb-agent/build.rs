//! Builds the XDP object (lb-ebpf) with the nightly toolchain and bpf-linker, into
//! OUT_DIR, where `lb_agent::dataplane` embeds it from.
//!
//! bpf-linker is looked for on PATH and in the project cache that
//! `cargo xtask build-ebpf` fills (`.cache/bpf-linker/bin`).

use std::{env, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow::anyhow!("lb-agent has no parent directory"))?;
    let linker_bin = root.join(".cache").join("bpf-linker").join("bin");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("lb-common").display()
    );
    if linker_bin.join("bpf-linker").exists() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![linker_bin];
        dirs.extend(env::split_paths(&path));
        // SAFETY: build scripts are single-threaded here; nothing else reads the
        // environment concurrently.
        unsafe { env::set_var("PATH", env::join_paths(dirs)?) };
    }
    let ebpf_dir = root.join("lb-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lb-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .map_err(|e| anyhow::anyhow!("building the XDP program failed (run `cargo xtask build-ebpf` once to install its toolchain): {e:#}"))
}
