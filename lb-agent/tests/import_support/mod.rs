//! What the import tests share: running `lb-agent import` and `check-config` on the
//! fixtures of `tests/fixtures/import/`, reading their warnings, and the real tools
//! as oracles (`haproxy -c`, `keepalived -t` in a namespace holding the interfaces
//! the file names).

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use lb_agent::config::{self, Config};

pub fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(dir)
}

/// A fresh directory for this test's output files, removed when the test ends.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("lb-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `lb-agent import ARGS` run in the fixture directory (so messages say `haproxy.cfg:12`).
pub fn import(dir: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lb-agent"))
        .arg("import")
        .args(args)
        .current_dir(fixtures(dir))
        .output()
        .expect("run lb-agent import")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The written config passes the real `lb-agent check-config`; parsed for asserts.
pub fn checked(file: &Path) -> Config {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-agent"))
        .args(["check-config", "--config"])
        .arg(file)
        .output()
        .expect("run lb-agent check-config");
    assert!(
        out.status.success(),
        "check-config refused {}:\n{}\n{}",
        file.display(),
        stderr(&out),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    config::load(file).unwrap_or_else(|e| panic!("{e}"))
}

/// Every `FILE:LINE: warning:` prefix printed, in order.
pub fn warned_at(err: &str) -> Vec<String> {
    err.lines()
        .filter_map(|l| l.split_once(": warning: ").map(|(at, _)| at.to_string()))
        .collect()
}

/// The warning printed for `at` containing `text`.
pub fn assert_warned(err: &str, at: &str, text: &str) {
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("{at}: warning: ")) && l.contains(text)),
        "no warning at {at} containing {text:?} in:\n{err}"
    );
}

/// `lb-agent import ARGS --output FILE` in fixture directory `dir`, which must
/// succeed: the config (checked by `check-config`), the warnings printed, the text.
pub fn imported(dir: &str, args: &[&str]) -> (Config, String, String) {
    let out = scratch(&format!("{}-{}", dir.replace('/', "-"), args.len()));
    let file = out.join("lb-agent.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--output", arg(&file)]);
    let o = import(dir, &all);
    let err = stderr(&o);
    assert!(
        o.status.success(),
        "import {args:?} in {dir} failed:\n{err}"
    );
    let config = checked(&file);
    let text = std::fs::read_to_string(&file).expect("output");
    (config, err, text)
}

/// `haproxy -c -f FILE` (a fixture path): asserts HAProxy accepts it, returns what
/// it printed.
pub fn haproxy_accepts(file: &Path) -> String {
    let o = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(file)
        .output()
        .expect("run haproxy -c (installed by .ci/run)");
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "haproxy -c refuses {}:\n{said}",
        file.display()
    );
    said
}

/// `keepalived -t -f FILE` run in a fresh namespace holding an interface of
/// each name the file's `interface` lines give (keepalived stops at an interface
/// it does not find): what keepalived reports about the file. keepalived exits 0
/// for a clean file, 5 when it reported something; anything else is a failure.
pub fn keepalived_says(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("fixture");
    let ns = lb_agent::lab::Netns::new("lbka").expect("namespace");
    let mut made: Vec<String> = Vec::new();
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let ["interface", name, ..] = w.as_slice()
            && !made.iter().any(|m| m == name)
        {
            // (No dummy driver on every kernel: a veth pair, its peer unused.)
            let peer = format!("kap{}", made.len());
            ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
                .expect("interface");
            ns.ip(&["link", "set", name, "up"]).expect("interface up");
            made.push(name.to_string());
        }
    }
    let o = Command::new("ip")
        .args(["netns", "exec", ns.name(), "keepalived", "-t", "-f"])
        .arg(file)
        .output()
        .expect("run keepalived -t (installed by .ci/run)");
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        matches!(o.status.code(), Some(0 | 5)),
        "keepalived -t failed on {} ({:?}):\n{said}",
        file.display(),
        o.status
    );
    assert!(
        !said.contains("Non-existent interface"),
        "the namespace lacks an interface:\n{said}"
    );
    said
}

/// Every fixture file with extension `ext` (the rendered ones; not the inputs that
/// are meant to fail, nor templates).
pub fn fixture_files(ext: &str) -> Vec<PathBuf> {
    let root = fixtures("");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("fixtures") {
        let dir = dir.expect("entry").path();
        if dir.file_name().is_some_and(|n| n == "errors") || !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("fixture dir") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e == ext) {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

/// Each routed VIP in one line: name, address, route_by, otherwise, timeouts,
/// limit, and its pools as `name=[names]send_proxy`.
pub fn routed_summary(c: &Config) -> Vec<String> {
    c.routed
        .iter()
        .map(|r| {
            let pools: Vec<String> = r
                .pools
                .iter()
                .map(|p| {
                    let names: Vec<String> = p.names.iter().map(ToString::to_string).collect();
                    format!("{}=[{}]{:?}", p.name, names.join(" "), p.send_proxy)
                })
                .collect();
            format!(
                "{} {}:{} {:?} otherwise={:?} inspect={:?} connect={:?} idle={:?} max={} {}",
                r.name,
                r.address,
                r.port,
                r.by,
                r.otherwise.map(|i| r.pools[i].name.as_str()),
                r.inspect_timeout,
                r.connect_timeout,
                r.idle_timeout,
                r.max_connections,
                pools.join(" ")
            )
        })
        .collect()
}
