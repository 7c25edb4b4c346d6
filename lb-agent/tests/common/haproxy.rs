//! HAProxy as a peer of a test: run inside one of the test's namespaces with a
//! config (checked with `haproxy -c` first) and files in a directory of its own;
//! killed and its directory removed on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use lb_agent::lab::Netns;

pub struct Haproxy {
    child: Child,
    pub dir: PathBuf,
}

impl Haproxy {
    /// Writes `files` (name, contents) into a fresh directory, then `config` with
    /// every `{dir}` replaced by that directory, and starts `haproxy -db` in `ns`.
    pub fn spawn(ns: &Netns, tag: &str, config: &str, files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("lb-haproxy-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("haproxy dir");
        for (name, contents) in files {
            std::fs::write(dir.join(name), contents).expect("haproxy file");
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config.replace("{dir}", &dir.display().to_string()))
            .expect("haproxy config");
        let check = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c refused the test's config:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "haproxy", "-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy");
        Self { child, dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `global` and `defaults` sections of the tests' HAProxy configs (mode http).
pub const HEAD: &str = "global\n  log stdout format raw local0\n\
                        defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  \
                        timeout server 5s\n";
