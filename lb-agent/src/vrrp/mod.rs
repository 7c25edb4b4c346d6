//! VRRP (RFC 5798 v3, RFC 3768 v2), interoperable with keepalived: the wire codec,
//! the state machine, sockets, addresses (rtnetlink), announcements, trackers, and
//! the set of instances the agent runs.

pub mod announce;
pub mod iface;
pub mod instance;
pub mod net;
pub mod resume;
pub mod track;

// The codec, the state machine and tracker priorities: a crate of their own
// (`lb-agent/vrrp`), buildable without the eBPF toolchain.
use std::sync::Arc;

pub use instance::{InstanceStatus, Taking};
pub use lb_vrrp::{machine, packet, priority};
pub use resume::Record;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{config::VrrpConfig, status::Status, tasks::Tasks};

/// How long an instance has to leave (send its last advert, remove its addresses)
/// before its task is ended anyway.
const LEAVE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// The agent's VRRP instances.
pub struct Vrrp {
    /// Each instance's commands.
    instances: Vec<mpsc::Sender<instance::Command>>,
    /// The instances' and their trackers' tasks.
    tasks: Tasks,
    statuses: Vec<watch::Receiver<InstanceStatus>>,
    /// Each instance's tracker results (for a restart record).
    trackers: Vec<watch::Receiver<Vec<bool>>>,
    configs: Vec<VrrpConfig>,
}

impl Vrrp {
    /// Starts every instance of `configs` and its trackers (which follow `status`) on
    /// a child of `tasks`. An instance `resume` says was master a moment ago resumes
    /// as master, its trackers as they were.
    pub fn start(
        configs: &[VrrpConfig],
        status: watch::Receiver<Arc<Status>>,
        resume: Option<&Record>,
        taking: mpsc::Sender<Taking>,
        tasks: &Tasks,
    ) -> Self {
        let tasks = tasks.child();
        let mut instances = Vec::new();
        let mut statuses = Vec::new();
        let mut trackers = Vec::new();
        for cfg in configs {
            let left = resume.and_then(|r| r.resumable(cfg));
            let master = left.is_some_and(resume::Left::was_master);
            let (tx, rx) = mpsc::channel(16);
            // A resuming master is master from the first moment (its DSR services
            // are not put on standby meanwhile).
            let (st_tx, st_rx) = watch::channel(InstanceStatus {
                name: cfg.name.clone(),
                state: if master { "MASTER" } else { "INIT" }.into(),
                ..InstanceStatus::default()
            });
            let (tr_tx, tr_rx) = watch::channel(vec![false; cfg.tracks.len()]);
            tasks.spawn(
                "vrrp instance",
                instance::run(cfg.clone(), rx, st_tx, master, taking.clone()),
            );
            tasks.spawn(
                "vrrp tracker",
                track::follow(
                    cfg.clone(),
                    status.clone(),
                    tx.clone(),
                    left.map(|l| l.trackers.clone()),
                    tr_tx,
                ),
            );
            instances.push(tx);
            statuses.push(st_rx);
            trackers.push(tr_rx);
        }
        Self {
            instances,
            tasks,
            statuses,
            trackers,
            configs: configs.to_vec(),
        }
    }

    /// Handles on every instance's status (for the agent's snapshots).
    pub fn watchers(&self) -> Vec<watch::Receiver<InstanceStatus>> {
        self.statuses.clone()
    }

    /// `lb-agent handover`: every instance steps down (masters send priority 0) and
    /// stays out of the election while `hold`; `false` lets them back in.
    pub async fn hold(&self, hold: bool) {
        for tx in &self.instances {
            let _ = tx.send(instance::Command::Hold(hold)).await;
        }
    }

    /// Graceful stop: masters send priority 0 and remove their addresses (each
    /// within [`LEAVE_DEADLINE`]); then the instances' tasks end.
    pub async fn stop(self) {
        for tx in &self.instances {
            let (done, wait) = oneshot::channel();
            if tx.send(instance::Command::Stop(done)).await.is_ok() {
                let _ = tokio::time::timeout(LEAVE_DEADLINE, wait).await;
            }
        }
        self.tasks.cancel();
    }

    /// Leaving for a restart: masters advertise once more at their priority and
    /// remove their addresses (no priority 0); what each left as, for the successor.
    pub async fn leave(self) -> Record {
        let mut left = Vec::new();
        for ((tx, cfg), trackers) in self.instances.iter().zip(&self.configs).zip(&self.trackers) {
            let (done, wait) = oneshot::channel();
            let state = if tx.send(instance::Command::Leave(done)).await.is_ok() {
                tokio::time::timeout(LEAVE_DEADLINE, wait)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            left.push(resume::Left::of(
                cfg,
                state.map_or("INIT", machine::State::name),
                trackers.borrow().clone(),
            ));
        }
        self.tasks.cancel();
        Record::new(left)
    }
}
