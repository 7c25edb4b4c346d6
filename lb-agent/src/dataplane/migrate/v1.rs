//! Layout 1: the maps of agents before flow lifecycles (November 2026). Flows and
//! NAT bindings had no state and no age, a service had one SNAT address; there
//! were no `TIMEOUTS`, `SNAT_ADDRS` or `SNAT_CURSORS` maps. Every other map had the
//! value it has now. Known by its value sizes (`FLOWS` 40, `NAT` 72, `VIPS` 32).

use lb_common::{
    FLOW_TCP_ESTABLISHED, FLOW_UDP, FlowEntry, FlowKey, NatEntry, NextHop, PROTO_TCP, VIP_F_DSR,
    VipMeta,
};

/// A layout-1 `FLOWS` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntryV1 {
    pub backend: u32,
    pub generation: u32,
    pub vip_id: u32,
    pub vip_generation: u32,
    pub vip_flags: u32,
    pub snat_addr: [u32; 4],
    pub snat_port: u16,
    pub _pad: u16,
}

/// A layout-1 `NAT` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntryV1 {
    pub client: [u32; 4],
    pub vip: [u32; 4],
    pub client_port: u16,
    pub vip_port: u16,
    pub vip_id: u32,
    pub backend: u32,
    pub _pad: u32,
    pub nh: NextHop,
}

/// A layout-1 `VIPS` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipMetaV1 {
    pub id: u32,
    pub flags: u32,
    pub ring: u32,
    pub snat_addr: [u32; 4],
    pub generation: u32,
}

const _: () = {
    assert!(size_of::<FlowEntryV1>() == 40);
    assert!(size_of::<NatEntryV1>() == 72);
    assert!(size_of::<VipMetaV1>() == 32);
};

// SAFETY: plain `repr(C)` structs of integers, every bit pattern valid, sizes
// asserted above (what the kernel copies in and out of the maps).
unsafe impl aya::Pod for FlowEntryV1 {}
unsafe impl aya::Pod for NatEntryV1 {}
unsafe impl aya::Pod for VipMetaV1 {}

/// How long a carried flow lives from now: layout 1 kept no state, so a TCP flow
/// is taken as established (its packets keep it going either way) and a UDP one
/// as not yet replied; both in ticks.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub now: u32,
    pub tcp: u32,
    pub udp: u32,
}

impl Lifetimes {
    fn of(&self, proto: u8) -> (u8, u32, u32) {
        if proto == PROTO_TCP {
            (
                FLOW_TCP_ESTABLISHED,
                self.now,
                self.now.wrapping_add(self.tcp),
            )
        } else {
            (FLOW_UDP, self.now, self.now.wrapping_add(self.udp))
        }
    }
}

impl FlowEntryV1 {
    /// The current layout's value: everything kept, a state and an age given.
    pub fn upgrade(&self, key: &FlowKey, life: &Lifetimes) -> FlowEntry {
        let (state, seen, expires) = life.of(key.proto);
        FlowEntry {
            backend: self.backend,
            generation: self.generation,
            vip_id: self.vip_id,
            vip_generation: self.vip_generation,
            vip_flags: self.vip_flags,
            snat_addr: self.snat_addr,
            snat_port: self.snat_port,
            state,
            _pad: 0,
            seen,
            expires,
        }
    }
}

impl NatEntryV1 {
    /// The current layout's value; the cached next hop is left for the program to
    /// find again.
    pub fn upgrade(&self, key: &FlowKey, life: &Lifetimes) -> NatEntry {
        let (state, seen, expires) = life.of(key.proto);
        NatEntry {
            client: self.client,
            vip: self.vip,
            client_port: self.client_port,
            vip_port: self.vip_port,
            vip_id: self.vip_id,
            backend: self.backend,
            state,
            _pad: [0; 3],
            seen,
            expires,
            nh: NextHop::default(),
        }
    }
}

impl VipMetaV1 {
    /// The current layout's value: its one SNAT address (a NAT service's) is the
    /// first of `SNAT_ADDRS`, which the caller writes.
    pub fn upgrade(&self) -> VipMeta {
        VipMeta {
            id: self.id,
            flags: self.flags,
            ring: self.ring,
            snat_addr: self.snat_addr,
            generation: self.generation,
            snat_count: u32::from(self.flags & VIP_F_DSR == 0 && self.snat_addr != [0; 4]),
            _pad: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use lb_common::PROTO_UDP;

    use super::*;

    const LIFE: Lifetimes = Lifetimes {
        now: 1000,
        tcp: 500,
        udp: 30,
    };

    fn key(proto: u8) -> FlowKey {
        FlowKey {
            src: [0x0a00_0001, 0, 0, 0],
            dst: [0x0a00_0002, 0, 0, 0],
            sport: 1234u16.to_be(),
            dport: 80u16.to_be(),
            proto,
            family: 4,
            _pad: [0; 2],
        }
    }

    #[test]
    fn a_flow_keeps_its_backend_snapshot_and_port_and_gets_an_age() {
        let old = FlowEntryV1 {
            backend: 7,
            generation: 3,
            vip_id: 2,
            vip_generation: 9,
            vip_flags: VIP_F_DSR,
            snat_addr: [1, 2, 3, 4],
            snat_port: 40000u16.to_be(),
            _pad: 0,
        };
        let tcp = old.upgrade(&key(PROTO_TCP), &LIFE);
        assert_eq!(
            (tcp.backend, tcp.generation, tcp.vip_id, tcp.vip_generation),
            (7, 3, 2, 9)
        );
        assert_eq!((tcp.vip_flags, tcp.snat_addr), (VIP_F_DSR, [1, 2, 3, 4]));
        assert_eq!(u16::from_be(tcp.snat_port), 40000);
        assert_eq!(
            (tcp.state, tcp.seen, tcp.expires),
            (FLOW_TCP_ESTABLISHED, 1000, 1500)
        );
        let udp = old.upgrade(&key(PROTO_UDP), &LIFE);
        assert_eq!((udp.state, udp.expires), (FLOW_UDP, 1030));
    }

    #[test]
    fn a_binding_keeps_its_client_and_backend_and_drops_the_cached_hop() {
        let old = NatEntryV1 {
            client: [5, 0, 0, 0],
            vip: [6, 0, 0, 0],
            client_port: 1234u16.to_be(),
            vip_port: 80u16.to_be(),
            vip_id: 1,
            backend: 12,
            _pad: 0,
            nh: NextHop {
                ifindex: 3,
                ..NextHop::default()
            },
        };
        let new = old.upgrade(&key(PROTO_TCP), &LIFE);
        assert_eq!((new.client, new.vip), ([5, 0, 0, 0], [6, 0, 0, 0]));
        assert_eq!(
            (new.client_port, new.vip_port),
            (old.client_port, old.vip_port)
        );
        assert_eq!((new.vip_id, new.backend), (1, 12));
        assert_eq!((new.state, new.expires), (FLOW_TCP_ESTABLISHED, 1500));
        assert_eq!(new.nh, NextHop::default());
    }

    #[test]
    fn a_service_counts_its_snat_address() {
        let nat = VipMetaV1 {
            id: 4,
            flags: 0,
            ring: 1,
            snat_addr: [9, 0, 0, 0],
            generation: 2,
        };
        let m = nat.upgrade();
        assert_eq!((m.id, m.ring, m.generation, m.snat_count), (4, 1, 2, 1));
        let dsr = VipMetaV1 {
            flags: VIP_F_DSR,
            ..nat
        };
        assert_eq!(dsr.upgrade().snat_count, 0);
    }
}
