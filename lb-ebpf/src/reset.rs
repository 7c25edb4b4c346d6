//! TCP RST for a VIP with no healthy backend (`on_no_backend = reset`): the packet is
//! turned into the RST in place (IPv4 options and IPv6 extensions dropped), trimmed
//! and sent back out with XDP_TX.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use lb_common::{Counter, FAMILY_V4, FlowKey, PROTO_TCP};

use crate::{
    csum::Sum,
    maps::count,
    packet::{IPV4_HLEN, IPV6_HLEN, Packet, TCP_HLEN, htonl, htons, ntohl, ntohs, swap_macs},
    parse::Ip,
};

const TCP_FIN: u16 = 0x01;
const TCP_SYN: u16 = 0x02;
const TCP_RST: u16 = 0x04;
const TCP_ACK: u16 = 0x10;
const RST_TTL: u16 = 64;

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
            xdp_action::XDP_DROP
        }
    }
}

/// Writes the RST; `Some(None)` when the segment must not be answered (it is a RST),
/// `Some(Some(len))` with the new frame length.
#[inline(always)]
fn build(pkt: &Packet, ip: &Ip, key: &FlowKey) -> Option<Option<usize>> {
    let t = pkt.words::<10>(ip.l4)?;
    let flags_word = ntohs(t.get(6));
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
    let (sport, dport) = (t.get(0), t.get(1));
    let (seq, ack) = (ntohl(t.get32(2)), ntohl(t.get32(4)));
    let (rseq, rack, rflags) = if flags & TCP_ACK != 0 {
        (ack, 0, TCP_RST)
    } else {
        let len = payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
        (0, seq.wrapping_add(len), TCP_RST | TCP_ACK)
    };

    // Ethernet: back to where it came from.
    let eth = pkt.words::<6>(0)?;
    swap_macs(eth);

    let tcp_len = htons(TCP_HLEN as u16);
    let mut pseudo = Sum::new();
    let l4 = if ip.family == FAMILY_V4 {
        let h = pkt.words::<10>(ip.l3)?;
        h.set(0, htons(0x4500));
        h.set(1, htons((IPV4_HLEN + TCP_HLEN) as u16));
        h.set(2, 0);
        h.set(3, htons(0x4000)); // DF
        h.set(4, htons(RST_TTL << 8 | u16::from(PROTO_TCP)));
        h.set(5, 0);
        h.set32(6, key.dst[0]);
        h.set32(8, key.src[0]);
        let mut s = Sum::new();
        for i in 0..10 {
            s = s.word(h.get(i));
        }
        h.set(5, s.finish());
        pseudo = pseudo.word32(key.dst[0]).word32(key.src[0]);
        ip.l3 + IPV4_HLEN
    } else {
        let h = pkt.words::<20>(ip.l3)?;
        h.set(0, htons(0x6000));
        h.set(1, 0);
        h.set(2, tcp_len);
        h.set(3, htons(u16::from(PROTO_TCP) << 8 | RST_TTL));
        for i in 0..4 {
            h.set32(4 + 2 * i, key.dst[i]);
            h.set32(12 + 2 * i, key.src[i]);
            pseudo = pseudo.word32(key.dst[i]).word32(key.src[i]);
        }
        ip.l3 + IPV6_HLEN
    };
    let t = pkt.words::<10>(l4)?;
    t.set(0, dport);
    t.set(1, sport);
    t.set32(2, htonl(rseq));
    t.set32(4, htonl(rack));
    t.set(6, htons(5 << 12 | rflags));
    t.set(7, 0);
    t.set(8, 0);
    t.set(9, 0);
    let mut s = pseudo.word(htons(u16::from(PROTO_TCP))).word(tcp_len);
    for i in 0..10 {
        s = s.word(t.get(i));
    }
    t.set(8, s.finish());
    Some(Some(l4 + TCP_HLEN))
}
