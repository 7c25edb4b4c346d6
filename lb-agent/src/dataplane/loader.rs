//! Loading the object with load-time capacities, and attaching it.

use std::path::Path;

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupSockAddr, SchedClassifier, TcAttachType, Xdp, XdpMode, tc::SchedClassifierLinkId,
        xdp::XdpLinkId,
    },
};
use lb_common::{
    GLOBAL_MAX_VIPS, GLOBAL_NETNS_COOKIE, GLOBAL_RING_SIZE, GLOBAL_SNAT_PORT_MAX,
    GLOBAL_SNAT_PORT_MIN, PROG_SOCK, PROG_TC_LOCAL_REPLY, PROG_TC_NEIGH, PROG_XDP,
};
pub use lb_config::service::{AttachMode, SocketScope};

use super::{
    Capacities, DataplaneError, LB_EBPF_OBJECT, services::Programmer, shapes::map_shapes,
    sockets::netns_cookie,
};

/// The loaded data plane: program, maps and the service programming state.
pub struct Dataplane {
    pub(super) ebpf: Ebpf,
    pub(super) caps: Capacities,
    pub(super) programmer: Programmer,
    /// An upgrade of pinned maps into this layout, until `finish_upgrade`.
    pub(super) upgrade: Option<super::migrate::Plan>,
}

impl Dataplane {
    /// Loads the object with `caps` (verified by the kernel) without attaching it,
    /// its socket programs for this namespace's sockets.
    pub fn load(caps: Capacities) -> Result<Self, DataplaneError> {
        Self::load_with(caps, None, Some(SocketScope::ThisNamespace))
    }

    /// Loads with every map pinned under `maps_dir`: maps already pinned there are
    /// reused as they are (see `pins.rs`), the others created and pinned. The socket
    /// programs are loaded for `sockets` (`None`: not at all).
    pub(super) fn load_with(
        caps: Capacities,
        maps_dir: Option<&Path>,
        sockets: Option<SocketScope>,
    ) -> Result<Self, DataplaneError> {
        caps.validate()?;
        let snat_min = u32::from(*caps.snat_ports.start());
        let snat_max = u32::from(*caps.snat_ports.end());
        let shapes = map_shapes(&caps);
        let mut loader = EbpfLoader::new();
        for s in &shapes {
            loader.map_max_entries(s.name, s.max_entries);
            if let Some(dir) = maps_dir {
                loader.map_pin_path(s.name, dir.join(s.name));
            }
        }
        let netns = match sockets {
            Some(SocketScope::ThisNamespace) => netns_cookie()?,
            Some(SocketScope::Every) | None => 0,
        };
        loader
            .override_global(GLOBAL_RING_SIZE, &caps.ring_size, true)
            .override_global(GLOBAL_MAX_VIPS, &caps.max_vips, true)
            .override_global(GLOBAL_SNAT_PORT_MIN, &snat_min, true)
            .override_global(GLOBAL_SNAT_PORT_MAX, &snat_max, true)
            .override_global(GLOBAL_NETNS_COOKIE, &netns, true);
        let mut ebpf = loader
            .load(LB_EBPF_OBJECT)
            .map_err(|source| DataplaneError::Load { source })?;
        let verify = |name| {
            move |source| DataplaneError::Program {
                name,
                what: "verifier load",
                source,
            }
        };
        let xdp: &mut Xdp = program(&mut ebpf, PROG_XDP)?;
        xdp.load().map_err(verify(PROG_XDP))?;
        for name in [PROG_TC_NEIGH, PROG_TC_LOCAL_REPLY] {
            let tc: &mut SchedClassifier = program(&mut ebpf, name)?;
            tc.load().map_err(verify(name))?;
        }
        if sockets.is_some() {
            for (name, _) in PROG_SOCK {
                let p: &mut CgroupSockAddr = program(&mut ebpf, name)?;
                p.load().map_err(verify(name))?;
            }
        }
        let programmer = Programmer::new(&caps);
        Ok(Self {
            ebpf,
            caps,
            programmer,
            upgrade: None,
        })
    }

    /// The capacities the program was loaded with.
    pub fn capacities(&self) -> &Capacities {
        &self.caps
    }

    /// The XDP program (e.g. for `BPF_PROG_TEST_RUN`).
    pub fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        self.ebpf
            .program(PROG_XDP)
            .ok_or(DataplaneError::MissingProgram { name: PROG_XDP })?
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name: PROG_XDP,
                what: "type check",
                source,
            })
    }

    #[cfg(feature = "lab")]
    /// The benchmark floor program (`lb_floor`: parse, swap MACs, XDP_TX), loaded on
    /// first use. Not part of the load balancer.
    pub fn floor_program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        let floor: &mut Xdp = program(&mut self.ebpf, lb_common::PROG_FLOOR)?;
        if floor.fd().is_err() {
            floor.load().map_err(|source| DataplaneError::Program {
                name: lb_common::PROG_FLOOR,
                what: "verifier load",
                source,
            })?;
        }
        Ok(floor)
    }

    /// The TC egress companion (e.g. for `BPF_PROG_TEST_RUN`).
    pub fn tc_local_reply(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program(&mut self.ebpf, PROG_TC_LOCAL_REPLY)
    }

    /// Attaches the XDP program to `iface`, plus the TC companions on its ingress
    /// and egress. Returns the XDP mode actually used. The links live as long as
    /// `self`.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode, DataplaneError> {
        let used = self.attach_xdp(iface, mode)?.0;
        self.attach_tc(iface, PROG_TC_NEIGH, TcAttachType::Ingress)?;
        self.attach_tc(iface, PROG_TC_LOCAL_REPLY, TcAttachType::Egress)?;
        Ok(used)
    }

    /// Attaches the XDP program to `iface` in `mode` (auto: native, else generic).
    pub(super) fn attach_xdp(
        &mut self,
        iface: &str,
        mode: AttachMode,
    ) -> Result<(AttachMode, XdpLinkId), DataplaneError> {
        let (used, xdp_link) = {
            let xdp: &mut Xdp = program(&mut self.ebpf, PROG_XDP)?;
            let try_mode = |xdp: &mut Xdp, flags| {
                xdp.attach(iface, flags)
                    .map_err(|source| DataplaneError::Program {
                        name: PROG_XDP,
                        what: "attach",
                        source,
                    })
            };
            match mode {
                AttachMode::Native => (AttachMode::Native, try_mode(xdp, XdpMode::Driver)?),
                AttachMode::Generic => (AttachMode::Generic, try_mode(xdp, XdpMode::Skb)?),
                AttachMode::Auto => match try_mode(xdp, XdpMode::Driver) {
                    Ok(id) => (AttachMode::Native, id),
                    Err(e) => {
                        tracing::warn!("{iface}: native XDP unavailable ({e}), using generic mode");
                        (AttachMode::Generic, try_mode(xdp, XdpMode::Skb)?)
                    }
                },
            }
        };
        Ok((used, xdp_link))
    }

    /// Attaches TC program `name` to `iface` (tcx, kernel >= 6.6: no clsact qdisc
    /// needed, coexists with other programs).
    pub(super) fn attach_tc(
        &mut self,
        iface: &str,
        name: &'static str,
        at: TcAttachType,
    ) -> Result<SchedClassifierLinkId, DataplaneError> {
        let tc: &mut SchedClassifier = program(&mut self.ebpf, name)?;
        tc.attach(iface, at)
            .map_err(|source| DataplaneError::Program {
                name,
                what: "attach",
                source,
            })
    }
}

pub(super) fn program<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut T, DataplaneError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DataplaneError::MissingProgram { name })?
        .try_into()
        .map_err(|source| DataplaneError::Program {
            name,
            what: "type check",
            source,
        })
}
