//! Full NAT: source port allocation for client flows and reply translation.
//!
//! A binding is the NAT map entry keyed by the reply's 5-tuple (backend -> SNAT
//! address:port). Ports are claimed with `BPF_NOEXIST`, so two CPUs can never hand out
//! the same (SNAT address, port, backend, backend port, protocol): no collisions under
//! load. Forward packets check their binding still exists (the LRU may evict it) and
//! claim a new one if not, so an evicted port is never shared by two live flows.

use aya_ebpf::bindings::BPF_NOEXIST;
use lb_common::{FlowKey, NatEntry, NextHop, SNAT_PORT_PROBES, hash::flow_hash};

use crate::{
    maps::{self, NAT, Scratch},
    packet::htons,
};

/// The reply 5-tuple of a client flow sent to `backend_addr:backend_port` from
/// `snat_addr:port`, into `out`.
#[inline(always)]
pub fn reply_key(
    client: &FlowKey,
    backend_addr: &[u32; 4],
    backend_port: u16,
    snat_addr: &[u32; 4],
    port: u16,
    out: &mut FlowKey,
) {
    out.src = *backend_addr;
    out.dst = *snat_addr;
    out.sport = backend_port;
    out.dport = port;
    out.proto = client.proto;
    out.family = client.family;
    out._pad = [0; 2];
}

/// Claims a source port (network order) for the flow `s.key` towards `s.choice`,
/// probing linearly from a hash of the flow; `s.reply` ends as the binding's key.
/// 0 when every probe is taken. (Few arguments and a scalar result: BPF calls pass at
/// most five registers and no stack.)
#[inline(never)]
pub fn claim_port(s: &mut Scratch, backend_port: u16) -> u16 {
    let (vip, client, to) = (&s.vip, &s.key, &s.choice);
    let (min, max) = maps::snat_port_range();
    let max = if max > 0xffff { 0xffff } else { max };
    if max < min {
        return 0;
    }
    // Non-zero: at most 0x10000.
    let span = max - min + 1;
    if span == 0 {
        return 0;
    }
    let entry = NatEntry {
        client: client.src,
        vip: client.dst,
        client_port: client.sport,
        vip_port: client.dport,
        vip_id: vip.id,
        backend: to.id,
        _pad: 0,
        nh: NextHop {
            expires_ns: 0,
            ifindex: 0,
            smac: [0; 6],
            dmac: [0; 6],
        },
    };
    // Start away from the Maglev position bits so neighbouring flows spread.
    let start = flow_hash(client).rotate_right(13);
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by value would copy the 40-byte key onto the 512-byte BPF stack"
    )]
    for i in 0..SNAT_PORT_PROBES {
        let port = htons((min + (start.wrapping_add(i)) % span) as u16);
        reply_key(
            client,
            &to.backend.addr,
            backend_port,
            &vip.snat_addr,
            port,
            &mut s.reply,
        );
        if NAT.insert(&s.reply, &entry, BPF_NOEXIST as u64).is_ok()
            || maps::nat_owned_by(&s.reply, client)
        {
            return port;
        }
    }
    0
}

/// The binding of a packet arriving at a SNAT address, if it is a NAT reply: copied
/// into `out`, and a pointer to the map value (its next-hop cache) returned.
#[inline(always)]
pub fn binding(reply: &FlowKey, out: &mut NatEntry) -> Option<*mut NatEntry> {
    let p = NAT.get_ptr_mut(reply)?;
    maps::copy_into(p, out);
    Some(p)
}
