//! In-place address and port rewrites with incremental checksum updates (IPv4 header
//! checksum, TCP/UDP checksums including the pseudo-header, IPv4 and IPv6).

use lb_common::{FAMILY_V4, FlowKey, PROTO_TCP, PROTO_UDP};

use crate::{
    csum::Delta,
    fib::Out,
    headers::{Ipv4, Ipv6, Tcp, Udp},
    packet::Packet,
    parse::Ip,
};

/// Writes `to` into the packet's IP and TCP/UDP headers, whose current addresses are
/// `from`'s (ports are read from the packet). False if a header went missing.
#[inline(never)]
pub fn endpoints(pkt: &Packet, ip: &Ip, from: &FlowKey, to: &Out) -> bool {
    rewrite(pkt, ip, from, to).is_some()
}

/// `endpoints`, inlined into the caller: for a caller whose own frame would
/// otherwise push the call chain past the 512-byte BPF stack.
#[inline(always)]
pub fn rewrite(pkt: &Packet, ip: &Ip, from: &FlowKey, to: &Out) -> Option<()> {
    let (sport, dport) = (from.sport, from.dport);
    let v4 = ip.family == FAMILY_V4;
    let addrs = Delta::new()
        .addr(v4, &from.src, &to.src)
        .addr(v4, &from.dst, &to.dst);
    if v4 {
        let h = Ipv4::at(pkt, ip.l3)?;
        h.set_check(addrs.apply(h.check()));
        h.set_saddr(to.src[0]);
        h.set_daddr(to.dst[0]);
    } else {
        let h = Ipv6::at(pkt, ip.l3)?;
        h.set_saddr(&to.src);
        h.set_daddr(&to.dst);
    }
    let l4 = addrs.word(sport, to.sport).word(dport, to.dport);
    if ip.proto == PROTO_TCP {
        let t: Tcp = Tcp::at(pkt, ip.l4)?;
        t.set_ports(to.sport, to.dport);
        t.set_check(l4.apply(t.check()));
    } else if ip.proto == PROTO_UDP {
        let u = Udp::at(pkt, ip.l4)?;
        u.set_ports(to.sport, to.dport);
        // IPv6 UDP always carries a checksum; IPv4 may send 0 (none), kept as is.
        u.set_check(l4.apply_udp(u.check()));
    }
    Some(())
}
