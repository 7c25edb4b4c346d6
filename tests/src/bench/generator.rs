//! The packet generator: `lb_gen` run with `BPF_PROG_TEST_RUN` in live-frames mode
//! from the generator's namespace. The kernel turns each run into a real frame sent
//! with XDP_TX out of the given interface, so the generator costs a few tens of ns
//! per packet on its core and outruns any forwarder on the other.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::Array,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};
use lb_agent::{dataplane::LB_PEER_OBJECT, lab::Netns};
use lb_common::{MAP_GEN_FLOWS, MAP_GEN_TEMPLATE, PROG_GEN};

use crate::packet::Frame;

/// Ethernet + IPv4 + UDP header length (the template `lb_gen` writes).
const HEADER: usize = 42;
/// Frames per `BPF_PROG_TEST_RUN` call.
const REPEAT: u32 = 1 << 18;
/// Frames the kernel sends per batch.
const BATCH: u32 = 64;

pub struct Generator {
    ebpf: Ebpf,
}

impl Generator {
    /// Loads `lb_gen` to send `frame` over `flows` source ports.
    pub fn load(frame: &[u8], flows: u32) -> Result<Self> {
        let mut ebpf = Ebpf::load(LB_PEER_OBJECT)?;
        let mut m: Array<_, u32> =
            Array::try_from(ebpf.map_mut(MAP_GEN_FLOWS).context("generator flows map")?)?;
        m.set(0, flows, 0)?;
        let header: [u8; HEADER] = frame
            .get(..HEADER)
            .and_then(|h| h.try_into().ok())
            .context("frame shorter than its headers")?;
        let mut t: Array<_, [u8; HEADER]> = Array::try_from(
            ebpf.map_mut(MAP_GEN_TEMPLATE)
                .context("generator template map")?,
        )?;
        t.set(0, header, 0)?;
        let p: &mut Xdp = ebpf
            .program_mut(PROG_GEN)
            .context("generator program")?
            .try_into()?;
        p.load()?;
        Ok(Self { ebpf })
    }

    /// Sends `frame` (with varying source ports) out of `dev` in `ns` for `length`;
    /// returns the frames sent and the time it took.
    pub fn run(
        &self,
        ns: &Netns,
        dev: &str,
        frame: &[u8],
        length: Duration,
    ) -> Result<(u64, Duration)> {
        let ifindex = ns.ifindex(dev)?;
        let entry = ns.entry()?;
        let prog: &Xdp = self
            .ebpf
            .program(PROG_GEN)
            .context("generator program")?
            .try_into()?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let ctx: Vec<u8> = [0u32, frame.len() as u32, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        // A thread of its own enters the namespace (the ifindex is resolved there).
        std::thread::scope(|s| {
            s.spawn(|| -> Result<(u64, Duration)> {
                entry.enter()?;
                let start = Instant::now();
                let mut sent = 0u64;
                while start.elapsed() < length {
                    let mut opts = TestRunOptions::new();
                    opts.data_in = Some(frame);
                    opts.ctx_in = Some(&ctx);
                    opts.repeat = REPEAT;
                    opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
                    prog.test_run(opts)
                        .context("BPF_PROG_TEST_RUN with live frames")?;
                    sent += u64::from(REPEAT);
                }
                Ok((sent, start.elapsed()))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))?
        })
    }
}

/// A 64-byte IPv4/UDP frame from `src` to `dst:9`, UDP checksum 0 (none: the
/// generator changes the source port without fixing it).
pub fn udp_frame(src: IpAddr, dst: IpAddr, macs: ([u8; 6], [u8; 6])) -> Result<Vec<u8>> {
    let mut f = Frame::udp(src, 1024, dst, 9)
        .payload(&[0u8; 18])
        .macs(macs.0, macs.1)
        .build();
    if f.len() < 42 {
        bail!("UDP frame too short: {} bytes", f.len());
    }
    f[40] = 0;
    f[41] = 0;
    Ok(f)
}
