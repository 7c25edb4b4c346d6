//! In-place address and port rewrites with incremental checksum updates (IPv4 header
//! checksum, TCP/UDP checksums including the pseudo-header, IPv4 and IPv6).

use lb_common::{FAMILY_V4, FlowKey, PROTO_TCP, PROTO_UDP};

use crate::{csum::Delta, fib::Out, packet::Packet, parse::Ip};

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
        let h = pkt.words::<10>(ip.l3)?;
        h.set(5, addrs.apply(h.get(5)));
        h.set32(6, to.src[0]);
        h.set32(8, to.dst[0]);
    } else {
        let h = pkt.words::<20>(ip.l3)?;
        h.set32(4, to.src[0]);
        h.set32(6, to.src[1]);
        h.set32(8, to.src[2]);
        h.set32(10, to.src[3]);
        h.set32(12, to.dst[0]);
        h.set32(14, to.dst[1]);
        h.set32(16, to.dst[2]);
        h.set32(18, to.dst[3]);
    }
    let l4 = addrs.word(sport, to.sport).word(dport, to.dport);
    if ip.proto == PROTO_TCP {
        let t = pkt.words::<10>(ip.l4)?;
        t.set(0, to.sport);
        t.set(1, to.dport);
        t.set(8, l4.apply(t.get(8)));
    } else if ip.proto == PROTO_UDP {
        let u = pkt.words::<4>(ip.l4)?;
        u.set(0, to.sport);
        u.set(1, to.dport);
        // IPv6 UDP always carries a checksum; IPv4 may send 0 (none), kept as is.
        u.set(3, l4.apply_udp(u.get(3)));
    }
    Some(())
}
