//! Map keys and values. Layout rules: `#[repr(C)]`, fields ordered so there is no
//! implicit padding, explicit `_pad` fields zeroed by constructors, and a size assert
//! per type (a layout change fails the build of both sides).
//!
//! Addresses are `[u32; 4]` holding the packet's bytes (network order); an IPv4
//! address uses word 0 and leaves the rest zero. Ports are network order too.

/// Key of [`crate::MAP_ADDRS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub addr: [u32; 4],
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`]; u32 so the key has no padding.
    pub family: u32,
}

/// Value of [`crate::MAP_ADDRS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrInfo {
    /// `ADDR_F_*` bits.
    pub flags: u32,
}

/// Value of [`crate::MAP_ADDR_TABLE`]: the one address of ours whose
/// `hash::addr_slot` is this slot, empty (`family` 0), or shared
/// (`family` [`crate::ADDR_SLOT_SHARED`]: look in `ADDRS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrSlot {
    pub addr: [u32; 4],
    pub family: u32,
    /// `ADDR_F_*` of the address.
    pub flags: u32,
}

/// Key of [`crate::MAP_VIPS`]: one service.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub addr: [u32; 4],
    /// Network order; 0 = every port of `addr` for `proto`.
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

/// Value of [`crate::MAP_VIPS`]. Replaced whole (the map is not preallocated, so a
/// reader keeps the old element until it is done: RCU), which is what makes a ring
/// swap atomic.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipMeta {
    /// VIP slot: index of its counters and of its two rings.
    pub id: u32,
    /// `VIP_F_*` bits.
    pub flags: u32,
    /// Which of the slot's two rings is live (0 or 1).
    pub ring: u32,
    /// NAT source address (same family as the VIP); unused in DSR mode.
    pub snat_addr: [u32; 4],
    /// The slot's entry in [`crate::MAP_VIP_GENERATIONS`] when this value was written:
    /// flows bound under an older generation take the full path again.
    pub generation: u32,
    /// NAT source addresses of the service (1..=`MAX_SNAT_ADDRS`), in
    /// [`crate::MAP_SNAT_ADDRS`] from slot `id * MAX_SNAT_ADDRS`; `snat_addr` is the
    /// first. Each adds a port range per backend.
    pub snat_count: u32,
    pub _pad: u32,
}

/// Value of [`crate::MAP_BACKENDS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    pub addr: [u32; 4],
    /// Network order; 0 = the packet's destination port is kept.
    pub port: u16,
    pub family: u8,
    /// `BACKEND_F_*` bits.
    pub flags: u8,
    /// `BACKEND_UP`, `BACKEND_DRAIN` or `BACKEND_DOWN`.
    pub state: u32,
    /// Bumped whenever the slot is given to another backend: flows remember it, so a
    /// flow never follows a slot to a backend it was not sent to.
    pub generation: u32,
    /// VIP slot the backend belongs to. Not read by the program: the agent rebuilds
    /// its bookkeeping from it after a restart. `family` 0 marks a free slot.
    pub vip_id: u32,
}

/// A flow's 5-tuple as seen on the wire: key of [`crate::MAP_FLOWS`] (client -> VIP)
/// and of [`crate::MAP_NAT`] (backend -> SNAT address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Value of [`crate::MAP_FLOWS`]: the backend, and a snapshot of what forwarding
/// needs from the service, so an established flow skips the service lookup while the
/// service's generation is unchanged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    /// Backend slot.
    pub backend: u32,
    /// The slot's `Backend::generation` when the flow was bound.
    pub generation: u32,
    /// VIP slot of the service.
    pub vip_id: u32,
    /// The service's `VipMeta::generation` when the flow was bound.
    pub vip_generation: u32,
    /// The service's `VIP_F_*` flags.
    pub vip_flags: u32,
    /// The service's NAT source address.
    pub snat_addr: [u32; 4],
    /// NAT source port (network order); 0 in DSR mode.
    pub snat_port: u16,
    /// `FLOW_*` state, as the client's packets show it.
    pub state: u8,
    pub _pad: u8,
    /// Clock tick (`CLOCK_TICK_SHIFT`) of the last refresh: the entry is rewritten at
    /// most once a tick while nothing changes.
    pub seen: u32,
    /// Tick after which the entry is expired (its state's timeout after `seen`).
    pub expires: u32,
}

/// Value of [`crate::MAP_NAT`]: how to turn a backend's reply back into the VIP's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntry {
    pub client: [u32; 4],
    pub vip: [u32; 4],
    pub client_port: u16,
    pub vip_port: u16,
    pub vip_id: u32,
    pub backend: u32,
    /// `FLOW_*` state of the connection as both directions show it.
    pub state: u8,
    pub _pad: [u8; 3],
    /// Tick of the last refresh (see `FlowEntry::seen`).
    pub seen: u32,
    /// Tick after which the binding is expired: its port may be taken by another
    /// flow. Taken over with a compare-and-swap on this word.
    pub expires: u32,
    /// Cached next hop towards the client (written by the program).
    pub nh: NextHop,
}

/// Value of [`crate::MAP_TIMEOUTS`] (per VIP slot): how long a flow and its NAT
/// binding live after their last packet, in clock ticks
/// ([`crate::CLOCK_TICK_SHIFT`]), indexed by `FLOW_*` state (an array the program
/// indexes with `state & 7`: a bound the verifier can follow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub by_state: [u32; crate::FLOW_STATES],
}

/// Per-CPU traffic counters of a VIP or a backend
/// ([`crate::MAP_VIP_STATS`], [`crate::MAP_BACKEND_STATS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounters {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// Value of [`crate::MAP_NEXTHOPS`] (per CPU, per backend slot): where packets to
/// the backend leave, from the last successful `bpf_fib_lookup`. Written by the
/// program; the agent zeroes a slot's entries when it gives the slot to a backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// `bpf_ktime_get_coarse_ns` after which the entry is looked up again; 0 = empty.
    pub expires_ns: u64,
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// XDP metadata in front of a packet passed to the stack because the next hop's
/// neighbour entry is missing; the TC companion redirects it with `bpf_redirect_neigh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighMeta {
    /// [`crate::NEIGH_META_MAGIC`].
    pub magic: u32,
    /// Output interface.
    pub ifindex: u32,
    /// Next hop (network order), family as in `family`.
    pub nexthop: [u32; 4],
    pub family: u32,
}

/// Key of [`crate::MAP_SOCK_REVNAT`]: a socket the socket programs sent to a
/// backend instead of a VIP, and that backend (as the socket sees its peer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockKey {
    /// `bpf_get_socket_cookie` of the socket (sock_diag reports the same cookie).
    pub cookie: u64,
    pub addr: [u32; 4],
    /// Network order.
    pub port: u16,
    pub family: u8,
    pub proto: u8,
    pub _pad: u32,
}

/// Value of [`crate::MAP_SOCK_REVNAT`]: the VIP the socket asked for, shown back to
/// it (getpeername, recvmsg source), and the slots it was balanced under.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOrigin {
    pub vip: [u32; 4],
    /// Network order.
    pub port: u16,
    pub family: u8,
    pub _pad: u8,
    /// VIP slot.
    pub vip_id: u32,
    /// Backend slot.
    pub backend: u32,
    pub _pad2: u32,
}

const _: () = {
    assert!(size_of::<SockKey>() == 32);
    assert!(size_of::<SockOrigin>() == 32);
    assert!(size_of::<AddrKey>() == 20);
    assert!(size_of::<AddrInfo>() == 4);
    assert!(size_of::<AddrSlot>() == 24);
    assert!(size_of::<VipKey>() == 20);
    assert!(size_of::<VipMeta>() == 40);
    assert!(size_of::<Backend>() == 32);
    assert!(size_of::<FlowKey>() == 40);
    assert!(size_of::<FlowEntry>() == 48);
    assert!(size_of::<NatEntry>() == 80);
    // `seen` and `expires` are swapped as one 8-byte word (lb-ebpf/src/nat.rs).
    assert!(core::mem::offset_of!(NatEntry, seen) == 48);
    assert!(core::mem::offset_of!(NatEntry, expires) == 52);
    assert!(align_of::<NatEntry>() == 8);
    assert!(size_of::<Timeouts>() == 32);
    assert!(size_of::<TrafficCounters>() == 24);
    assert!(size_of::<NeighMeta>() == 28);
    assert!(size_of::<NextHop>() == 24);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, made only of integers and integer
    // arrays, has no implicit padding (asserted by size above) and no invalid bit
    // patterns, which is what `aya::Pod` requires.
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::AddrInfo {}
    unsafe impl aya::Pod for super::AddrSlot {}
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipMeta {}
    unsafe impl aya::Pod for super::Backend {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowEntry {}
    unsafe impl aya::Pod for super::NatEntry {}
    unsafe impl aya::Pod for super::TrafficCounters {}
    unsafe impl aya::Pod for super::NextHop {}
    unsafe impl aya::Pod for super::SockKey {}
    unsafe impl aya::Pod for super::SockOrigin {}
    unsafe impl aya::Pod for super::Timeouts {}
}

/// Turns a packet-order address into the map representation and back.
#[cfg(feature = "user")]
pub mod addr {
    use core::net::IpAddr;

    /// `(words, family)` of an address as the maps store it.
    pub fn to_words(ip: IpAddr) -> ([u32; 4], u8) {
        match ip {
            IpAddr::V4(v4) => ([u32::from_ne_bytes(v4.octets()), 0, 0, 0], crate::FAMILY_V4),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                ([w(0), w(4), w(8), w(12)], crate::FAMILY_V6)
            }
        }
    }

    /// The address stored as `words` with `family`.
    pub fn from_words(words: [u32; 4], family: u8) -> IpAddr {
        if family == crate::FAMILY_V4 {
            IpAddr::from(words[0].to_ne_bytes())
        } else {
            let mut o = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::from(o)
        }
    }
}
