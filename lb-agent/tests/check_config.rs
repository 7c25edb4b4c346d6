//! The config files in `examples/` pass `lb-agent check-config`, and a broken file is
//! refused by the same command with every error on its own line.

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn check_config(file: &std::path::Path, json: bool) -> std::process::Output {
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
