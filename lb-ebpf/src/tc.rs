//! TC ingress companion of `lb_xdp`: a packet the XDP program passed because its next
//! hop had no neighbour entry carries `NeighMeta`; redirect it with
//! `bpf_redirect_neigh`, which makes the kernel resolve the neighbour and transmit.
//! Every other packet continues untouched (one length compare).

use aya_ebpf::{
    bindings::{TC_ACT_OK, bpf_redir_neigh},
    helpers::bpf_redirect_neigh,
    macros::classifier,
    programs::TcContext,
};
use lb_common::{Counter, FAMILY_V4, NEIGH_META_MAGIC, NeighMeta};

use crate::{
    maps::count,
    packet::{AF_INET, AF_INET6},
};

#[classifier]
pub fn lb_tc_neigh(ctx: TcContext) -> i32 {
    // SAFETY: reads the skb's data_meta/data fields, then the metadata only after the
    // verifier-visible bounds check against data.
    let (meta, data) = unsafe {
        (
            (*ctx.skb.skb).data_meta as usize,
            (*ctx.skb.skb).data as usize,
        )
    };
    if meta + size_of::<NeighMeta>() > data {
        return TC_ACT_OK;
    }
    // SAFETY: [meta, meta + size_of::<NeighMeta>()) checked just above.
    let m = unsafe { core::ptr::read_unaligned(meta as *const NeighMeta) };
    if m.magic != NEIGH_META_MAGIC {
        return TC_ACT_OK;
    }
    let mut nh: bpf_redir_neigh = unsafe { core::mem::zeroed() };
    nh.nh_family = if m.family == u32::from(FAMILY_V4) {
        u32::from(AF_INET)
    } else {
        u32::from(AF_INET6)
    };
    // SAFETY: the union holds either an IPv4 word or an IPv6 address; we write the
    // bytes of `nexthop` (IPv4 uses the first word).
    unsafe {
        core::ptr::write_unaligned(
            (&raw mut nh).cast::<u8>().add(4).cast::<[u32; 4]>(),
            m.nexthop,
        );
    };
    count(Counter::TcRedirectNeigh);
    // SAFETY: `nh` is a live bpf_redir_neigh of the size passed.
    unsafe {
        bpf_redirect_neigh(
            m.ifindex,
            &raw mut nh,
            size_of::<bpf_redir_neigh>() as i32,
            0,
        ) as i32
    }
}
