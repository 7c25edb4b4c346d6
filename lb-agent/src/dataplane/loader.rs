//! Loading the object with load-time capacities, and attaching it.

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use lb_common::{
    GLOBAL_MAX_VIPS, GLOBAL_RING_SIZE, GLOBAL_SNAT_PORT_MAX, GLOBAL_SNAT_PORT_MIN, MAP_ADDRS,
    MAP_BACKEND_STATS, MAP_BACKENDS, MAP_FLOWS, MAP_NAT, MAP_NEXTHOPS, MAP_RINGS,
    MAP_VIP_GENERATIONS, MAP_VIP_STATS, MAP_VIPS, PROG_FLOOR, PROG_TC_NEIGH, PROG_XDP,
};

use super::{Capacities, DataplaneError, LB_EBPF_OBJECT, services::Programmer};

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, else generic.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode.
    Generic,
}

/// The loaded data plane: program, maps and the service programming state.
pub struct Dataplane {
    pub(super) ebpf: Ebpf,
    pub(super) caps: Capacities,
    pub(super) programmer: Programmer,
}

impl Dataplane {
    /// Loads the object with `caps` (verified by the kernel) without attaching it.
    pub fn load(caps: Capacities) -> Result<Self, DataplaneError> {
        caps.validate()?;
        let snat_min = u32::from(*caps.snat_ports.start());
        let snat_max = u32::from(*caps.snat_ports.end());
        let mut loader = EbpfLoader::new();
        loader
            // Each service has a VIP address and may have its own SNAT address.
            .map_max_entries(MAP_ADDRS, caps.max_vips * 2)
            .map_max_entries(MAP_VIPS, caps.max_vips)
            .map_max_entries(MAP_VIP_GENERATIONS, caps.max_vips)
            .map_max_entries(MAP_BACKENDS, caps.max_backends)
            .map_max_entries(MAP_RINGS, caps.ring_entries())
            .map_max_entries(MAP_FLOWS, caps.flow_table_size)
            .map_max_entries(MAP_NAT, caps.flow_table_size)
            .map_max_entries(MAP_VIP_STATS, caps.max_vips)
            .map_max_entries(MAP_BACKEND_STATS, caps.max_backends)
            .map_max_entries(MAP_NEXTHOPS, caps.max_backends)
            .override_global(GLOBAL_RING_SIZE, &caps.ring_size, true)
            .override_global(GLOBAL_MAX_VIPS, &caps.max_vips, true)
            .override_global(GLOBAL_SNAT_PORT_MIN, &snat_min, true)
            .override_global(GLOBAL_SNAT_PORT_MAX, &snat_max, true);
        let mut ebpf = loader
            .load(LB_EBPF_OBJECT)
            .map_err(|source| DataplaneError::Load { source })?;
        let xdp: &mut Xdp = program(&mut ebpf, PROG_XDP)?;
        xdp.load().map_err(|source| DataplaneError::Program {
            name: PROG_XDP,
            what: "verifier load",
            source,
        })?;
        let tc: &mut SchedClassifier = program(&mut ebpf, PROG_TC_NEIGH)?;
        tc.load().map_err(|source| DataplaneError::Program {
            name: PROG_TC_NEIGH,
            what: "verifier load",
            source,
        })?;
        let programmer = Programmer::new(&caps);
        Ok(Self {
            ebpf,
            caps,
            programmer,
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

    /// The benchmark floor program (`lb_floor`: parse, swap MACs, XDP_TX), loaded on
    /// first use. Not part of the load balancer.
    pub fn floor_program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        let floor: &mut Xdp = program(&mut self.ebpf, PROG_FLOOR)?;
        if floor.fd().is_err() {
            floor.load().map_err(|source| DataplaneError::Program {
                name: PROG_FLOOR,
                what: "verifier load",
                source,
            })?;
        }
        Ok(floor)
    }

    /// Attaches the XDP program to `iface`, plus the TC companion on its ingress.
    /// Returns the XDP mode actually used.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode, DataplaneError> {
        let used = {
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
                AttachMode::Native => try_mode(xdp, XdpMode::Driver).map(|_| AttachMode::Native)?,
                AttachMode::Generic => try_mode(xdp, XdpMode::Skb).map(|_| AttachMode::Generic)?,
                AttachMode::Auto => match try_mode(xdp, XdpMode::Driver) {
                    Ok(_) => AttachMode::Native,
                    Err(e) => {
                        log::warn!("{iface}: native XDP unavailable ({e}), using generic mode");
                        try_mode(xdp, XdpMode::Skb)?;
                        AttachMode::Generic
                    }
                },
            }
        };
        // tcx (kernel >= 6.6): no clsact qdisc needed, coexists with other programs.
        let tc: &mut SchedClassifier = program(&mut self.ebpf, PROG_TC_NEIGH)?;
        tc.attach(iface, TcAttachType::Ingress)
            .map_err(|source| DataplaneError::Program {
                name: PROG_TC_NEIGH,
                what: "attach",
                source,
            })?;
        Ok(used)
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DataplaneError>
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
