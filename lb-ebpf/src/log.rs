//! The programs' rare events, written with aya-log into its ring buffer and forwarded
//! by the agent into its own log: a map write that failed, a packet dropped in a
//! state that should not happen, a backend's NAT ports exhausted. Off the fast path:
//! each is a call of its own made only when the event happens, checks the agent's
//! switch (`LOG_SWITCH`, `[agent] dataplane_log`) and writes at most one line a second
//! per CPU (`LOG_LAST`); the counters still count every event.
//!
//! Each writer is a global BPF function (exported by name, `LOG_FUNCTIONS` in
//! lb-agent/build.rs): the verifier checks it once, on its own, instead of at every
//! call site in every state the packet path reaches there, which would take the XDP
//! program past the verifier's budget. So their arguments are plain numbers.

use aya_ebpf::{
    helpers::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use aya_log_ebpf::{error, warn};
use lb_common::{FAMILY_V4, LOG_INTERVAL_NS};

use crate::maps;

#[map]
static LOG_SWITCH: Array<u32> = Array::with_max_entries(1, 0);

#[map]
static LOG_LAST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Whether a line may be written now: logging on, and this CPU's last line a second
/// ago or more.
#[inline(always)]
fn allowed() -> bool {
    if !LOG_SWITCH.get(0).is_some_and(|on| *on != 0) {
        return false;
    }
    let Some(last) = LOG_LAST.get_ptr_mut(0) else {
        return false;
    };
    let last = maps::value_mut(last);
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if *last != 0 && now.wrapping_sub(*last) < LOG_INTERVAL_NS {
        return false;
    }
    *last = now;
    true
}

/// Which map a failed write was for.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Table {
    Flows,
    Nat,
    SockRevnat,
}

/// A map insert failed with `err` (an LRU map under memory pressure: the flow
/// re-hashes to the same backend on its next packet, so nothing breaks at once).
#[inline(always)]
pub fn insert_failed(table: Table, err: i32) {
    let _ = lb_log_insert_failed(table as u32, err);
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lb_log_insert_failed(table: u32, err: i32) -> u32 {
    if !allowed() {
        return 0;
    }
    if table == Table::Flows as u32 {
        error!(
            (),
            "FLOWS insert failed (error {}): a flow goes unremembered", err
        );
    } else if table == Table::Nat as u32 {
        error!(
            (),
            "NAT insert failed (error {}): a reply may find no binding", err
        );
    } else {
        error!(
            (),
            "SOCK_REVNAT insert failed (error {}): a socket's peer shows its backend", err
        );
    }
    1
}

/// Where a packet was dropped in a state that should not happen
/// (`drop_internal`).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Internal {
    /// The rewritten frame has no Ethernet header in bounds.
    EthernetHeader,
    /// `bpf_xdp_adjust_meta` refused room for the neighbour metadata.
    AdjustMeta,
    /// The metadata area is not where it was asked for.
    MetaBounds,
    /// `bpf_xdp_adjust_tail` refused to shrink the frame to the RST.
    AdjustTail,
    /// The RST could not be written over the segment.
    ResetBuild,
    /// The per-CPU scratch space is missing (the packet is passed, not dropped).
    Scratch,
}

/// A packet dropped (or passed) at `site`, where nothing should fail.
#[inline(always)]
pub fn internal(site: Internal) {
    let _ = lb_log_internal(site as u32);
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lb_log_internal(site: u32) -> u32 {
    if !allowed() {
        return 0;
    }
    if site == Internal::EthernetHeader as u32 {
        error!((), "drop_internal: no Ethernet header to rewrite");
    } else if site == Internal::AdjustMeta as u32 {
        error!(
            (),
            "drop_internal: bpf_xdp_adjust_meta refused the neighbour metadata"
        );
    } else if site == Internal::MetaBounds as u32 {
        error!((), "drop_internal: the neighbour metadata is out of bounds");
    } else if site == Internal::AdjustTail as u32 {
        error!(
            (),
            "drop_internal: bpf_xdp_adjust_tail refused to shrink the frame to a RST"
        );
    } else if site == Internal::ResetBuild as u32 {
        error!((), "drop_internal: the RST could not be written");
    } else {
        error!((), "pass_parse_error: the per-CPU scratch space is missing");
    }
    1
}

/// Every NAT port of VIP `vip_id`'s SNAT addresses to backend `addr` (words as the
/// maps hold them, `family`) port `port` (network order) is held by a live
/// connection: a new flow was dropped (`drop_snat_exhausted`).
#[inline(always)]
pub fn snat_exhausted(vip_id: u32, addr: &[u32; 4], family: u8, port: u16) {
    let pair = |a: u32, b: u32| u64::from(a) | u64::from(b) << 32;
    let _ = lb_log_snat_exhausted(
        vip_id,
        u32::from(family),
        u32::from(u16::from_be(port)),
        pair(addr[0], addr[1]),
        pair(addr[2], addr[3]),
    );
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lb_log_snat_exhausted(
    vip_id: u32,
    family: u32,
    port: u32,
    lo: u64,
    hi: u64,
) -> u32 {
    if !allowed() {
        return 0;
    }
    if family == u32::from(FAMILY_V4) {
        let a = u32::from_be(lo as u32);
        warn!(
            (),
            "drop_snat_exhausted: no free NAT port to backend {:i}:{} (VIP slot {})",
            a,
            port,
            vip_id
        );
    } else {
        let mut a = [0u8; 16];
        for (i, w) in [lo as u32, (lo >> 32) as u32, hi as u32, (hi >> 32) as u32]
            .iter()
            .enumerate()
        {
            let b = w.to_ne_bytes();
            a[i * 4] = b[0];
            a[i * 4 + 1] = b[1];
            a[i * 4 + 2] = b[2];
            a[i * 4 + 3] = b[3];
        }
        warn!(
            (),
            "drop_snat_exhausted: no free NAT port to backend [{:i}]:{} (VIP slot {})",
            a,
            port,
            vip_id
        );
    }
    1
}
