//! Programs for the far end of a veth whose near end runs the load balancer. On this
//! kernel a veth only picks up frames sent to it with XDP_TX/redirect when it has an
//! XDP program of its own (GRO alone does not wake its NAPI).
//! - `lb_peer_pass`: passes everything (labs);
//! - `lb_sink`: counts and drops (benchmarks: what the load balancer sent).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};

/// Packets the sink dropped.
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn lb_peer_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn lb_sink(_ctx: XdpContext) -> u32 {
    if let Some(p) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *p += 1 }
    }
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
