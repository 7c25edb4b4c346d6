//! TCP RST for a VIP with no healthy backend (`on_no_backend = reset`): the packet is
//! turned into the RST in place (IPv4 options and IPv6 extensions dropped), trimmed
//! and sent back out with XDP_TX.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use lb_common::{Counter, FAMILY_V4, FlowKey, PROTO_TCP};

use crate::{
    csum::Sum,
    headers::{EthAddrs, Ipv4, Ipv6, Tcp},
    maps::count,
    packet::{IPV4_HLEN, IPV6_HLEN, Packet, TCP_HLEN, htonl, htons, ntohl, ntohs},
    parse::Ip,
};

const TCP_FIN: u16 = 0x01;
const TCP_SYN: u16 = 0x02;
const TCP_RST: u16 = 0x04;
const TCP_ACK: u16 = 0x10;
const RST_TTL: u8 = 64;

/// Answers the TCP segment with a RST (RFC 9293 3.10.7.1). A RST is never answered.
#[inline(never)]
pub fn send(ctx: &XdpContext, pkt: &Packet, ip: &Ip, key: &FlowKey) -> u32 {
    match build(pkt, ip, key) {
        Some(Some(new_len)) => {
            let delta = new_len as i32 - pkt.len() as i32;
            // SAFETY: shrinks the frame to the RST just written; nothing reads the old
            // packet pointers afterwards.
            if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
                count(Counter::DropInternal);
                crate::log::internal(crate::log::Internal::AdjustTail);
                return xdp_action::XDP_DROP;
            }
            count(Counter::TxReset);
            xdp_action::XDP_TX
        }
        Some(None) => {
            count(Counter::DropNoBackend);
            xdp_action::XDP_DROP
        }
        None => {
            count(Counter::DropInternal);
            crate::log::internal(crate::log::Internal::ResetBuild);
            xdp_action::XDP_DROP
        }
    }
}

/// Writes the RST; `Some(None)` when the segment must not be answered (it is a RST),
/// `Some(Some(len))` with the new frame length.
#[inline(always)]
fn build(pkt: &Packet, ip: &Ip, key: &FlowKey) -> Option<Option<usize>> {
    let t: Tcp = Tcp::at(pkt, ip.l4)?;
    let flags_word = ntohs(t.offset_flags());
    let flags = flags_word & 0x3f;
    if flags & TCP_RST != 0 {
        return Some(None);
    }
    let doff = ((flags_word >> 12) as usize) * 4;
    let hdr_len = ip.l4 - ip.l3;
    if doff < TCP_HLEN || ip.ip_len < hdr_len + doff {
        return Some(None);
    }
    let payload = (ip.ip_len - hdr_len - doff) as u32;
    let (sport, dport) = (t.source(), t.dest());
    let (seq, ack) = (ntohl(t.seq()), ntohl(t.ack()));
    let (rseq, rack, rflags) = if flags & TCP_ACK != 0 {
        (ack, 0, TCP_RST)
    } else {
        let len = payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
        (0, seq.wrapping_add(len), TCP_RST | TCP_ACK)
    };

    // Ethernet: back to where it came from.
    EthAddrs::at(pkt)?.swap();

    let tcp_len = htons(TCP_HLEN as u16);
    let mut pseudo = Sum::new();
    let l4 = if ip.family == FAMILY_V4 {
        let h = Ipv4::at(pkt, ip.l3)?;
        h.write_fixed(htons((IPV4_HLEN + TCP_HLEN) as u16), RST_TTL, PROTO_TCP);
        h.set_check(0);
        h.set_saddr(key.dst[0]);
        h.set_daddr(key.src[0]);
        let mut s = Sum::new();
        for i in 0..10 {
            s = s.word(h.words().get(i));
        }
        h.set_check(s.finish());
        pseudo = pseudo.word32(key.dst[0]).word32(key.src[0]);
        ip.l3 + IPV4_HLEN
    } else {
        let h = Ipv6::at(pkt, ip.l3)?;
        h.write_fixed(tcp_len, PROTO_TCP, RST_TTL);
        h.set_saddr(&key.dst);
        h.set_daddr(&key.src);
        for i in 0..4 {
            pseudo = pseudo.word32(key.dst[i]).word32(key.src[i]);
        }
        ip.l3 + IPV6_HLEN
    };
    let t: Tcp = Tcp::at(pkt, l4)?;
    t.set_ports(dport, sport);
    t.set_seq(htonl(rseq));
    t.set_ack(htonl(rack));
    t.set_offset_flags(htons(5 << 12 | rflags));
    t.set_window(0);
    t.set_check(0);
    t.set_urgent(0);
    let mut s = pseudo.word(htons(u16::from(PROTO_TCP))).word(tcp_len);
    for i in 0..10 {
        s = s.word(t.words().get(i));
    }
    t.set_check(s.finish());
    Some(Some(l4 + TCP_HLEN))
}
