//! The pass-everything XDP program on the far end of a veth (see lb-ebpf's
//! `lb-peer`): without it, frames the load balancer sends with XDP_TX never leave
//! the far end's receive ring.

use aya::{
    Ebpf,
    programs::{Xdp, XdpMode},
};
use lb_common::{PROG_PEER_PASS, PROG_SINK};

use super::{LabError, Netns};
use crate::dataplane::LB_PEER_OBJECT;

/// Keeps the program attached while alive.
#[must_use]
pub struct PeerPass {
    _ebpf: Ebpf,
}

impl PeerPass {
    /// Attaches to `dev` in `ns` (native mode), from a short-lived thread.
    pub fn attach(ns: &Netns, dev: &str) -> Result<Self, LabError> {
        Self::attach_program(ns, dev, PROG_PEER_PASS)
    }

    /// Attaches `lb_sink` instead: every frame `dev` receives is dropped (a host
    /// that died with its link up).
    pub fn blackhole(ns: &Netns, dev: &str) -> Result<Self, LabError> {
        Self::attach_program(ns, dev, PROG_SINK)
    }

    fn attach_program(ns: &Netns, dev: &str, name: &'static str) -> Result<Self, LabError> {
        let entry = ns.entry()?;
        let dev = dev.to_string();
        let fail = move |what: String| LabError::Command {
            command: format!("attach {name}"),
            stderr: what,
        };
        std::thread::spawn(move || -> Result<Ebpf, LabError> {
            entry.enter()?;
            let mut ebpf = Ebpf::load(LB_PEER_OBJECT).map_err(|e| fail(e.to_string()))?;
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| fail("missing program".into()))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| fail(e.to_string()))?;
            prog.load().map_err(|e| fail(e.to_string()))?;
            prog.attach(&dev, XdpMode::Driver)
                .map_err(|e| fail(format!("{dev}: {e}")))?;
            Ok(ebpf)
        })
        .join()
        .map_err(|_| fail("thread panicked".into()))?
        .map(|ebpf| Self { _ebpf: ebpf })
    }
}
