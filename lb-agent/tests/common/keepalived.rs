//! A real keepalived (the Debian package) as a VRRP peer in a lab node's namespace:
//! VRRP only, in the foreground, its log kept in the node's directory.

use std::{
    fs,
    process::{Child, Command, Stdio},
};

use super::Node;

pub struct Keepalived {
    child: Option<Child>,
    pub log: std::path::PathBuf,
}

impl Keepalived {
    /// Starts keepalived on `node` with `conf` (the node's agent must not run).
    pub fn start(node: &Node, conf: &str) -> Self {
        let path = node.dir.join("keepalived.conf");
        fs::write(&path, conf).expect("keepalived.conf");
        let log = node.dir.join("keepalived.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.lb.ns.name()))
            .args([
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
            ])
            .arg("--use-file")
            .arg(&path)
            .arg("--pid")
            .arg(node.dir.join("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(node.dir.join("keepalived-vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("run keepalived (apt-get install keepalived)");
        Self {
            child: Some(child),
            log,
        }
    }

    /// SIGTERM: keepalived leaves with priority 0 and removes its addresses.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// SIGKILL to every keepalived process of `node` at once (the parent and its
    /// VRRP child: killing the parent alone lets the child leave gracefully).
    pub fn kill9(&mut self, node: &Node) {
        // `ip netns pids`: only this node's processes (pidof would see every node's).
        let pids =
            lb_agent::lab::run_cmd(&["ip", "netns", "pids", node.lb.ns.name()]).unwrap_or_default();
        let mut args = vec!["-9".to_string()];
        args.extend(
            pids.split_whitespace()
                .filter(|p| {
                    fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "keepalived")
                })
                .map(str::to_string),
        );
        if args.len() > 1 {
            let _ = Command::new("kill").args(&args).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A keepalived.conf for one instance.
pub fn conf(version: u8, priority: u8, advert_int: &str, vip: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|p| {
            format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"
            )
        })
        .unwrap_or_default();
    format!(
        "global_defs {{\n    router_id lab\n    vrrp_version {version}\n}}\n\
         vrrp_instance vi_web {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    advert_int {advert_int}\n{auth}    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n"
    )
}
