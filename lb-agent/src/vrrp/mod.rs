//! VRRP (RFC 5798 v3, RFC 3768 v2), interoperable with keepalived: the wire codec,
//! the state machine, sockets, addresses (rtnetlink), announcements, trackers, and
//! the set of instances the agent runs.

pub mod announce;
pub mod iface;
pub mod instance;
pub mod machine;
#[cfg(test)]
mod machine_tests;
pub mod net;
pub mod netlink;
pub mod packet;
#[cfg(test)]
mod packet_tests;
pub mod priority;
pub mod track;

use std::sync::Arc;

use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use crate::{config::VrrpConfig, status::Status};
pub use instance::InstanceStatus;

/// The agent's VRRP instances.
pub struct Vrrp {
    instances: Vec<(mpsc::Sender<instance::Command>, JoinHandle<()>)>,
    statuses: Vec<watch::Receiver<InstanceStatus>>,
}

impl Vrrp {
    /// Starts every instance of `configs` and its trackers (which follow `status`).
    pub fn start(configs: &[VrrpConfig], status: watch::Receiver<Arc<Status>>) -> Self {
        let mut instances = Vec::new();
        let mut statuses = Vec::new();
        for cfg in configs {
            let (tx, rx) = mpsc::channel(16);
            let (st_tx, st_rx) = watch::channel(InstanceStatus {
                name: cfg.name.clone(),
                state: "INIT".into(),
                ..InstanceStatus::default()
            });
            let task = tokio::spawn(instance::run(cfg.clone(), rx, st_tx));
            tokio::spawn(track::follow(cfg.clone(), status.clone(), tx.clone()));
            instances.push((tx, task));
            statuses.push(st_rx);
        }
        Self {
            instances,
            statuses,
        }
    }

    /// Handles on every instance's status (for the agent's snapshots).
    pub fn watchers(&self) -> Vec<watch::Receiver<InstanceStatus>> {
        self.statuses.clone()
    }

    /// Graceful stop: masters send priority 0 and remove their addresses.
    pub async fn stop(self) {
        for (tx, task) in self.instances {
            let (done, wait) = oneshot::channel();
            if tx.send(instance::Command::Stop(done)).await.is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
            }
            task.abort();
        }
    }
}
