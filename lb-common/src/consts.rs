//! Every constant and flag bit of the data plane, defined once.
//!
//! Values written into maps use these; the XDP program reads them back. Addresses and
//! ports inside map keys and values are kept in network byte order exactly as they
//! appear in the packet (an IPv4 address sits in `addr[0]`, the other words are zero),
//! so the program never swaps bytes on the packet path.

// ---- Map names (the `static` names in lb-ebpf; the agent opens maps by these) ----

/// `HashMap<AddrKey, AddrInfo>`: every address the program owns (VIPs, SNAT addresses).
/// The first and only lookup a packet that is not for us pays.
pub const MAP_ADDRS: &str = "ADDRS";
/// `Array<AddrSlot>`: a direct-mapped copy of `ADDRS` in two halves of
/// [`ADDR_TABLE_SLOTS`] (double buffered): the program's first and, for a packet that
/// is not ours, only lookup (array lookups are inlined; no hashing of the key by the
/// map). A slot two of our addresses share sends the packet to `ADDRS`.
pub const MAP_ADDR_TABLE: &str = "ADDR_TABLE";
/// `Array<u32>` of one entry: which half of `ADDR_TABLE` is live (0 or 1).
pub const MAP_ADDR_TABLE_LIVE: &str = "ADDR_TABLE_LIVE";
/// Slots in each half of `ADDR_TABLE` (a power of two).
pub const ADDR_TABLE_SLOTS: u32 = 4096;
/// `AddrSlot.family` of a slot shared by several of our addresses.
pub const ADDR_SLOT_SHARED: u32 = 0xff;
/// `HashMap<VipKey, VipMeta>`: the services.
pub const MAP_VIPS: &str = "VIPS";
/// `Array<Backend>` indexed by backend slot.
pub const MAP_BACKENDS: &str = "BACKENDS";
/// `Array<u32>` indexed by VIP slot: bumped by the agent whenever a service's mode or
/// SNAT address changes or the service goes, invalidating the service snapshot that
/// established flows carry.
pub const MAP_VIP_GENERATIONS: &str = "VIP_GENERATIONS";
/// `Array<u32>`: Maglev rings, two per VIP slot (double buffered), `ring_size` entries each.
pub const MAP_RINGS: &str = "RINGS";
/// `LruHashMap<FlowKey, FlowEntry>`: client flow -> backend choice.
pub const MAP_FLOWS: &str = "FLOWS";
/// `LruHashMap<FlowKey, NatEntry>`: NAT reply flow (backend -> SNAT addr:port) -> client.
pub const MAP_NAT: &str = "NAT";
/// `PerCpuArray<NextHop>` indexed by backend slot: the last route lookup's result.
pub const MAP_NEXTHOPS: &str = "NEXTHOPS";
/// `PerCpuArray<u64>` indexed by [`crate::Counter`].
pub const MAP_STATS: &str = "STATS";
/// `PerCpuArray<TrafficCounters>` indexed by VIP slot.
pub const MAP_VIP_STATS: &str = "VIP_STATS";
/// `PerCpuArray<TrafficCounters>` indexed by backend slot.
pub const MAP_BACKEND_STATS: &str = "BACKEND_STATS";
/// `Array<[u32; 4]>`, `MAX_SNAT_ADDRS` slots per VIP slot: the service's NAT source
/// addresses (`VipMeta::snat_count` of them).
pub const MAP_SNAT_ADDRS: &str = "SNAT_ADDRS";
/// NAT source addresses per service at most (a power of two).
pub const MAX_SNAT_ADDRS: u32 = 8;
/// `Array<u32>` indexed by VIP slot: the (address, port) slot where the service's
/// next port claim goes on probing after the flow's own position (`nat.rs`).
pub const MAP_SNAT_CURSORS: &str = "SNAT_CURSORS";
/// `Array<Timeouts>` indexed by VIP slot: the service's flow lifetimes by state.
pub const MAP_TIMEOUTS: &str = "TIMEOUTS";
/// `LruHashMap<SockKey, SockOrigin>`: sockets of this node the socket programs sent
/// to a backend instead of a VIP (their peer is shown as the VIP; the agent closes
/// them when their backend goes down).
pub const MAP_SOCK_REVNAT: &str = "SOCK_REVNAT";
/// `Array<u32>`, one entry: the clock tick until which a NAT connection's packet
/// that finds no flow or binding is held (dropped, counted `drop_upgrade_hold`)
/// instead of chosen anew or passed: the agent sets it while it carries an older
/// agent's connections into new maps (`lb-agent/src/dataplane/migrate`); 0 = never.
pub const MAP_UPGRADE_HOLD: &str = "UPGRADE_HOLD";
/// `Array<u32>`, one entry: 1 while the programs log their rare events (aya-log), 0
/// off; written by the agent after each load and reload (`[agent] dataplane_log`).
/// Not pinned: each load's program has its own, as it has its own log ring.
pub const MAP_LOG_SWITCH: &str = "LOG_SWITCH";
/// `PerCpuArray<u64>`, one entry: when this CPU last logged (ns): at most one line a
/// second per CPU reaches the log; the counters count every event.
pub const MAP_LOG_LAST: &str = "LOG_LAST";
/// aya-log's ring buffer, read by the agent that loaded the program.
pub const MAP_AYA_LOGS: &str = "AYA_LOGS";
/// Least time between two log lines of one CPU.
pub const LOG_INTERVAL_NS: u64 = 1_000_000_000;

// ---- Program names ----

/// The load balancer's XDP entry point.
pub const PROG_XDP: &str = "lb_xdp";
/// TC ingress companion: hands packets whose next hop had no neighbour entry to the
/// kernel's neighbour subsystem (`bpf_redirect_neigh`).
pub const PROG_TC_NEIGH: &str = "lb_tc_neigh";
/// TC egress companion: translates the replies of backends on this node (local
/// backends of NAT services) back to the VIP.
pub const PROG_TC_LOCAL_REPLY: &str = "lb_tc_local_reply";
/// Socket-level balancing (cgroup sock_addr programs): connects and unconnected UDP
/// sends to a VIP go to a backend chosen like the XDP program's; getpeername and
/// recvmsg show the VIP back. Name and attach type of each, in attach order.
pub const PROG_SOCK: [(&str, SockHook); 8] = [
    ("lb_sock_connect4", SockHook::Connect4),
    ("lb_sock_connect6", SockHook::Connect6),
    ("lb_sock_sendmsg4", SockHook::Sendmsg4),
    ("lb_sock_sendmsg6", SockHook::Sendmsg6),
    ("lb_sock_recvmsg4", SockHook::Recvmsg4),
    ("lb_sock_recvmsg6", SockHook::Recvmsg6),
    ("lb_sock_getpeername4", SockHook::Getpeername4),
    ("lb_sock_getpeername6", SockHook::Getpeername6),
];

/// The cgroup sock_addr hooks the socket programs attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockHook {
    Connect4,
    Connect6,
    Sendmsg4,
    Sendmsg6,
    Recvmsg4,
    Recvmsg6,
    Getpeername4,
    Getpeername6,
}

/// Benchmark floor: parse, swap MACs, XDP_TX. Not used by the agent.
pub const PROG_FLOOR: &str = "lb_floor";
/// Benchmark sink (object `lb-peer`): count and drop. Not used by the agent.
pub const PROG_SINK: &str = "lb_sink";
/// The sink's per-CPU counter.
pub const MAP_SINK_COUNT: &str = "SINK_COUNT";
/// Benchmark generator (object `lb-peer`): next source port, XDP_TX; run with
/// `BPF_PROG_TEST_RUN` in live-frames mode.
pub const PROG_GEN: &str = "lb_gen";
/// The generator's number of flows (`Array<u32>`, one entry).
pub const MAP_GEN_FLOWS: &str = "GEN_FLOWS";
/// The generator's header template (`Array<[u8; 42]>`, one entry).
pub const MAP_GEN_TEMPLATE: &str = "GEN_TEMPLATE";
/// Pass-everything program for the far end of a veth (object `lb-peer`), so XDP_TX
/// frames from the near end are received.
pub const PROG_PEER_PASS: &str = "lb_peer_pass";

// ---- Load-time globals (`.rodata`, set with `EbpfLoader::set_global`) ----

/// Entries per Maglev ring (a prime).
pub const GLOBAL_RING_SIZE: &str = "LB_RING_SIZE";
/// Number of VIP slots (bounds the ring index).
pub const GLOBAL_MAX_VIPS: &str = "LB_MAX_VIPS";
/// Lowest source port handed out for NAT flows.
pub const GLOBAL_SNAT_PORT_MIN: &str = "LB_SNAT_PORT_MIN";
/// Highest source port handed out for NAT flows.
pub const GLOBAL_SNAT_PORT_MAX: &str = "LB_SNAT_PORT_MAX";
/// Network namespace cookie (u64) whose sockets the socket programs balance; 0 =
/// sockets of every namespace.
pub const GLOBAL_NETNS_COOKIE: &str = "LB_NETNS_COOKIE";

// ---- Capacity defaults (the agent may override every one at load time) ----

/// Default Maglev ring size: prime, ~65k slots keeps the weight error well under 1%.
pub const DEFAULT_RING_SIZE: u32 = 65_537;
/// Default number of VIP slots.
pub const DEFAULT_MAX_VIPS: u32 = 64;
/// Default number of backend slots (all VIPs together).
pub const DEFAULT_MAX_BACKENDS: u32 = 4_096;
/// Default flow table entries (the NAT table gets as many).
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 262_144;
/// Default entries of the socket table (`MAP_SOCK_REVNAT`): sockets of this node
/// balanced at once whose peer is shown as the VIP (LRU: the oldest then show the
/// backend).
pub const DEFAULT_SOCK_TABLE_SIZE: u32 = 65_536;
/// Default NAT source port range: below the kernel's ephemeral range (32768-60999),
/// so the LB's own connections (health checks) never collide with NAT bindings.
pub const DEFAULT_SNAT_PORT_MIN: u16 = 1_024;
/// See [`DEFAULT_SNAT_PORT_MIN`].
pub const DEFAULT_SNAT_PORT_MAX: u16 = 32_767;
/// Linear probes tried when a NAT source port is taken before the flow is refused.
pub const SNAT_PORT_PROBES: u32 = 32;

// ---- Address families, as stored in keys (not the kernel's AF_* numbers) ----

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

// ---- IP protocol numbers ----

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

// ---- AddrInfo.flags ----

/// The address is a VIP with at least one exact-port service.
pub const ADDR_F_VIP_PORTS: u32 = 1 << 0;
/// The address is a VIP with an any-port service (VipKey.port == 0).
pub const ADDR_F_VIP_ANY_PORT: u32 = 1 << 1;
/// The address is a NAT source address: replies to it may need translating back.
pub const ADDR_F_SNAT: u32 = 1 << 2;
/// An address of this node that is a backend of a NAT service: its replies leaving
/// through an attached interface may need translating back to the VIP (TC egress).
pub const ADDR_F_LOCAL_BACKEND: u32 = 1 << 3;
/// A node-local VIP (on a loopback address) with exact-port services: served to
/// this node's own sockets only, never by the XDP program.
pub const ADDR_F_NODE_VIP_PORTS: u32 = 1 << 4;
/// A node-local VIP with an any-port service.
pub const ADDR_F_NODE_VIP_ANY_PORT: u32 = 1 << 5;
/// The bits that make the XDP program look further at a packet's destination.
pub const ADDR_F_XDP: u32 = ADDR_F_VIP_PORTS | ADDR_F_VIP_ANY_PORT | ADDR_F_SNAT;
/// Exact-port services of a VIP, as the socket programs look them up.
pub const ADDR_F_SOCK_PORTS: u32 = ADDR_F_VIP_PORTS | ADDR_F_NODE_VIP_PORTS;
/// Any-port services of a VIP, as the socket programs look them up.
pub const ADDR_F_SOCK_ANY_PORT: u32 = ADDR_F_VIP_ANY_PORT | ADDR_F_NODE_VIP_ANY_PORT;

// ---- VipMeta.flags ----

/// Forwarding mode: set = L2 direct server return, clear = full NAT.
pub const VIP_F_DSR: u32 = 1 << 0;
/// No healthy backend: set = answer TCP with RST, clear = drop.
pub const VIP_F_RESET: u32 = 1 << 1;
/// A DSR service whose VIP this node does not hold now (its VRRP instance is not
/// master): a new flow arriving here was sent by the holder to this node as a
/// backend, so it goes to the local stack instead of being balanced again (which,
/// with the nodes' views of health differing for a moment, could bounce it between
/// nodes). Not part of the snapshot established flows check.
pub const VIP_F_STANDBY: u32 = 1 << 2;

// ---- Backend.state (u32, not an enum or bool: keeps the Pod layout free of padding
//      and of invalid bit patterns) ----

/// Gets new flows and keeps its own.
pub const BACKEND_UP: u32 = 0;
/// Keeps its flows, gets no new ones (it is not in the ring).
pub const BACKEND_DRAIN: u32 = 1;
/// Never chosen; flows pinned to it are re-hashed on their next packet.
pub const BACKEND_DOWN: u32 = 2;

// ---- Backend.flags ----

/// The backend's address belongs to this node: packets for it are rewritten and
/// handed to the local stack (XDP_PASS) instead of routed; in NAT mode its replies
/// are translated back at TC egress.
pub const BACKEND_F_LOCAL: u8 = 1 << 0;

/// How long a cached next hop (egress interface and MACs of a backend) is used before
/// the route is looked up again: bounds how long a backend's MAC change goes unseen.
pub const NEXTHOP_TTL_NS: u64 = 1_000_000_000;

// ---- Flow state (FlowEntry.state, NatEntry.state) ----

/// TCP: the client's SYN seen, nothing more.
pub const FLOW_TCP_SYN: u8 = 1;
/// TCP: the handshake completed (the client's ACK, or the backend's reply, seen).
pub const FLOW_TCP_ESTABLISHED: u8 = 2;
/// TCP: the client sent the first FIN (the backend closes passively).
pub const FLOW_TCP_CLOSING: u8 = 3;
/// TCP: the backend sent the first FIN (it may hold TIME_WAIT for the 4-tuple).
pub const FLOW_TCP_TIME_WAIT: u8 = 4;
/// TCP: a RST seen from either side.
pub const FLOW_TCP_RESET: u8 = 5;
/// UDP: packets from the client only (so far).
pub const FLOW_UDP: u8 = 6;
/// UDP: the backend replied.
pub const FLOW_UDP_REPLIED: u8 = 7;
/// `FlowEntry::_pad` / `NatEntry::_pad[0]`: first written by the agent from a peer's
/// flow sync (the program leaves the byte alone when it refreshes the entry; shown
/// by `lb-agent flows`).
pub const FLOW_F_LEARNED: u8 = 1;

/// Number of flow states (index 0 unused); a power of two (`Timeouts` is indexed
/// with `state & (FLOW_STATES - 1)`).
pub const FLOW_STATES: usize = 8;

/// Flow ages are kept in ticks of 2^30 ns (about 1.07 s) of `CLOCK_MONOTONIC_COARSE`
/// (`bpf_ktime_get_coarse_ns() >> CLOCK_TICK_SHIFT`): a shift, not a division, on
/// the packet path.
pub const CLOCK_TICK_SHIFT: u32 = 30;

/// Ticks after its expiry during which the program may still take a NAT binding
/// over or give it back to its own flow (about an hour). Older bindings are never
/// written by the program again; only the agent's sweep deletes them, and only
/// those: so the sweep, which reads an entry before it deletes it, can never delete
/// a binding the program has just made a flow's (the program cannot compare and
/// delete in one step, nor can the sweep). The wide window keeps ports reusable for
/// an hour of churn with no agent running.
pub const NAT_RECLAIM_TICKS: u32 = 3_353;

/// Ring entry meaning "no backend".
pub const NO_BACKEND: u32 = u32::MAX;

// ---- XDP metadata handed to the TC companion when the neighbour is unresolved ----

/// Marks [`crate::NeighMeta`] in front of a passed packet.
pub const NEIGH_META_MAGIC: u32 = 0x4c42_4e48; // "LBNH"
