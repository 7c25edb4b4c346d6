//! Global counters: one per verdict and reason, indexes of [`crate::MAP_STATS`].

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident = $idx:literal, $label:literal;)+) => {
        /// Why the program did what it did with a packet. Every packet bumps exactly one
        /// of these, so they add up to the packets seen.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $($(#[doc = $doc])* $name = $idx,)+
        }

        impl Counter {
            /// Every counter, in index order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)+];

            /// Stable snake_case name (metrics label, CLI column).
            pub const fn label(self) -> &'static str {
                match self { $(Counter::$name => $label,)+ }
            }
        }
    };
}

counters! {
    /// PASS: not IPv4/IPv6 (ARP, LLDP, ...).
    PassNotIp = 0, "pass_not_ip";
    /// PASS: destination is none of our addresses.
    PassNotVip = 1, "pass_not_vip";
    /// PASS: to a VIP address but no service on that port/protocol (e.g. ssh to the VIP).
    PassNoService = 2, "pass_no_service";
    /// PASS: a header was truncated or malformed; the kernel decides.
    PassParseError = 3, "pass_parse_error";
    /// PASS: an IP fragment (no L4 ports to hash); the kernel reassembles.
    PassFragment = 4, "pass_fragment";
    /// PASS: an IPv6 extension header we do not walk.
    PassIpv6Ext = 5, "pass_ipv6_ext";
    /// PASS: ICMP to a VIP that is not an error about one of our flows (e.g. ping).
    PassIcmpLocal = 6, "pass_icmp_local";
    /// PASS: to a NAT source address with no binding (the LB's own traffic).
    PassNatNoEntry = 7, "pass_nat_no_entry";
    /// PASS: next hop has no neighbour entry; handed to the kernel to resolve.
    PassNoNeigh = 8, "pass_no_neigh";
    /// TX/REDIRECT: a client packet forwarded to its backend.
    FwdToBackend = 9, "fwd_to_backend";
    /// TX/REDIRECT: a NAT reply translated back to the client.
    FwdNatReply = 10, "fwd_nat_reply";
    /// TX/REDIRECT: an ICMP error about a VIP flow relayed to the flow's backend.
    FwdIcmpError = 11, "fwd_icmp_error";
    /// TX: no healthy backend, TCP RST sent back (VIP `on_no_backend = reset`).
    TxReset = 12, "tx_reset";
    /// DROP: no healthy backend (VIP `on_no_backend = drop`, or not TCP).
    DropNoBackend = 13, "drop_no_backend";
    /// DROP: the route lookup failed (unreachable, blackhole, prohibited, ...).
    DropFibFailed = 14, "drop_fib_failed";
    /// DROP: no free NAT source port for this backend after every probe.
    DropSnatExhausted = 15, "drop_snat_exhausted";
    /// DROP: the packet could not be rewritten (head/tail adjust failed).
    DropInternal = 16, "drop_internal";
    /// Not a verdict: flows re-hashed because their backend went down or was replaced.
    FlowRehashed = 17, "flow_rehashed";
    /// Not a verdict (TC): packets redirected through the neighbour subsystem.
    TcRedirectNeigh = 18, "tc_redirect_neigh";
    /// PASS: a client packet for a backend on this node, rewritten (NAT) and handed
    /// to the local stack.
    FwdToLocal = 19, "fwd_to_local";
    /// Not a verdict (TC egress): a local backend's reply translated back to the VIP.
    TcLocalReply = 20, "tc_local_reply";
    /// Not a verdict (socket programs): a connect or UDP send of this node to a VIP
    /// sent to a backend instead.
    SockBalanced = 21, "sock_balanced";
    /// Not a verdict (socket programs): a connect or UDP send to a VIP with no backend
    /// up, refused with ECONNREFUSED.
    SockNoBackend = 22, "sock_no_backend";
    /// PASS: a new flow of a DSR VIP this node does not hold (VRRP backup): the
    /// holder sent it here as to a backend, so the local stack takes it.
    PassStandby = 23, "pass_standby";
    /// Not a verdict: a packet found its flow expired (idle past its state's
    /// timeout, or a SYN reusing a closed flow's 5-tuple): chosen again.
    FlowExpired = 24, "flow_expired";
    /// Not a verdict: a NAT port claim took over an expired binding at once.
    NatPortReused = 25, "nat_port_reused";
    /// Not a verdict: a flow's NAT binding was gone (evicted, or swept) at its
    /// periodic check: a port claimed again.
    NatBindingLost = 26, "nat_binding_lost";
    /// PASS: to a SNAT address, for an expired NAT binding (the connection is over).
    PassNatExpired = 27, "pass_nat_expired";
    /// Not a verdict: a TCP packet without SYN for a flow the table does not hold
    /// (evicted or swept, or begun through another LB node): chosen as a new one.
    FlowMidstream = 28, "flow_midstream";
    /// DROP: a NAT connection's packet (a client's without SYN, or a backend's
    /// reply) that found no flow or binding while an upgrade carries the old maps'
    /// into new ones (`MAP_UPGRADE_HOLD`): its sender sends it again once copied.
    DropUpgradeHold = 29, "drop_upgrade_hold";
}

/// Number of global counters ([`crate::MAP_STATS`] max_entries).
pub const COUNTER_COUNT: u32 = 30;

const _: () = assert!(Counter::DropUpgradeHold as u32 + 1 == COUNTER_COUNT);
