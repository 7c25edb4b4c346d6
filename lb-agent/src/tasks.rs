//! The one way the agent's tasks start and end: each is spawned on a [`Tasks`], which
//! tracks it and hands it a cancellation token; a stop cancels the token and waits for
//! every task against a deadline, naming what did not end. A group of tasks that ends
//! earlier (one backend's health checker, the VRRP instances, a routed listener) is a
//! [`Tasks::child`]: cancelled with its own token or its parent's, tracked by the same
//! tracker.
//!
//! Cancellation is cooperative: a task spawned with [`Tasks::spawn`] is dropped at its
//! next await once the token is cancelled; a task with something to do on its way out
//! (VRRP sends priority 0, a listener hands its connections over) is told so by its
//! owner first, and the token only ends what is left after that.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Tasks that stop together.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A group of its own within this one: cancelled by [`Tasks::cancel`] on it or
    /// on any parent, waited for by the root's [`Tasks::shutdown`].
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            tracker: self.tracker.clone(),
        }
    }

    /// Spawns `task`, which is dropped at its next await once the group is cancelled.
    /// The handle is for an owner that waits for this one task (dropping it detaches
    /// nothing: the tracker still waits for the task).
    pub fn spawn<F>(&self, what: &'static str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = token.cancelled() => tracing::debug!("{what}: cancelled"),
                () = task => {}
            }
        })
    }

    /// Whether the group is cancelled.
    #[cfg(test)]
    fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Ends every task of the group (and of its children) at its next await.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Cancels everything and waits until every task has ended or `deadline` has
    /// passed; `Err` carries how many tasks were still running then.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), usize> {
        self.token.cancel();
        self.tracker.close();
        match tokio::time::timeout(deadline, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.tracker.len()),
        }
    }
}

/// Cancels a group when dropped (a health checker or a listener replaced or removed).
#[derive(Debug)]
pub struct CancelOnDrop(pub Tasks);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn shutdown_ends_every_task_and_children_end_alone() {
        let root = Tasks::new();
        let child = root.child();
        let ended = Arc::new(AtomicBool::new(false));
        let e = ended.clone();
        let (started, running) = tokio::sync::oneshot::channel();
        root.spawn("forever", std::future::pending());
        child.spawn("child", async move {
            // A task that cleans up on the way out does so in a Drop guard.
            struct Flag(Arc<AtomicBool>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _flag = Flag(e);
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        running.await.expect("the child's task runs");
        drop(CancelOnDrop(child.clone()));
        assert!(child.is_cancelled() && !root.is_cancelled());
        let alone = tokio::time::timeout(Duration::from_secs(1), async {
            while !ended.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        });
        assert!(alone.await.is_ok(), "the child's task ended alone");
        assert_eq!(root.shutdown(Duration::from_secs(1)).await, Ok(()));
    }

    #[tokio::test]
    async fn shutdown_names_what_outlives_the_deadline() {
        let root = Tasks::new();
        // Not at an await: a blocking section the token cannot interrupt.
        root.tracker
            .spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)));
        assert_eq!(root.shutdown(Duration::from_millis(20)).await, Err(1));
        assert_eq!(root.shutdown(Duration::from_secs(2)).await, Ok(()));
    }
}
