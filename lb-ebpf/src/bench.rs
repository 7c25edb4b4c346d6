//! `lb_floor`, for `cargo xtask bench-dp` only (the agent never attaches it): the
//! least any forwarder does (parse to the IP header, swap MACs, XDP_TX), the
//! yardstick for the load balancer's own cost. It shares the load balancer's parser.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{headers::EthAddrs, packet::Packet, parse};

#[xdp]
pub fn lb_floor(ctx: XdpContext) -> u32 {
    let pkt = Packet::new(&ctx);
    if parse::l3_offset(&pkt).is_none() {
        return xdp_action::XDP_PASS;
    }
    let Some(eth) = EthAddrs::at(&pkt) else {
        return xdp_action::XDP_PASS;
    };
    eth.swap();
    xdp_action::XDP_TX
}
