//! The config files in `examples/` pass `lb-agent check-config`, and a broken file is
//! refused by the same command with every error on its own line. The deployment
//! examples (systemd unit, static pod, Dockerfile) agree with the agent, the example
//! config and the capabilities `examples/README.md` documents.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use lb_agent::config::{self, defaults::CONFIG_FILE};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn check_config(file: &Path, json: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lb-agent"));
    cmd.args(["check-config", "--config"]).arg(file);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run lb-agent check-config")
}

#[test]
fn every_example_passes_check_config() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check_config(&path, false);
            assert!(
                out.status.success(),
                "{} failed check-config:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
            seen += 1;
        }
    }
    assert!(seen >= 2, "only {seen} example configs found");
}

#[test]
fn a_broken_file_is_refused_with_all_its_errors() {
    let dir = std::env::temp_dir().join(format!("lb-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        "[agent]\ninterfaces = [\"eth0\"]\n\n[[vip]]\nname = \"web\"\naddress = \"10.0.0.300\"\nport = 80\nforwarding = \"nat\"\n",
    )
    .expect("write config");
    let out = check_config(&file, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml:6: vip[0].address: got \"10.0.0.300\""),
        "{err}"
    );
    assert!(
        err.contains("broken.toml:4: vip[0].snat_address: missing"),
        "{err}"
    );
    assert!(err.contains("2 error(s), nothing applied"), "{err}");
    let out = check_config(&file, true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_config_states_each_nat_vips_capacity() {
    let dir = std::env::temp_dir().join(format!("lb-capacity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("lb.toml");
    let vip = |name: &str, port: u16| {
        format!(
            "[[vip]]\nname = \"{name}\"\naddress = \"198.18.1.10\"\nport = {port}\n\
             snat_addresses = [\"198.18.1.2\", \"198.18.1.3\"]\n[vip.timeouts]\n\
             tcp_time_wait = \"30s\"\n[[vip.backend]]\naddress = \"198.18.1.11\"\n\
             [[vip.backend]]\naddress = \"198.18.1.12\"\n"
        )
    };
    std::fs::write(
        &file,
        format!(
            "[agent]\ninterfaces = [\"eth0\"]\nflow_table_size = 65536\n\
             snat_port_range = \"10000-19999\"\n\n{}{}",
            vip("api", 6443),
            vip("web", 443)
        ),
    )
    .expect("write config");
    let out = check_config(&file, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "capacity of VIP api: 2 SNAT addresses x 10000 ports = 20000 concurrent flows per \
             backend (40000 for its 2 backends)"
        ),
        "{text}"
    );
    // 20,000 ports a backend, a closed flow keeping its port 30 s: 667 per second.
    assert!(text.contains("667/s when backends do"), "{text}");
    assert!(
        text.contains(
            "together take up to 80000 concurrent flows, more than flow_table_size 65536"
        ),
        "{text}"
    );
    assert!(text.contains("tcp_time_wait 30s is shorter"), "{text}");
    let out = check_config(&file, true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(v["nat_capacity"][1]["per_backend"], 20000);
    // A table smaller than one backend's ports is refused, naming the fix.
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("65536", "16384")).expect("write");
    let out = check_config(&file, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.flow_table_size: 16384 is smaller than VIP api's concurrent flows"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ---- The deployment examples: systemd unit, static pod, Dockerfile ----
//
// They are checked against each other, against the agent (its default config path,
// its subcommands) and against the capability set documented in examples/README.md,
// so none of them drifts. No YAML or Dockerfile parser is a dependency: the checks
// read the lines they need.

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The capabilities examples/README.md documents, without the `CAP_` prefix.
fn documented_capabilities() -> BTreeSet<String> {
    let readme = read("examples/README.md");
    let line = readme
        .lines()
        .find(|l| l.contains("with these capabilities:"))
        .expect("examples/README.md names the capabilities (\"with these capabilities:\")");
    let caps: BTreeSet<String> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|w| w.strip_prefix("CAP_"))
        .map(str::to_string)
        .collect();
    assert!(!caps.is_empty(), "no CAP_ names in {line:?}");
    caps
}

/// The example config the deployment files are written for.
fn k8s_example() -> config::Config {
    let path = root().join("examples/k8s-api.toml");
    config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Subcommands listed by `lb-agent --help`.
fn subcommands() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-agent"))
        .arg("--help")
        .output()
        .expect("run lb-agent --help");
    assert!(out.status.success(), "lb-agent --help failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: BTreeSet<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(names.contains("run"), "no commands found in:\n{text}");
    names
}

/// Whether `path` lies under one of `dirs`.
fn under(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| path.starts_with(d))
}

/// `key=value` settings of a systemd unit (comments and sections skipped), in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("unit line without '=': {l:?}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn systemd_unit_runs_the_agent_on_the_example_config_with_the_documented_capabilities() {
    let unit = read("examples/systemd/lb-agent.service");
    let settings = unit_settings(&unit);
    let all = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match all(key).as_slice() {
            [v] => v,
            other => panic!("the unit must set {key} once, found {other:?}"),
        }
    };

    let exec: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert!(
        exec[0].starts_with('/') && exec[0].ends_with("/lb-agent"),
        "ExecStart runs {:?}, not an absolute path to lb-agent",
        exec[0]
    );
    assert_eq!(exec.get(1), Some(&"run"), "ExecStart: {exec:?}");
    let config_at = exec.iter().position(|a| *a == "--config");
    let config_path = config_at
        .and_then(|i| exec.get(i + 1))
        .unwrap_or_else(|| panic!("ExecStart gives no --config: {exec:?}"));
    assert_eq!(
        *config_path, CONFIG_FILE,
        "the unit's config is not the one the CLI reads by default"
    );
    // The config path is filled from an example, as examples/README.md says.
    let readme = read("examples/README.md");
    let installed: Vec<&str> = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("install ") && l.contains(CONFIG_FILE))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with(".toml") && w.starts_with("examples/"))
        })
        .collect();
    assert!(
        !installed.is_empty(),
        "examples/README.md does not say which example becomes {CONFIG_FILE}"
    );
    for example in installed {
        let out = check_config(&root().join(example), false);
        assert!(
            out.status.success(),
            "{example}, installed as {CONFIG_FILE}, fails check-config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let kind = one("Type");
    assert!(
        kind == "simple" || kind == "exec",
        "Type={kind}: the agent does not speak sd_notify, use simple or exec"
    );
    // The agent's reload: `lb-agent reload` on the same file (which waits for the
    // result), or SIGHUP.
    let reload: Vec<&str> = one("ExecReload").split_whitespace().collect();
    assert!(
        one("ExecReload").contains("kill -HUP $MAINPID")
            || (reload.first() == exec.first()
                && reload.get(1) == Some(&"reload")
                && reload.windows(2).any(|w| w == ["--config", CONFIG_FILE])),
        "ExecReload must reload the agent (`{} reload --config {CONFIG_FILE}` or SIGHUP): {reload:?}",
        exec[0]
    );
    assert_eq!(one("KillSignal"), "SIGTERM");
    assert_eq!(one("Restart"), "always");
    assert_eq!(one("LimitMEMLOCK"), "infinity");
    assert!(one("After").contains("network-online.target"));
    assert!(one("Wants").contains("network-online.target"));
    assert!(all("User").iter().all(|u| *u == "root" || *u == "0"));

    let documented = documented_capabilities();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        for value in all(key) {
            let caps: BTreeSet<String> = value
                .split_whitespace()
                .map(|c| {
                    c.strip_prefix("CAP_")
                        .unwrap_or_else(|| panic!("{key}: {c:?} is not a CAP_ name"))
                        .to_string()
                })
                .collect();
            assert_eq!(caps, documented, "{key} differs from examples/README.md");
        }
    }
    assert_eq!(all("CapabilityBoundingSet").len(), 1);

    // Whatever the sandbox makes read-only, the pins and the control socket stay
    // writable: the defaults and the example's.
    if one("ProtectSystem") == "strict" {
        let writable: Vec<PathBuf> = all("ReadWritePaths")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(PathBuf::from)
            .collect();
        let k8s = k8s_example();
        for path in [
            Path::new(config::defaults::PIN_PATH),
            Path::new(config::defaults::CONTROL_SOCKET),
            k8s.agent.pin_path.as_path(),
            k8s.agent.control_socket.as_path(),
        ] {
            assert!(
                under(path, &writable),
                "{} is not under ReadWritePaths {writable:?}",
                path.display()
            );
        }
    }
}

/// Indentation of a YAML line, counting a list item's `- ` as indentation.
fn yaml_indent(line: &str) -> usize {
    let spaces = line.len() - line.trim_start().len();
    let rest = line.trim_start();
    if let Some(item) = rest.strip_prefix("- ") {
        spaces + 2 + (item.len() - item.trim_start().len())
    } else {
        spaces
    }
}

/// The line's `key: value`, list marker and comment removed.
fn yaml_pair(line: &str) -> Option<(&str, &str)> {
    let text = line.trim_start();
    let text = text.strip_prefix("- ").unwrap_or(text).trim_start();
    if text.starts_with('#') {
        return None;
    }
    let (k, v) = text.split_once(':')?;
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Some((k.trim(), v.trim()))
}

/// The lines nested under the first `key:` among `lines`.
fn yaml_block<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let at = lines
        .iter()
        .position(|l| yaml_pair(l).is_some_and(|(k, _)| k == key))
        .unwrap_or_else(|| panic!("no `{key}:` in the manifest"));
    let indent = yaml_indent(lines[at]);
    lines[at + 1..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .take_while(|l| yaml_indent(l) > indent)
        .collect()
}

/// Every value of `key:` among `lines`.
fn yaml_values<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| yaml_pair(l))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

fn yaml_value<'a>(lines: &[&'a str], key: &str) -> &'a str {
    match yaml_values(lines, key).as_slice() {
        [v] => v,
        other => panic!("expected one `{key}:`, found {other:?}"),
    }
}

/// `["a", b]` as a list of strings.
fn yaml_flow_list(value: &str) -> Vec<String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{value:?} is not a [flow, list]"));
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn static_pod_matches_the_agent_the_example_config_and_the_documented_capabilities() {
    let text = read("examples/kubernetes/lb-agent-static-pod.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let k8s = k8s_example();

    assert_eq!(yaml_value(&lines, "kind"), "Pod");
    assert_eq!(yaml_value(&lines, "hostNetwork"), "true");
    assert_eq!(
        yaml_value(&lines, "priorityClassName"),
        "system-node-critical"
    );

    let security = yaml_block(&lines, "securityContext");
    let privileged = yaml_value(&security, "privileged");
    assert_ne!(privileged, "true", "the pod must not be privileged");
    let caps = yaml_block(&security, "capabilities");
    let added: BTreeSet<String> = yaml_flow_list(yaml_value(&caps, "add"))
        .into_iter()
        .collect();
    assert_eq!(
        added,
        documented_capabilities(),
        "capabilities.add differs from examples/README.md"
    );
    assert_eq!(yaml_flow_list(yaml_value(&caps, "drop")), ["ALL"]);
    for propagation in yaml_values(&lines, "mountPropagation") {
        assert_ne!(
            propagation, "Bidirectional",
            "Bidirectional mount propagation is only allowed for privileged containers"
        );
    }

    let api = k8s.agent.api_listen;
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/ready")] {
        let block = yaml_block(&lines, probe);
        let get = yaml_block(&block, "httpGet");
        assert_eq!(yaml_value(&get, "path"), path, "{probe}");
        assert_eq!(
            yaml_value(&get, "port"),
            api.port().to_string(),
            "{probe}: not the port of api_listen {api} in examples/k8s-api.toml"
        );
        assert_eq!(
            yaml_value(&get, "host"),
            api.ip().to_string(),
            "{probe}: not the address of api_listen {api}"
        );
    }

    let args = yaml_flow_list(yaml_value(&lines, "args"));
    assert_eq!(args, ["run", "--config", CONFIG_FILE]);
    assert!(subcommands().contains(&args[0]));

    // The config's directory, its pins and its control socket are mounted from the
    // host, each at the same path (the CLI on the host uses the same config). The
    // host's cgroup v2 hierarchy is mounted read-only where the manifest tells the
    // config's socket_lb_cgroup to point.
    let mounts = yaml_block(&lines, "volumeMounts");
    let mounted: Vec<PathBuf> = yaml_values(&mounts, "mountPath")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let volumes = yaml_block(&lines, "volumes");
    let host_paths: Vec<PathBuf> = yaml_values(&volumes, "path")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(mounted.len(), host_paths.len(), "one volume per mount");
    let cgroup_line = text
        .lines()
        .find(|l| l.contains("socket_lb_cgroup = "))
        .expect("the manifest says what socket_lb_cgroup must be");
    let cgroup_at = cgroup_line
        .split('"')
        .nth(1)
        .map(PathBuf::from)
        .expect("a quoted path");
    for (m, h) in mounted.iter().zip(&host_paths) {
        if *m == cgroup_at {
            assert_eq!(
                h,
                Path::new("/sys/fs/cgroup"),
                "the host's cgroup hierarchy"
            );
        } else {
            assert_eq!(m, h, "each other mount is the same path on the host");
        }
    }
    assert!(
        mounted.contains(&cgroup_at),
        "{mounted:?} lacks {}",
        cgroup_at.display()
    );
    assert!(
        read("examples/k8s-api.toml")
            .contains(&format!("socket_lb_cgroup = \"{}\"", cgroup_at.display())),
        "examples/k8s-api.toml does not say what to set in a container"
    );
    let config_dir = Path::new(CONFIG_FILE).parent().expect("config directory");
    assert!(mounted.iter().any(|m| m == config_dir), "{mounted:?}");
    for path in [&k8s.agent.pin_path, &k8s.agent.control_socket] {
        assert!(
            under(path, &mounted),
            "{} (examples/k8s-api.toml) is not under a mount: {mounted:?}",
            path.display()
        );
    }
}

/// Dockerfile instructions with continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                out.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends in a continuation");
    out
}

fn json_args(value: &str) -> Vec<String> {
    serde_json::from_str(value).unwrap_or_else(|e| panic!("{value:?} is not a JSON array: {e}"))
}

#[test]
fn dockerfile_builds_the_ebpf_object_and_runs_the_agent() {
    let text = read("examples/docker/Dockerfile");
    let all = dockerfile_instructions(&text);
    let stages: Vec<&[(String, String)]> = {
        let starts: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, (op, _))| op == "FROM")
            .map(|(i, _)| i)
            .collect();
        assert!(starts.len() >= 2, "expected a build and a runtime stage");
        starts
            .iter()
            .enumerate()
            .map(|(n, &s)| &all[s..starts.get(n + 1).copied().unwrap_or(all.len())])
            .collect()
    };

    // Every file the build copies from the repository exists.
    for (op, args) in &all {
        if op != "COPY" || args.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = args
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        assert!(words.len() >= 2, "COPY {args}");
        for src in &words[..words.len() - 1] {
            assert!(
                root().join(src).exists(),
                "COPY source {src} does not exist in the repository"
            );
        }
    }

    let build = stages[0];
    let runs: Vec<&str> = build
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("rust-src") && r.contains("nightly")),
        "the build stage installs no nightly with rust-src: {runs:?}"
    );
    let ebpf = runs
        .iter()
        .position(|r| r.contains("cargo xtask build-ebpf"))
        .unwrap_or_else(|| panic!("the build stage never runs `cargo xtask build-ebpf`"));
    let release = runs
        .iter()
        .position(|r| {
            r.contains("cargo build") && r.contains("--release") && r.contains("lb-agent")
        })
        .unwrap_or_else(|| panic!("the build stage never builds lb-agent in release mode"));
    assert!(
        ebpf < release,
        "bpf-linker must be installed before the release build"
    );

    let last = stages[stages.len() - 1];
    let find = |op: &str| -> Vec<String> {
        let found: Vec<&String> = last
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a)
            .collect();
        match found.as_slice() {
            [one] => json_args(one),
            other => panic!("the final stage must have one {op}, found {other:?}"),
        }
    };
    assert_eq!(find("ENTRYPOINT"), ["lb-agent"]);
    let cmd = find("CMD");
    assert!(
        subcommands().contains(&cmd[0]),
        "CMD runs `lb-agent {}`, which `lb-agent --help` does not list",
        cmd[0]
    );
    assert_eq!(cmd, ["run", "--config", CONFIG_FILE]);
    let copied = last
        .iter()
        .find(|(op, args)| op == "COPY" && args.starts_with("--from"))
        .map(|(_, args)| {
            args.split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string()
        })
        .expect("the final stage copies the binary from the build stage");
    assert_eq!(
        copied, "/usr/local/bin/lb-agent",
        "ENTRYPOINT relies on PATH"
    );
}
