//! Pinning under `pin_path`, so forwarding outlives the agent:
//!
//! ```text
//! <pin_path>/maps/<MAP>          every map (flows, NAT bindings, counters, services)
//! <pin_path>/maps-old/<MAP>      an older layout's maps, while an upgrade carries them
//! <pin_path>/prog_<program>      the programs last loaded
//! <pin_path>/link_xdp_<iface>    the XDP link of each interface
//! <pin_path>/link_tc_<iface>     the TC ingress companion's tcx link
//! <pin_path>/link_tcout_<iface>  the TC egress companion's tcx link (local replies)
//! <pin_path>/link_sock_<program> the socket programs' cgroup links (`sockets.rs`)
//! ```
//!
//! A start finding maps pinned reuses them (when their shapes are this agent's; else
//! it carries their entries over into new ones: `migrate.rs`) and rebuilds its
//! bookkeeping from them; a start finding a link pinned replaces the
//! link's program atomically (`bpf_link_update`): not one packet meets an interface
//! without a program. Stopping (SIGTERM, a crash, `kill -9`) leaves everything in
//! place and the old program keeps forwarding with the same maps.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use aya::programs::{
    CgroupSockAddr, SchedClassifier, TcAttachType, Xdp,
    links::{FdLink, PinnedLink},
    tc::SchedClassifierLink,
    xdp::XdpLink,
};
use lb_common::{MAP_VIPS, PROG_SOCK, PROG_TC_LOCAL_REPLY, PROG_TC_NEIGH, PROG_XDP};

use super::{
    AdoptedBackend, AttachMode, Capacities, Dataplane, DataplaneError, FlowTimeouts, SocketScope,
    loader::program, migrate,
};

/// `statfs` magic of a bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where a bpffs is mounted by convention; the agent mounts it there if missing.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Paths of the pinned objects under a `pin_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinLayout {
    pub dir: PathBuf,
}

impl PinLayout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    fn program(&self, name: &str) -> PathBuf {
        self.dir.join(format!("prog_{name}"))
    }

    fn xdp_link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("link_xdp_{iface}"))
    }

    fn tc_link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("link_tc_{iface}"))
    }

    fn tc_out_link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("link_tcout_{iface}"))
    }

    pub(super) fn sock_link(&self, program: &str) -> PathBuf {
        self.dir.join(format!("link_sock_{program}"))
    }

    /// Interfaces with a pinned link.
    pub fn linked_interfaces(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("link_xdp_")
                    .or_else(|| name.strip_prefix("link_tc_"))
                    .or_else(|| name.strip_prefix("link_tcout_"))
                    .map(str::to_string)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// How an interface got its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Attached now, in this mode.
    New(AttachMode),
    /// A pinned link from an earlier start now runs the new program (same mode).
    Replaced,
}

fn is_bpffs(path: &Path) -> Result<bool, std::io::Error> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // f_type's type differs between libc targets (a cast on x86_64, a widening elsewhere).
    #[allow(trivial_numeric_casts, clippy::unnecessary_cast)]
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `dir` is a directory on a bpffs: mounts one at /sys/fs/bpf when `dir`
/// is under it and none is mounted; any other place must already be a bpffs.
fn prepare_dir(dir: &Path) -> Result<(), DataplaneError> {
    let bad = |why: String| DataplaneError::PinPath {
        path: dir.to_path_buf(),
        why,
    };
    let root = Path::new(BPFFS_ROOT);
    if dir.starts_with(root) && !is_bpffs(root).unwrap_or(false) {
        let src = c"bpf";
        let target = CString::new(BPFFS_ROOT).map_err(|e| bad(e.to_string()))?;
        // SAFETY: plain mount(2) with NUL-terminated strings and no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(bad(format!(
                "no bpffs at {BPFFS_ROOT} and mounting one failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        tracing::info!("mounted a bpffs at {BPFFS_ROOT}");
    }
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("/"));
    match is_bpffs(existing) {
        Ok(true) => {}
        Ok(false) => {
            return Err(bad(format!(
                "{} is not on a bpffs (mount one: mount -t bpf bpf DIR)",
                existing.display()
            )));
        }
        Err(e) => return Err(bad(format!("statfs {}: {e}", existing.display()))),
    }
    std::fs::create_dir_all(dir.join("maps")).map_err(|e| bad(format!("creating it: {e}")))
}

pub(super) fn pin_err(
    what: String,
    path: &Path,
) -> impl FnOnce(aya::pin::PinError) -> DataplaneError {
    let path = path.to_path_buf();
    move |e| DataplaneError::Pin {
        what,
        path,
        source: std::io::Error::other(e.to_string()),
    }
}

pub(super) fn remove_pin(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataplaneError::Pin {
            what: "removing an old pin".into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Dataplane {
    /// Loads with every map pinned under `pins`. When maps of an earlier agent were
    /// found they are adopted (flows, bindings and counters kept, the bookkeeping
    /// rebuilt from them) and their backends returned with the states they had.
    /// Maps of another layout are carried over into fresh ones first (`migrate.rs`;
    /// `finish_upgrade` completes that once the links run the new program).
    pub fn load_pinned(
        caps: Capacities,
        pins: &PinLayout,
        sockets: Option<SocketScope>,
        lifetimes: &FlowTimeouts,
    ) -> Result<(Self, Option<Vec<AdoptedBackend>>), DataplaneError> {
        prepare_dir(&pins.dir)?;
        let upgrade = migrate::plan(pins, &caps, lifetimes)?;
        let adopted = upgrade.is_some() || pins.map(MAP_VIPS).exists();
        let Some(mut upgrade) = upgrade else {
            return Self::load_pins(caps, pins, sockets, adopted);
        };
        upgrade.set_aside(pins)?;
        let carried = Self::load_pins(caps, pins, sockets, false).and_then(|(mut dp, _)| {
            upgrade.carry(&mut dp)?;
            let backends = dp.adopt()?;
            Ok((dp, backends))
        });
        // On an error `upgrade` is dropped here, putting the old maps back.
        let (mut dp, backends) = carried?;
        dp.upgrade = Some(upgrade);
        Ok((dp, Some(backends)))
    }

    /// Completes an upgrade of the pinned maps (see `load_pinned`) once every
    /// pinned link runs the new program; `None` when there was none. An error
    /// leaves `maps-old/` for the next start to finish.
    pub fn finish_upgrade(&mut self) -> Option<Result<String, DataplaneError>> {
        let plan = self.upgrade.take()?;
        Some(plan.finish(self))
    }

    fn load_pins(
        caps: Capacities,
        pins: &PinLayout,
        sockets: Option<SocketScope>,
        adopt: bool,
    ) -> Result<(Self, Option<Vec<AdoptedBackend>>), DataplaneError> {
        let mut dp = Self::load_with(caps, Some(&pins.maps()), sockets)?;
        let socket_programs = PROG_SOCK.iter().map(|(name, _)| *name);
        let loaded = [PROG_XDP, PROG_TC_NEIGH, PROG_TC_LOCAL_REPLY]
            .into_iter()
            .chain(socket_programs.filter(|_| sockets.is_some()));
        for name in loaded {
            let path = pins.program(name);
            remove_pin(&path)?;
            let result = match name {
                PROG_XDP => program::<Xdp>(&mut dp.ebpf, name)?.pin(&path),
                PROG_TC_NEIGH | PROG_TC_LOCAL_REPLY => {
                    program::<SchedClassifier>(&mut dp.ebpf, name)?.pin(&path)
                }
                _ => program::<CgroupSockAddr>(&mut dp.ebpf, name)?.pin(&path),
            };
            result.map_err(pin_err(format!("program {name}"), &path))?;
        }
        if sockets.is_none() {
            for (name, _) in PROG_SOCK {
                remove_pin(&pins.program(name))?;
            }
        }
        let backends = if adopt { Some(dp.adopt()?) } else { None };
        Ok((dp, backends))
    }

    /// Attaches to `iface` through pinned links: each link pinned by an earlier start
    /// gets the new program atomically, a missing one is made and pinned.
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: AttachMode,
        pins: &PinLayout,
    ) -> Result<Attached, DataplaneError> {
        let link_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataplaneError::Link { path, source }
        };
        let xdp_path = pins.xdp_link(iface);
        // An upgrade of the maps: the last changes before the new program runs
        // anywhere (once).
        if let Some(mut upgrade) = self.upgrade.take() {
            let done = upgrade.before_switch(self);
            self.upgrade = Some(upgrade);
            done?;
        }
        let attached = if xdp_path.exists() {
            let link = PinnedLink::from_pin(&xdp_path).map_err(link_err(&xdp_path))?;
            let link = XdpLink::try_from(FdLink::from(link)).map_err(link_err(&xdp_path))?;
            let xdp: &mut Xdp = program(&mut self.ebpf, PROG_XDP)?;
            xdp.attach_to_link(link)
                .map_err(|source| DataplaneError::Program {
                    name: PROG_XDP,
                    what: "replace the pinned link's program",
                    source,
                })?;
            Attached::Replaced
        } else {
            let (used, id) = self.attach_xdp(iface, mode)?;
            let xdp: &mut Xdp = program(&mut self.ebpf, PROG_XDP)?;
            let link = xdp
                .take_link(id)
                .map_err(|source| DataplaneError::Program {
                    name: PROG_XDP,
                    what: "take link",
                    source,
                })?;
            pin_link(link, &xdp_path, iface)?;
            Attached::New(used)
        };
        for (name, at, path) in [
            (PROG_TC_NEIGH, TcAttachType::Ingress, pins.tc_link(iface)),
            (
                PROG_TC_LOCAL_REPLY,
                TcAttachType::Egress,
                pins.tc_out_link(iface),
            ),
        ] {
            if path.exists() {
                let link = PinnedLink::from_pin(&path).map_err(link_err(&path))?;
                let link =
                    SchedClassifierLink::try_from(FdLink::from(link)).map_err(link_err(&path))?;
                let tc: &mut SchedClassifier = program(&mut self.ebpf, name)?;
                tc.attach_to_link(link)
                    .map_err(|source| DataplaneError::Program {
                        name,
                        what: "replace the pinned link's program",
                        source,
                    })?;
            } else {
                let id = self.attach_tc(iface, name, at)?;
                let tc: &mut SchedClassifier = program(&mut self.ebpf, name)?;
                let link = tc.take_link(id).map_err(|source| DataplaneError::Program {
                    name,
                    what: "take link",
                    source,
                })?;
                pin_link(link, &path, iface)?;
            }
        }
        // The old program no longer runs here: what it added in the moments
        // before goes in at once (its next packets meet the new program).
        if let Some(mut upgrade) = self.upgrade.take() {
            let done = upgrade.after_switch(self);
            self.upgrade = Some(upgrade);
            done?;
        }
        Ok(attached)
    }
}

/// Pins a link taken from its program at `path` (it then outlives the agent).
pub(super) fn pin_link<L>(link: L, path: &Path, iface: &str) -> Result<(), DataplaneError>
where
    FdLink: TryFrom<L, Error = aya::programs::links::LinkError>,
{
    FdLink::try_from(link)
        .map_err(|source| DataplaneError::Link {
            path: path.to_path_buf(),
            source,
        })?
        .pin(path)
        .map_err(pin_err(format!("link of {iface}"), path))?;
    Ok(())
}

/// Detaches interfaces no longer configured: removing the last reference to a
/// pinned link detaches it. Returns the interfaces detached.
pub fn detach_others(pins: &PinLayout, keep: &[String]) -> Result<Vec<String>, DataplaneError> {
    let mut gone = Vec::new();
    for iface in pins.linked_interfaces() {
        if !keep.contains(&iface) {
            remove_pin(&pins.xdp_link(&iface))?;
            remove_pin(&pins.tc_link(&iface))?;
            remove_pin(&pins.tc_out_link(&iface))?;
            gone.push(iface);
        }
    }
    Ok(gone)
}
