//! Programs for the far end of a veth whose near end runs the load balancer. On this
//! kernel a veth only picks up frames sent to it with XDP_TX/redirect when it has an
//! XDP program of its own (GRO alone does not wake its NAPI).
//! - `lb_peer_pass`: passes everything (labs);
//! - `lb_sink`: counts and drops (benchmarks: what the load balancer sent);
//! - `lb_gen`: the benchmark's packet generator, run with `BPF_PROG_TEST_RUN` in
//!   live-frames mode: writes the headers of an IPv4/UDP frame from a template with
//!   the next source port of a range (one flow per port) and sends it with XDP_TX.
//!   The whole header is rewritten each time: live frames are recycled with whatever
//!   the receiver (a NAT rewriting in place) left in them.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};

/// Packets the sink dropped.
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The generator's flows (source ports from `GEN_PORT_BASE`); 0 means 1.
#[map]
static GEN_FLOWS: Array<u32> = Array::with_max_entries(1, 0);

/// The generator's Ethernet + IPv4 + UDP header (42 bytes), source port included.
#[map]
static GEN_TEMPLATE: Array<[u8; GEN_HEADER]> = Array::with_max_entries(1, 0);

/// Length of the generator's headers: Ethernet, 20-byte IPv4, UDP.
const GEN_HEADER: usize = 14 + 20 + 8;

/// The generator's frame counter on each CPU.
#[map]
static GEN_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// First source port of the generator's flows.
const GEN_PORT_BASE: u32 = 1024;
/// Offset of the UDP source port in an Ethernet + 20-byte IPv4 header frame.
const UDP_SPORT: usize = 14 + 20;

#[xdp]
pub fn lb_gen(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + GEN_HEADER > end {
        return xdp_action::XDP_ABORTED;
    }
    let Some(template) = GEN_TEMPLATE.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: bounds checked above against data_end.
    unsafe { core::ptr::write_unaligned(data as *mut [u8; GEN_HEADER], *template) };
    let flows = GEN_FLOWS.get(0).copied().unwrap_or(1).max(1);
    let Some(seq) = GEN_SEQ.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: this CPU's slot of a per-CPU array.
    let n = unsafe {
        *seq = (*seq).wrapping_add(1);
        *seq
    };
    let port = (GEN_PORT_BASE + n % flows) as u16;
    // SAFETY: bounds checked above against data_end. The UDP checksum of the frames
    // is 0 (none, allowed for IPv4), so changing the port needs no fix-up.
    unsafe { core::ptr::write_unaligned((data + UDP_SPORT) as *mut [u8; 2], port.to_be_bytes()) };
    xdp_action::XDP_TX
}

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
