//! Programs for `cargo xtask bench-dp` only (the agent never attaches them):
//! - `lb_floor`: the least any forwarder does (parse to the IP header, swap MACs,
//!   XDP_TX), the yardstick for the load balancer's own cost;
//! - `lb_sink`: counts and drops what the load balancer sent, on the far veth end.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};

use crate::{packet::Packet, parse};

/// Packets the sink dropped.
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn lb_floor(ctx: XdpContext) -> u32 {
    let pkt = Packet::new(&ctx);
    if parse::l3_offset(&pkt).is_none() {
        return xdp_action::XDP_PASS;
    }
    let Some(eth) = pkt.words::<6>(0) else {
        return xdp_action::XDP_PASS;
    };
    let (d0, d1, d2) = (eth.get(0), eth.get(1), eth.get(2));
    eth.set(0, eth.get(3));
    eth.set(1, eth.get(4));
    eth.set(2, eth.get(5));
    eth.set(3, d0);
    eth.set(4, d1);
    eth.set(5, d2);
    xdp_action::XDP_TX
}

#[xdp]
pub fn lb_sink(_ctx: XdpContext) -> u32 {
    if let Some(p) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *p += 1 }
    }
    xdp_action::XDP_DROP
}
