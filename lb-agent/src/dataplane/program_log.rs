//! The programs' own log lines (`lb-ebpf/src/log.rs`): their switch (`LOG_SWITCH`,
//! `[agent] dataplane_log`) and the reader that forwards aya-log's ring buffer into
//! the agent's log, as events of target `lb_ebpf::log`.

use aya::maps::{Array, MapData};
use aya_log::EbpfLogger;
use lb_common::MAP_LOG_SWITCH;
use tokio::io::{Interest, unix::AsyncFd};

use super::{Dataplane, DataplaneError, services::map_err};

/// The reader of one loaded program's log ring.
pub struct ProgramLog(EbpfLogger<&'static dyn log::Log>);

impl Dataplane {
    /// Turns the programs' log lines on or off, at once for the running program.
    pub fn set_log(&mut self, on: bool) -> Result<(), DataplaneError> {
        let mut switch: Array<&mut MapData, u32> = self.map_mut(MAP_LOG_SWITCH)?;
        switch
            .set(0, u32::from(on), 0)
            .map_err(map_err(MAP_LOG_SWITCH, "update"))
    }

    /// The reader of this load's log ring (taken once).
    pub fn take_log(&mut self) -> Result<ProgramLog, DataplaneError> {
        EbpfLogger::init(&mut self.ebpf)
            .map(ProgramLog)
            .map_err(|source| DataplaneError::ProgramLog { source })
    }
}

impl ProgramLog {
    /// Forwards each line as it is written, until the task is cancelled (the agent
    /// stops) or the ring cannot be polled.
    pub async fn forward(self) {
        // SAFETY: the logger owns its ring buffer's descriptor, which stays open and
        // the same until the `AsyncFd` (its only owner from here) drops it.
        let fd = match unsafe { AsyncFd::register_with_interest(self.0, Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                let e = e.into_parts().1;
                tracing::warn!(
                    "the programs' log ring cannot be polled: {e}; their lines are lost"
                );
                return;
            }
        };
        let mut fd = fd;
        loop {
            let mut ready = match fd.readable_mut().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("polling the programs' log ring: {e}; their lines are lost");
                    return;
                }
            };
            ready.get_inner_mut().flush();
            ready.clear_ready();
        }
    }
}
