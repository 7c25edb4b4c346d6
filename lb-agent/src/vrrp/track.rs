//! Trackers: what moves an instance's priority (keepalived semantics, see
//! `priority.rs`). Scripts run every `interval` (argv, no shell, killed after
//! `timeout`); `vip_healthy` and `dataplane` follow the agent's published status (a
//! health change is published at once); `interface` is polled every 500 ms. `rise`
//! and `fall` count consecutive results. A tracker starts failing and is evaluated
//! at once, so nothing is added to a priority before its first success.

use std::{process::Stdio, sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::sleep,
};

use super::{
    iface,
    instance::Command,
    priority::{Tracked, effective},
};
use crate::{
    config::{TrackKind, VrrpConfig},
    health::HealthState,
    status::Status,
};

const POLL: Duration = Duration::from_millis(500);

async fn run_script(command: &[String], timeout: Duration) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut c) => matches!(
            tokio::time::timeout(timeout, c.wait()).await,
            Ok(Ok(s)) if s.success()
        ),
        Err(_) => false,
    }
}

/// One check of a non-script tracker against the agent's status.
fn observe(kind: &TrackKind, status: &Status) -> bool {
    match kind {
        TrackKind::VipHealthy { vip } => status.vip(vip).is_some_and(|v| v.up > 0),
        TrackKind::Dataplane => !status.interfaces.is_empty(),
        TrackKind::Interface { name } => iface::lookup(name).is_ok_and(|i| i.up),
        TrackKind::Script { .. } => false,
    }
}

/// Follows `cfg`'s trackers and tells the instance its effective priority (or
/// FAULT) whenever it changes, starting with the first evaluation. Trackers start
/// failing, or as `initial` says (a restart's successor starts from what its
/// predecessor saw); their results are published on `results`. Trackers that read
/// the agent's status wait for its first publication.
pub async fn follow(
    cfg: VrrpConfig,
    mut status: watch::Receiver<Arc<Status>>,
    instance: mpsc::Sender<Command>,
    initial: Option<Vec<bool>>,
    results_out: watch::Sender<Vec<bool>>,
) {
    let mut states: Vec<HealthState> = cfg
        .tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let passing = initial.as_ref().and_then(|v| v.get(i)).copied() == Some(true);
            HealthState::known(passing, t.rise, t.fall)
        })
        .collect();
    // Script results arrive on a channel from one task per script.
    let (results_tx, mut results) = mpsc::unbounded_channel::<(usize, bool)>();
    for (i, t) in cfg.tracks.iter().enumerate() {
        if let TrackKind::Script {
            command,
            interval,
            timeout,
        } = &t.kind
        {
            let (command, interval, timeout, tx) =
                (command.clone(), *interval, *timeout, results_tx.clone());
            tokio::spawn(async move {
                loop {
                    let ok = run_script(&command, timeout).await;
                    if tx.send((i, ok)).is_err() {
                        return;
                    }
                    sleep(interval).await;
                }
            });
        }
    }
    drop(results_tx);
    let mut sent: Option<Option<u8>> = None;
    let has_polled = cfg
        .tracks
        .iter()
        .any(|t| !matches!(t.kind, TrackKind::Script { .. }));
    loop {
        let tracked: Vec<Tracked> = cfg
            .tracks
            .iter()
            .zip(&states)
            .map(|(t, s)| Tracked {
                weight: t.weight,
                passing: s.is_up(),
            })
            .collect();
        let now = effective(cfg.priority, &tracked);
        results_out.send_if_modified(|r| {
            let new: Vec<bool> = tracked.iter().map(|t| t.passing).collect();
            let changed = *r != new;
            *r = new;
            changed
        });
        if sent != Some(now) {
            if instance.send(Command::Priority(now)).await.is_err() {
                return;
            }
            sent = Some(now);
        }
        let poll = async {
            if has_polled {
                tokio::select! {
                    _ = status.changed() => {}
                    () = sleep(POLL) => {}
                }
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            Some((i, ok)) = results.recv() => {
                states[i].record(ok);
            }
            () = poll => {
                let s = status.borrow_and_update().clone();
                if s.source.is_empty() {
                    continue; // the agent has not published yet
                }
                for (i, t) in cfg.tracks.iter().enumerate() {
                    if !matches!(t.kind, TrackKind::Script { .. }) {
                        states[i].record(observe(&t.kind, &s));
                    }
                }
            }
            () = instance.closed() => return,
        }
    }
}
