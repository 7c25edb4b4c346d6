//! `cargo xtask dist`: what is shipped, in `target/dist/`.
//!
//! - `lb-agent`: the release binary (`--no-default-features`: no lab, no demo), the
//!   XDP object embedded by its build script; static (musl), see [`binary`].
//! - `lb-agent_<version>_<arch>.deb`, built with `dpkg-deb` from a staged tree:
//!   `/usr/sbin/lb-agent`, the systemd unit (examples/systemd/lb-agent.service, the
//!   one unit of the project), the default config (dist/lb-agent.toml, a conffile),
//!   man pages and bash/zsh/fish completions written by the binary itself from its
//!   clap definition (`lb-agent generate-files`), docs, and the maintainer scripts of
//!   dist/debian/.
//! - `lb-agent_<version>_<arch>-rootfs.tar`: a container image's root file system
//!   (`docker import` / `podman import`): the binary, the default config, CA roots.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap,
    cmd::{output, root, run, step},
};

/// Where the package puts the binary (a daemon for root: sbin).
pub const BIN_PATH: &str = "usr/sbin/lb-agent";
/// The unit, where Debian packages put theirs (usr-merged /lib/systemd/system).
pub const UNIT_PATH: &str = "usr/lib/systemd/system/lb-agent.service";
/// The config the unit and the CLI read by default (lb-config's `CONFIG_FILE`).
pub const CONFIG_PATH: &str = "etc/lb-agent/lb-agent.toml";
/// The unit in the source tree (also the documented example).
const UNIT_SOURCE: &str = "examples/systemd/lb-agent.service";
/// The default config in the source tree.
const CONFIG_SOURCE: &str = "dist/lb-agent.toml";
/// Maintainer scripts, in dist/debian/.
const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];
/// Docs installed under /usr/share/doc/lb-agent.
const DOCS: [&str; 5] = [
    "docs/config.md",
    "docs/agent.md",
    "docs/operations.md",
    "docs/vrrp.md",
    "docs/routing.md",
];
const PACKAGE: &str = "lb-agent";
const MAINTAINER: &str = "lb maintainers <lb-maintainers@example.org>";
/// The workspace version (xtask's is `version.workspace = true`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `target/dist/` (under `CARGO_TARGET_DIR` when set).
pub fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The .deb's file name for this version on this machine's architecture.
pub fn deb_name(arch: &str) -> String {
    format!("{PACKAGE}_{VERSION}_{arch}.deb")
}

/// The machine's Debian architecture (`dpkg --print-architecture`).
pub fn debian_arch() -> Result<String> {
    Ok(output(Command::new("dpkg").arg("--print-architecture"))
        .context("dpkg is needed to build the Debian package")?
        .trim()
        .to_string())
}

/// Builds everything; returns the package.
pub fn build() -> Result<PathBuf> {
    let arch = debian_arch()?;
    let out = dist_dir();
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    bootstrap::ebpf_toolchain()?;

    let built = binary::build()?;
    let binary = out.join("lb-agent");
    copy(&built.path, &binary, 0o755)?;
    step(&format!(
        "binary: {} (static, {}, {:.1} MiB)",
        binary.display(),
        built.target,
        fs::metadata(&binary)?.len() as f64 / 1048576.0
    ));

    step("checking the default config with the binary (lb-agent check-config)");
    run(Command::new(&binary)
        .args(["check-config", "--config"])
        .arg(root().join(CONFIG_SOURCE)))
    .with_context(|| format!("{CONFIG_SOURCE} must pass check-config"))?;

    step("man pages and completions from the binary's clap definition");
    let generated = out.join("generated");
    let _ = fs::remove_dir_all(&generated);
    run(Command::new(&binary)
        .args(["generate-files", "--out"])
        .arg(&generated))?;

    let deb = package(&arch, &binary, &generated, &out)?;
    let rootfs = rootfs(&arch, &binary, &out)?;
    step(&format!(
        "done: {}, {}, {}",
        binary.display(),
        deb.display(),
        rootfs.display()
    ));
    Ok(deb)
}

/// Stages the package tree and builds it with `dpkg-deb`, then checks what it holds.
fn package(arch: &str, binary: &Path, generated: &Path, out: &Path) -> Result<PathBuf> {
    step("staging the Debian package");
    let stage = out.join("deb");
    let _ = fs::remove_dir_all(&stage);
    let src = root();
    copy(binary, &stage.join(BIN_PATH), 0o755)?;
    copy(&src.join(UNIT_SOURCE), &stage.join(UNIT_PATH), 0o644)?;
    // The file may come to hold a sync key or the status page's password.
    copy(&src.join(CONFIG_SOURCE), &stage.join(CONFIG_PATH), 0o640)?;
    let man_dir = stage.join("usr/share/man/man8");
    for page in read_dir(&generated.join("man"))? {
        let name = file_name(&page)?;
        let to = man_dir.join(&name);
        copy(&page, &to, 0o644)?;
        // Debian's man pages are compressed, without a name or time stamp.
        run(Command::new("gzip").args(["-9n"]).arg(&to))?;
    }
    let completions = generated.join("completions");
    for (file, dir) in [
        (
            "lb-agent.bash",
            "usr/share/bash-completion/completions/lb-agent",
        ),
        ("_lb-agent", "usr/share/zsh/vendor-completions/_lb-agent"),
        (
            "lb-agent.fish",
            "usr/share/fish/vendor_completions.d/lb-agent.fish",
        ),
    ] {
        copy(&completions.join(file), &stage.join(dir), 0o644)?;
    }
    let doc = stage.join("usr/share/doc").join(PACKAGE);
    for d in DOCS {
        let from = src.join(d);
        copy(&from, &doc.join(file_name(&from)?), 0o644)?;
    }
    write(&doc.join("copyright"), &copyright(), 0o644)?;

    let debian = stage.join("DEBIAN");
    for script in SCRIPTS {
        copy(
            &src.join("dist/debian").join(script),
            &debian.join(script),
            0o755,
        )?;
    }
    write(
        &debian.join("conffiles"),
        &format!("/{CONFIG_PATH}\n"),
        0o644,
    )?;
    write(&debian.join("md5sums"), &md5sums(&stage)?, 0o644)?;
    let installed_kib = tree_size(&stage, &debian)?.div_ceil(1024);
    write(
        &debian.join("control"),
        &control(arch, installed_kib),
        0o644,
    )?;

    let deb = out.join(deb_name(arch));
    step(&format!("dpkg-deb --build {}", deb.display()));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zxz"])
        .arg(&stage)
        .arg(&deb))?;
    check_package(&deb)?;
    Ok(deb)
}

/// `dpkg-deb --info` and `--contents`, shown, and what must be in them asserted.
fn check_package(deb: &Path) -> Result<()> {
    step("dpkg-deb --info");
    let info = output(Command::new("dpkg-deb").arg("--info").arg(deb))?;
    eprint!("{info}");
    step("dpkg-deb --contents");
    let contents = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    eprint!("{contents}");
    let field = |name: &str| -> Result<String> {
        Ok(
            output(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))?
                .trim()
                .to_string(),
        )
    };
    if field("Version")? != VERSION || field("Package")? != PACKAGE {
        bail!("{}: wrong Package or Version", deb.display());
    }
    let listed: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for want in [
        BIN_PATH,
        UNIT_PATH,
        CONFIG_PATH,
        "usr/share/man/man8/lb-agent.8.gz",
        "usr/share/man/man8/lb-agent-run.8.gz",
        "usr/share/bash-completion/completions/lb-agent",
        "usr/share/zsh/vendor-completions/_lb-agent",
        "usr/share/fish/vendor_completions.d/lb-agent.fish",
        "usr/share/doc/lb-agent/copyright",
    ] {
        if !listed.contains(&format!("./{want}").as_str()) {
            bail!("{} does not hold /{want}", deb.display());
        }
    }
    if !info.contains(&format!(" /{CONFIG_PATH}")) || !info.contains("postinst") {
        bail!(
            "{}: the config is not a conffile, or postinst is missing",
            deb.display()
        );
    }
    Ok(())
}

/// No `Depends:`: the binary is static.
fn control(arch: &str, installed_kib: u64) -> String {
    let mut c = format!(
        "Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: {arch}\n\
         Maintainer: {MAINTAINER}\nInstalled-Size: {installed_kib}\n"
    );
    c.push_str(
        "Recommends: ca-certificates\n\
         Section: net\n\
         Priority: optional\n\
         Description: XDP L4 load balancer agent\n \
         lb-agent loads an XDP program that balances virtual IPs (TCP and UDP, IPv4\n \
         and IPv6) over backends by Maglev consistent hashing, with full NAT or\n \
         direct server return, health-checks the backends (tcp, tls, http, https),\n \
         and elects the VIP's holder with VRRP (interoperable with keepalived).\n \
         Restarts and upgrades keep connections: the data plane is pinned in bpffs\n \
         and re-adopted.\n \
         .\n \
         The service is not started on installation: edit\n \
         /etc/lb-agent/lb-agent.toml, then systemctl enable --now lb-agent.\n",
    );
    c
}

fn copyright() -> String {
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
     Upstream-Name: lb\n\n\
     Files: *\n\
     License: MIT or Apache-2.0\n \
     On Debian systems the Apache License 2.0 is in\n \
     /usr/share/common-licenses/Apache-2.0.\n"
        .to_string()
}

/// `md5sum` of every file under `stage` but DEBIAN/ and the conffile, paths relative.
fn md5sums(stage: &Path) -> Result<String> {
    let files: Vec<String> = walk(stage)?
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(stage)
                .ok()
                .map(|r| r.to_string_lossy().into_owned())
        })
        .filter(|r| !r.starts_with("DEBIAN/") && r != CONFIG_PATH)
        .collect();
    output(Command::new("md5sum").args(&files).current_dir(stage))
}

/// Bytes of the regular files under `dir`, leaving out `skip`.
fn tree_size(dir: &Path, skip: &Path) -> Result<u64> {
    let mut total = 0;
    for p in walk(dir)? {
        if !p.starts_with(skip) {
            total += fs::metadata(&p)?.len();
        }
    }
    Ok(total)
}

/// Every regular file under `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for p in read_dir(&d)? {
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The container root file system, as a directory and a tarball of it.
/// The binary is static: it needs no library in the image.
fn rootfs(arch: &str, binary: &Path, out: &Path) -> Result<PathBuf> {
    step("container root file system");
    let dir = out.join("rootfs");
    let _ = fs::remove_dir_all(&dir);
    copy(binary, &dir.join(BIN_PATH), 0o755)?;
    copy(&root().join(CONFIG_SOURCE), &dir.join(CONFIG_PATH), 0o640)?;
    // CA roots for https checks that verify (rustls-native-certs reads this file).
    let roots = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if roots.exists() {
        copy(roots, &dir.join("etc/ssl/certs/ca-certificates.crt"), 0o644)?;
    } else {
        step("  (no /etc/ssl/certs/ca-certificates.crt here: the rootfs has no CA roots)");
    }
    // Mount points, /run for the control socket, /tmp as on any system.
    for d in ["sys/fs/bpf", "proc", "dev", "run", "tmp"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let tar = out.join(format!("{PACKAGE}_{VERSION}_{arch}-rootfs.tar"));
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg("."))?;
    let listing = output(Command::new("tar").arg("-tvf").arg(&tar))?;
    eprint!("{listing}");
    // Self-contained: the binary runs in it alone (chroot needs root).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        step("  lb-agent check-config chrooted into the root file system");
        run(Command::new("chroot")
            .arg(&dir)
            .args([&format!("/{BIN_PATH}"), "check-config", "--config"])
            .arg(format!("/{CONFIG_PATH}")))?;
    }
    Ok(tar)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no file name", p.display()))
}

/// Copies `from` to `to` (parents created) with `mode`.
fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(to, text).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

/// The release binary: static, for any Linux of this architecture.
///
/// Only the gnu target's std is installed (and no other can be downloaded), so the
/// musl one is built from the nightly's rust-src (`-Z build-std`), linked by Debian's
/// `musl-gcc` (musl-tools) against its libc.a, with `-C link-self-contained=no`: the
/// crt objects and libunwind.a that rustup's musl std brings are not here. std links
/// `-lunwind` on musl: LLVM's libunwind, whose sources rust-src carries, is compiled
/// here against musl's headers, as Rust's own build does for its musl targets. (gcc's
/// libgcc_eh.a does not serve: Debian's calls glibc's `_dl_find_object`.)
pub mod binary {
    use std::{
        fs,
        path::{Path, PathBuf},
        process::Command,
    };

    use anyhow::{Result, bail};

    use super::target_dir;
    use crate::cmd::{self, output, run, step};

    pub struct Built {
        pub path: PathBuf,
        /// The Rust target it was built for (`x86_64-unknown-linux-musl`).
        pub target: String,
    }

    pub fn build() -> Result<Built> {
        let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
        musl_tools()?;
        let shim = target_dir().join("dist").join("musl-unwind");
        libunwind(&shim)?;

        step(&format!(
            "building lb-agent for {target}: release, no lab, std built from source with the \
             nightly (several minutes the first time; cargo shows its progress)"
        ));
        let env_target = target.replace('-', "_");
        let upper = env_target.to_uppercase();
        let env = [
            (format!("CC_{env_target}"), "musl-gcc".to_string()),
            (
                format!("CARGO_TARGET_{upper}_LINKER"),
                "musl-gcc".to_string(),
            ),
            (
                format!("CARGO_TARGET_{upper}_RUSTFLAGS"),
                // Static, not static-pie: musl-gcc's specs always name a dynamic
                // linker and start with Scrt1.o, which leaves a static-pie binary
                // with an interpreter and unrelocated.
                format!(
                    "-C target-feature=+crt-static -C relocation-model=static \
                     -C link-self-contained=no -L native={}",
                    shim.display()
                ),
            ),
        ];
        cmd::nightly_tool_env(
            Path::new("cargo"),
            &[
                "build",
                "--release",
                "--locked",
                "--package",
                "lb-agent",
                "--no-default-features",
                "--target",
                &target,
                "-Z",
                "build-std=std,panic_abort",
            ],
            &env,
        )?;
        let path = target_dir().join(&target).join("release").join("lb-agent");
        // Static: no program interpreter, no shared library.
        let headers = output(Command::new("readelf").args(["-l", "-d"]).arg(&path))?;
        if headers.contains("INTERP") || headers.contains("(NEEDED)") {
            bail!("{} is not static:\n{headers}", path.display());
        }
        Ok(Built { path, target })
    }

    /// `dir/libunwind.a`: LLVM's libunwind from the nightly's rust-src, compiled with
    /// musl's headers (the flags of Rust's own build of it).
    fn libunwind(dir: &Path) -> Result<()> {
        let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
        let src =
            PathBuf::from(sysroot.trim()).join("lib/rustlib/src/rust/src/llvm-project/libunwind");
        if !src.join("src").is_dir() {
            bail!(
                "no libunwind sources in {} (rust-src of the nightly)",
                src.display()
            );
        }
        step("libunwind for musl: compiling LLVM's from rust-src");
        let gcc_include = output(Command::new("gcc").arg("-print-file-name=include"))?;
        let objects = dir.join("obj");
        fs::create_dir_all(&objects)?;
        let common = [
            "-nostdinc".to_string(),
            "-isystem".into(),
            "/usr/include/x86_64-linux-musl".replace("x86_64", std::env::consts::ARCH),
            "-isystem".into(),
            gcc_include.trim().to_string(),
            format!("-I{}", src.join("include").display()),
            "-O2".into(),
            "-fPIC".into(),
            "-funwind-tables".into(),
            "-fvisibility=hidden".into(),
            "-fstrict-aliasing".into(),
            "-D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS".into(),
            "-D_LIBUNWIND_IS_NATIVE_ONLY".into(),
            "-DNDEBUG".into(),
        ];
        let mut built = Vec::new();
        for (file, compiler, extra) in [
            ("UnwindLevel1.c", "gcc", &["-std=c99"][..]),
            ("UnwindLevel1-gcc-ext.c", "gcc", &["-std=c99"][..]),
            ("Unwind-sjlj.c", "gcc", &["-std=c99"][..]),
            (
                "libunwind.cpp",
                "g++",
                &["-nostdinc++", "-std=c++11", "-fno-exceptions", "-fno-rtti"][..],
            ),
            (
                "Unwind-EHABI.cpp",
                "g++",
                &["-nostdinc++", "-std=c++11", "-fno-exceptions", "-fno-rtti"][..],
            ),
            ("UnwindRegistersRestore.S", "gcc", &[][..]),
            ("UnwindRegistersSave.S", "gcc", &[][..]),
        ] {
            let object = objects.join(format!("{file}.o"));
            run(Command::new(compiler)
                .args(&common)
                .args(extra)
                .arg("-c")
                .arg(src.join("src").join(file))
                .arg("-o")
                .arg(&object))?;
            built.push(object);
        }
        let archive = dir.join("libunwind.a");
        let _ = fs::remove_file(&archive);
        run(Command::new("ar").arg("rcs").arg(&archive).args(&built))
    }

    /// musl-gcc (Debian's musl-tools) and g++ (libunwind), installed when missing.
    fn musl_tools() -> Result<()> {
        let missing: Vec<&str> = [("musl-gcc", "musl-tools"), ("g++", "g++")]
            .into_iter()
            .filter(|(bin, _)| output(Command::new(bin).arg("--version")).is_err())
            .map(|(_, package)| package)
            .collect();
        if missing.is_empty() {
            step("musl-tools, g++: present");
            return Ok(());
        }
        step(&format!("installing {} (apt-get)", missing.join(" ")));
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    }
}
