//! `lb_peer_pass`: an XDP program that passes everything, for the far end of a veth
//! whose near end runs the load balancer. On this kernel a veth only picks up frames
//! sent to it with XDP_TX/redirect when it has an XDP program of its own (GRO alone
//! does not wake its NAPI), so labs and benchmarks attach this one there.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn lb_peer_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
