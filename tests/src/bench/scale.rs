//! Scale: how the control plane's Maglev rebuild grows with the number of backends,
//! and how the flow table behaves filled to capacity.
//!
//! - [`maglev_rebuild`] times `lb_common::maglev::build` (the function the agent
//!   calls) at the agent's ring size for 10, 100 and 1000 equal backends, and a whole
//!   `Dataplane::apply` of such a service after one backend changed state (ring
//!   rebuilt and written into the maps).
//! - [`flow_table_scale`] loads the data plane with a large flow table in a namespace
//!   of its own, fills the table with distinct flows and measures, with the kernel's
//!   BPF statistics (Δrun_time / Δrun_count, the program alone), established-flow
//!   packets with the table almost empty and full, and new flows into the full table
//!   (LRU eviction), then checks what the table holds afterwards.
//!
//! Packets reach the program through `BPF_PROG_TEST_RUN`, one crafted frame per call
//! (ingress: the namespace's `lb0`, so `bpf_fib_lookup` resolves real next hops):
//! exact control over which flow each packet belongs to, no frames lost on a veth
//! ring, and the statistics count the program's run only, not the syscall around it.

use std::{
    net::{IpAddr, Ipv4Addr},
    ops::Range,
    os::fd::{AsFd as _, AsRawFd as _},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    maps::{HashMap as BpfHashMap, Map, MapData},
    programs::{TestRun as _, TestRunOptions, Xdp},
    sys::{Stats, enable_stats},
};
use lb_agent::{
    agent::chain,
    dataplane::{
        BackendSpec, BackendState, Capacities, Dataplane, FlowTimeouts, Forwarding, GlobalCounters,
        MapSet as _, NoBackend, Protocol, ServiceSpec,
    },
    lab::Netns,
};
use lb_common::{
    Counter, FlowEntry, FlowKey, MAP_FLOWS, MAP_NAT, PROTO_UDP,
    maglev::{self, MaglevBackend},
    maps::addr::to_words,
};

/// `XDP_TX`: what the program answers for a packet it forwards on the same link.
const XDP_TX: u32 = 3;

// ---------------------------------------------------------------------------------
// Maglev rebuild
// ---------------------------------------------------------------------------------

/// Backend counts measured by [`maglev_rebuild`].
const MAGLEV_SIZES: [usize; 3] = [10, 100, 1000];

/// One backend count of [`maglev_rebuild`].
#[derive(Clone, Debug, PartialEq)]
pub struct MaglevRow {
    pub backends: usize,
    /// Ring entries (the agent's ring size).
    pub ring_size: u32,
    /// `maglev::build` alone, median of the runs.
    pub build_ms: f64,
    /// How far the largest backend share lies above the ideal `ring_size / backends`,
    /// in percent of the ideal.
    pub max_share_dev_pct: f64,
    /// `Dataplane::apply` of the service after one backend went down (table rebuilt,
    /// the whole idle ring written, VIP flipped to it), median of the runs; `None`
    /// if the data plane could not be loaded.
    pub apply_ms: Option<f64>,
    /// The same with only the ring entries that changed written (what the agent
    /// does once it knows the idle ring's content), in the same runs.
    pub apply_changed_ms: Option<f64>,
}

/// Times the Maglev table build for 10, 100 and 1000 equal-weight backends at the
/// agent's ring size (median of 5 runs, 2 with `quick`), and a full service apply
/// through the data plane for each.
pub fn maglev_rebuild(quick: bool) -> Result<Vec<MaglevRow>> {
    let runs = if quick { 2 } else { 5 };
    // What the agent runs with: its capacities are the defaults but for the flow
    // table size, which does not matter here (kept small: less memory to allocate).
    let caps = Capacities {
        flow_table_size: 4096,
        ..Capacities::default()
    };
    let ring_size = caps.ring_size;
    let mut dp = match Dataplane::load(caps) {
        Ok(dp) => Some(dp),
        Err(e) => {
            eprintln!(
                "bench: maglev: no data plane, apply not timed: {}",
                chain(&e)
            );
            None
        }
    };
    let mut rows = Vec::with_capacity(MAGLEV_SIZES.len());
    for n in MAGLEV_SIZES {
        let spec = maglev_service(n);
        // The keys exactly as the agent forms them (`addr:port`).
        let keys: Vec<String> = spec
            .backends
            .iter()
            .map(|b| format!("{}:{}", b.addr, b.port))
            .collect();
        let members: Vec<MaglevBackend<'_>> = keys
            .iter()
            .map(|k| MaglevBackend {
                key: k.as_bytes(),
                weight: 1,
            })
            .collect();
        let mut times = Vec::with_capacity(runs);
        let mut ring = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            ring = maglev::build(&members, ring_size)
                .with_context(|| format!("Maglev build for {n} backends"))?;
            times.push(ms(start));
        }
        let counts = maglev::slot_counts(&ring, n);
        let ideal = f64::from(ring_size) / n as f64;
        let largest = counts.iter().copied().max().unwrap_or(0);
        let (apply_ms, apply_changed_ms) = match dp.as_mut() {
            Some(dp) => {
                let (whole, changed) = time_apply(dp, spec, runs)?;
                (Some(whole), Some(changed))
            }
            None => (None, None),
        };
        let row = MaglevRow {
            backends: n,
            ring_size,
            build_ms: median(&mut times),
            max_share_dev_pct: (f64::from(largest) - ideal) / ideal * 100.0,
            apply_ms,
            apply_changed_ms,
        };
        let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |a| format!("{a:.2} ms"));
        eprintln!(
            "bench: maglev {n} backends: build {:.2} ms, apply {} (whole ring), {} (changed \
             entries), largest share +{:.2}%",
            row.build_ms,
            show(row.apply_ms),
            show(row.apply_changed_ms),
            row.max_share_dev_pct
        );
        rows.push(row);
    }
    Ok(rows)
}

/// A DSR service with `n` equal backends (198.18.x.y, port 0).
fn maglev_service(n: usize) -> ServiceSpec {
    ServiceSpec {
        name: format!("maglev-{n}"),
        vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
        port: 80,
        protocol: Protocol::Tcp,
        forwarding: Forwarding::Dsr,
        snat: Vec::new(),
        on_no_backend: NoBackend::Drop,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: (0..n)
            .map(|i| BackendSpec {
                addr: IpAddr::V4(Ipv4Addr::new(
                    198,
                    18,
                    1 + (i / 250) as u8,
                    (i % 250) as u8 + 1,
                )),
                port: 0,
                weight: 1,
                state: BackendState::Up,
            })
            .collect(),
    }
}

/// Applies `spec` once, then `runs` times twice with a different backend down each
/// time (each apply changes the ring): once with the idle ring's content forgotten
/// (written whole), once as the agent runs (the changed entries written). The
/// medians of both, in ms. Removes the service afterwards.
fn time_apply(dp: &mut Dataplane, spec: ServiceSpec, runs: usize) -> Result<(f64, f64)> {
    let name = spec.name.clone();
    dp.apply(std::slice::from_ref(&spec))
        .map_err(|e| anyhow::anyhow!("apply {name}: {}", chain(&e)))?;
    let (mut whole, mut changed) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for r in 0..2 * runs {
        let mut next = spec.clone();
        let down = r % next.backends.len();
        next.backends[down].state = BackendState::Down;
        let forget = r % 2 == 0;
        if forget {
            dp.forget_ring_contents();
        }
        let start = Instant::now();
        dp.apply(&[next])
            .map_err(|e| anyhow::anyhow!("apply {name}: {}", chain(&e)))?;
        if forget { &mut whole } else { &mut changed }.push(ms(start));
    }
    dp.apply(&[])
        .map_err(|e| anyhow::anyhow!("remove {name}: {}", chain(&e)))?;
    Ok((median(&mut whole), median(&mut changed)))
}

// ---------------------------------------------------------------------------------
// Flow table at capacity
// ---------------------------------------------------------------------------------

/// What [`flow_table_scale`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleResult {
    /// The flow table's capacity (`flow_table_size`).
    pub capacity: u64,
    /// Entries in the flow table once `capacity` distinct flows went through
    /// (counted by walking the map).
    pub entries: u64,
    /// Kernel memory of the `FLOWS` map (`memlock` in its fdinfo).
    pub flow_map_bytes: u64,
    /// Kernel memory of the `NAT` map (same capacity; preallocated like `FLOWS`).
    pub nat_map_bytes: u64,
    /// Seconds to send the table's `capacity` distinct flows (one `BPF_PROG_TEST_RUN`
    /// call per flow).
    pub fill_secs: f64,
    /// Established-flow packets cycling over 1,000 flows, table almost empty.
    pub ns_per_packet_empty: f64,
    /// The same 1,000 flows' packets with the table full.
    pub ns_per_packet_full: f64,
    /// Flows of the spread working set (1/8 of the capacity, interleaved with the
    /// rest of the table).
    pub spread_flows: u64,
    /// Established-flow packets over the spread working set, with only it and the
    /// 1,000 flows in the table (a working set of 1/8 of the table's entries: more
    /// cache misses than 1,000 flows).
    pub ns_per_packet_empty_spread: f64,
    /// The same spread working set with the table full.
    pub ns_per_packet_full_spread: f64,
    /// New flows while the table fills (no eviction).
    pub new_flow_ns_filling: f64,
    /// New flows into the full table: each evicts the least recently used entry.
    pub new_flow_ns_full: f64,
    /// New flows into the full table were all forwarded, no drop or other verdict
    /// counted, the oldest idle flows were evicted and the newest are in the table.
    pub evictions_ok: bool,
    /// Evidence and caveats, one sentence each.
    pub notes: Vec<String>,
}

/// Addresses of the scale lab (one namespace, one veth end `lb0` as ingress).
const LB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const VIP_PORT: u16 = 53;
const BACKENDS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 18, 0, 11),
    Ipv4Addr::new(198, 18, 0, 12),
    Ipv4Addr::new(198, 18, 0, 13),
];
const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Clients: 100.64.0.0 upwards, each with source ports `FIRST_PORT..` (`PORTS` of
/// them), so flow number `i` is client `i / PORTS`, port `FIRST_PORT + i % PORTS`.
const CLIENT_BASE: u32 = u32::from_be_bytes([100, 64, 0, 0]);
const FIRST_PORT: u32 = 1024;
const PORTS: u64 = 65536 - FIRST_PORT as u64;

/// Flows of the small working set (as in `bench-dp`).
const HOT_FLOWS: u64 = 1000;
/// Oldest and newest flows whose presence is checked after the evictions.
const CHECKED: u64 = 1000;

/// Sizes of one run. Flows are numbered: the hot set `0..HOT_FLOWS`, then the fill
/// up to `capacity` (the spread set interleaved with it from `HOT_FLOWS + CHECKED`,
/// every `stride`-th flow), then the fresh flows sent into the full table.
#[derive(Clone, Copy, Debug)]
struct Plan {
    capacity: u64,
    /// Established-flow packets per batch.
    packets: u64,
    /// Batches per established-flow measurement (the median counts).
    rounds: usize,
    /// Flows of the spread working set.
    spread: u64,
    /// New flows sent into the full table.
    fresh: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let capacity: u64 = if quick { 131_072 } else { 1_048_576 };
        Self {
            capacity,
            packets: if quick { 20_000 } else { 200_000 },
            rounds: if quick { 3 } else { 5 },
            spread: capacity / 8,
            fresh: capacity / 8,
        }
    }

    fn stride(&self) -> u64 {
        (self.capacity - HOT_FLOWS - CHECKED) / self.spread
    }

    /// Flow number of the `k`-th flow of the spread set.
    fn spread_flow(&self, k: u64) -> u64 {
        HOT_FLOWS + CHECKED + k * self.stride()
    }

    fn is_spread(&self, i: u64) -> bool {
        let Some(d) = i.checked_sub(HOT_FLOWS + CHECKED) else {
            return false;
        };
        d % self.stride() == 0 && d / self.stride() < self.spread
    }

    /// The fill: every flow of `HOT_FLOWS..capacity` not in the spread set.
    fn fill(self) -> impl Iterator<Item = u64> {
        (HOT_FLOWS..self.capacity).filter(move |&i| !self.is_spread(i))
    }

    fn fill_len(&self) -> u64 {
        self.capacity - HOT_FLOWS - self.spread
    }

    /// `max(packets, spread)` packets over the spread set in a scattered order (7919 is
    /// prime, the set's size a power of two: every flow alike often).
    fn spread_packets(self) -> impl Iterator<Item = u64> {
        (0..self.spread_packet_count()).map(move |i| self.spread_flow(i * 7919 % self.spread))
    }

    fn spread_packet_count(&self) -> u64 {
        self.packets.max(self.spread)
    }
}

/// Fills a flow table of 1,048,576 entries (131,072 with `quick`) behind a DSR UDP
/// service with 3 backends and measures memory, per-packet cost of established flows
/// with the table almost empty and full (a small and a spread working set), new flows
/// while filling and when full, and what LRU eviction leaves in the table. Progress
/// goes to stderr.
pub fn flow_table_scale(quick: bool) -> Result<ScaleResult> {
    let plan = Plan::new(quick);
    let ns = Netns::new("lbsc").context("create the scale namespace")?;
    setup_namespace(&ns).context("set up the scale namespace")?;
    let ifindex = ns.ifindex("lb0").context("lb0 ifindex")?;
    // A thread of its own enters the namespace: the caller's stays where it is.
    ns.run(move || measure(plan, ifindex))
        .context("run inside the scale namespace")?
}

fn setup_namespace(ns: &Netns) -> Result<()> {
    ns.ip(&[
        "link", "add", "lb0", "type", "veth", "peer", "name", "peer0",
    ])?;
    ns.ip(&["link", "set", "lb0", "address", &mac(LB_MAC), "up"])?;
    ns.ip(&["link", "set", "peer0", "up"])?;
    ns.ip(&["addr", "add", &format!("{LB_ADDR}/24"), "dev", "lb0"])?;
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    for (i, b) in BACKENDS.iter().enumerate() {
        let m = [0x02, 0, 0, 0, 0x01, 0x11 + i as u8];
        ns.static_neighbour(IpAddr::V4(*b), m, "lb0")?;
    }
    Ok(())
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn scale_service() -> ServiceSpec {
    ServiceSpec {
        name: "scale".into(),
        vip: IpAddr::V4(VIP),
        port: VIP_PORT,
        protocol: Protocol::Udp,
        forwarding: Forwarding::Dsr,
        snat: Vec::new(),
        on_no_backend: NoBackend::Drop,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: BACKENDS
            .iter()
            .map(|b| BackendSpec::up(IpAddr::V4(*b)))
            .collect(),
    }
}

/// The whole measurement, on a thread inside the namespace.
fn measure(plan: Plan, ifindex: u32) -> Result<ScaleResult> {
    let caps = Capacities {
        max_vips: 4,
        max_backends: 16,
        flow_table_size: u32::try_from(plan.capacity).context("flow table size")?,
        ..Capacities::default()
    };
    let snat_ports = caps.snat_ports.clone();
    let mut dp = Dataplane::load(caps).map_err(|e| anyhow::anyhow!("load: {}", chain(&e)))?;
    dp.apply(&[scale_service()])
        .map_err(|e| anyhow::anyhow!("apply: {}", chain(&e)))?;
    let flow_map_bytes = memlock(&mut dp, MAP_FLOWS)?;
    let nat_map_bytes = memlock(&mut dp, MAP_NAT)?;
    let _stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let counters0 = counters(&mut dp)?;
    let cap = plan.capacity;
    let hot = 0..HOT_FLOWS;
    let fresh = cap..cap + plan.fresh;
    let mut sent = 0;
    let mut notes = vec![format!(
        "memory: FLOWS {:.1} MiB ({:.0} bytes/entry), NAT {:.1} MiB ({:.0} bytes/entry), \
         both preallocated at load for {cap} entries",
        mib(flow_map_bytes),
        flow_map_bytes as f64 / cap as f64,
        mib(nat_map_bytes),
        nat_map_bytes as f64 / cap as f64
    )];

    // 1. Almost empty: the hot and the spread set alone.
    let run = |dp: &Dataplane, flows: &mut dyn Iterator<Item = u64>, n, what: &str, progress| {
        let batch = Runner::new(dp, ifindex)?.send(flows, n, progress)?;
        batch.expect_all_tx(what)?;
        Ok::<_, anyhow::Error>(batch)
    };
    let first = run(&dp, &mut hot.clone(), HOT_FLOWS, "hot flows", None)?;
    let first_spread = run(
        &dp,
        &mut (0..plan.spread).map(|k| plan.spread_flow(k)),
        plan.spread,
        "spread set",
        None,
    )?;
    let empty = rounds(
        &dp,
        ifindex,
        plan.rounds,
        || cycle(hot.clone(), plan.packets),
        plan.packets,
        "established, table almost empty",
    )?;
    let spread_empty = rounds(
        &dp,
        ifindex,
        plan.rounds,
        || plan.spread_packets(),
        plan.spread_packet_count(),
        "established, spread set, table almost empty",
    )?;
    sent += first.packets + first_spread.packets + empty.packets + spread_empty.packets;
    eprintln!(
        "bench: flow table almost empty: established {:.1} ns/packet ({HOT_FLOWS} flows), \
         {:.1} ns/packet ({} flows)",
        empty.ns, spread_empty.ns, plan.spread
    );

    // 2. Fill to capacity.
    let filled = run(
        &dp,
        &mut plan.fill(),
        plan.fill_len(),
        "fill",
        Some("filling the flow table"),
    )?;
    sent += filled.packets;
    let entries = count_entries(&mut dp)?;
    eprintln!(
        "bench: flow table: {} new flows in {:.1} s ({:.1} ns/packet in the program), \
         {entries} of {cap} entries held",
        filled.packets, filled.secs, filled.ns
    );
    notes.push(format!(
        "fill: {cap} distinct flows in all ({} of them in {:.1} s, one BPF_PROG_TEST_RUN \
         each); the table then held {entries} entries{}",
        filled.packets,
        filled.secs,
        if entries < cap {
            format!(
                ": the kernel's LRU evicted {} before the last free entries were used \
                 (BPF's common LRU hands out free entries in per-CPU batches)",
                cap - entries
            )
        } else {
            String::new()
        }
    ));

    // 3. Full: the same two working sets.
    let hot_held = present(&mut dp, hot.clone())?;
    let spread_held = present(&mut dp, (0..plan.spread).map(|k| plan.spread_flow(k)))?;
    if hot_held < HOT_FLOWS || spread_held < plan.spread {
        notes.push(format!(
            "before the full-table measurements only {hot_held} of {HOT_FLOWS} hot flows \
             and {spread_held} of {} spread-set flows were in the table: the missing ones \
             were measured as new flows",
            plan.spread
        ));
    }
    let full = rounds(
        &dp,
        ifindex,
        plan.rounds,
        || cycle(hot.clone(), plan.packets),
        plan.packets,
        "established, table full",
    )?;
    let spread_full = rounds(
        &dp,
        ifindex,
        plan.rounds,
        || plan.spread_packets(),
        plan.spread_packet_count(),
        "established, spread set, table full",
    )?;
    sent += full.packets + spread_full.packets;
    eprintln!(
        "bench: flow table full: established {:.1} ns/packet ({HOT_FLOWS} flows), \
         {:.1} ns/packet ({} flows)",
        full.ns, spread_full.ns, plan.spread
    );

    // 4. New flows into the full table: each one evicts. Not `run`: a packet not
    // forwarded is a finding here, not an error.
    let fresh_run = Runner::new(&dp, ifindex)?.send(
        &mut fresh.clone(),
        plan.fresh,
        Some("new flows into the full table"),
    )?;
    sent += fresh_run.packets;
    eprintln!(
        "bench: flow table full: {} new flows, {:.1} ns/packet, {} not forwarded",
        fresh_run.packets, fresh_run.ns, fresh_run.not_tx
    );

    // 5. What the table holds now, and what the counters say.
    let entries_after = count_entries(&mut dp)?;
    let oldest = present(&mut dp, HOT_FLOWS..HOT_FLOWS + CHECKED)?;
    let newest = present(&mut dp, fresh.end - CHECKED..fresh.end)?;
    let hot_after = present(&mut dp, hot.clone())?;
    let spread_after = present(&mut dp, (0..plan.spread).map(|k| plan.spread_flow(k)))?;
    let counters1 = counters(&mut dp)?;
    let forwarded = counters1.get(Counter::FwdToBackend) - counters0.get(Counter::FwdToBackend);
    let others: Vec<String> = Counter::ALL
        .iter()
        .filter(|c| **c != Counter::FwdToBackend)
        .filter_map(|c| {
            let d = counters1.get(*c) - counters0.get(*c);
            (d > 0).then(|| format!("{} {d}", c.label()))
        })
        .collect();
    notes.push(format!(
        "{} new flows into the full table: {} forwarded (XDP_TX), {} not; over the whole \
         run fwd_to_backend rose by {forwarded} for {sent} packets sent; other counters: {}",
        fresh_run.packets,
        fresh_run.packets - fresh_run.not_tx,
        fresh_run.not_tx,
        if others.is_empty() {
            "none moved".to_string()
        } else {
            others.join(", ")
        }
    ));
    notes.push(format!(
        "after them: {entries_after} entries; of the {CHECKED} oldest fill flows (idle since \
         inserted) {oldest} held, of the {CHECKED} newest flows {newest}, of the \
         {HOT_FLOWS} hot and {} spread-set flows (older, but used after the fill) \
         {hot_after} and {spread_after}",
        plan.spread
    ));
    // The newest flows sit at the head of their hash buckets' chains (the kernel adds
    // there); the hot flows, inserted first, behind the fill's entries. The same
    // number of flows at the head tells whether the chain order costs.
    let newest_run = rounds(
        &dp,
        ifindex,
        plan.rounds,
        || cycle(fresh.end - HOT_FLOWS..fresh.end, plan.packets),
        plan.packets,
        "established, newest flows, table full",
    )?;
    notes.push(format!(
        "table full, {HOT_FLOWS} flows each: the first ones inserted {:.1} ns/packet, \
         the last ones inserted {:.1} ns/packet ({:.1} with the table almost empty); \
         the kernel adds an entry at the head of its hash bucket's chain (about one \
         entry per bucket when full), so a lookup of an older flow may first walk past \
         newer, cold entries",
        full.ns, newest_run.ns, empty.ns
    ));
    let evictions_ok = fresh_run.not_tx == 0
        && others.is_empty()
        && forwarded == sent
        && newest == CHECKED
        && oldest == 0
        && entries_after <= cap;
    let ports = u64::from(*snat_ports.end()) - u64::from(*snat_ports.start()) + 1;
    notes.push(format!(
        "the service is DSR: a NAT flow also needs a binding with its own source port, \
         per (SNAT address, backend, backend port), so one SNAT address serves at most \
         {ports} ports x {} backends = {} concurrent NAT flows to this service, whatever \
         the table size",
        BACKENDS.len(),
        ports * BACKENDS.len() as u64
    ));
    notes.push(
        "packets enter with BPF_PROG_TEST_RUN (one frame per call, ingress lb0), not \
         over a veth: the statistics count the program's run alone; compare the rows \
         with each other, not with bench-dp's"
            .to_string(),
    );
    Ok(ScaleResult {
        capacity: cap,
        entries,
        flow_map_bytes,
        nat_map_bytes,
        fill_secs: first.secs + first_spread.secs + filled.secs,
        ns_per_packet_empty: empty.ns,
        ns_per_packet_full: full.ns,
        spread_flows: plan.spread,
        ns_per_packet_empty_spread: spread_empty.ns,
        ns_per_packet_full_spread: spread_full.ns,
        new_flow_ns_filling: filled.ns,
        new_flow_ns_full: fresh_run.ns,
        evictions_ok,
        notes,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Established-flow packets, `rounds` batches of `n` packets from `flows()`: the
/// median batch's ns/packet (the machine is shared: one disturbed batch does not
/// move the result), the packets of all.
fn rounds<I: Iterator<Item = u64>>(
    dp: &Dataplane,
    ifindex: u32,
    rounds: usize,
    flows: impl Fn() -> I,
    n: u64,
    what: &str,
) -> Result<Batch> {
    let runner = Runner::new(dp, ifindex)?;
    let mut ns = Vec::with_capacity(rounds);
    let mut total = Batch {
        packets: 0,
        not_tx: 0,
        ns: 0.0,
        secs: 0.0,
    };
    for _ in 0..rounds {
        let b = runner.send(&mut flows(), n, None)?;
        b.expect_all_tx(what)?;
        ns.push(b.ns);
        total.packets += b.packets;
        total.secs += b.secs;
    }
    total.ns = median(&mut ns);
    Ok(total)
}

/// `total` flow numbers cycling over `flows`.
fn cycle(flows: Range<u64>, total: u64) -> impl Iterator<Item = u64> {
    let n = flows.end - flows.start;
    (0..total).map(move |i| flows.start + i % n)
}

/// Client address and source port of flow number `i`.
fn client(i: u64) -> (Ipv4Addr, u16) {
    let addr = CLIENT_BASE + (i / PORTS) as u32;
    let port = FIRST_PORT + (i % PORTS) as u32;
    (Ipv4Addr::from(addr), port as u16)
}

/// The flow table key of flow number `i` (ports in network order, as the program
/// stores them).
fn flow_key(i: u64) -> FlowKey {
    let (addr, port) = client(i);
    let (src, family) = to_words(IpAddr::V4(addr));
    FlowKey {
        src,
        dst: to_words(IpAddr::V4(VIP)).0,
        sport: port.to_be(),
        dport: VIP_PORT.to_be(),
        proto: PROTO_UDP,
        family,
        _pad: [0; 2],
    }
}

/// A 60-byte Ethernet/IPv4/UDP frame of flow number `i` to the VIP (UDP checksum 0:
/// none, allowed over IPv4).
fn frame(i: u64) -> [u8; 60] {
    let (src, sport) = client(i);
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&LB_MAC);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = PROTO_UDP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&VIP.octets());
    let sum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&VIP_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    f
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Runs the loaded program on crafted frames and measures it.
struct Runner<'a> {
    prog: &'a Xdp,
    /// `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    /// egress_ifindex.
    ctx: [u8; 24],
}

/// One batch of packets.
struct Batch {
    packets: u64,
    /// Packets the program did not answer with XDP_TX.
    not_tx: u64,
    /// Program run time per packet (bpf_stats).
    ns: f64,
    /// Wall-clock seconds for the whole batch (syscalls included).
    secs: f64,
}

impl Batch {
    fn expect_all_tx(&self, what: &str) -> Result<()> {
        if self.not_tx > 0 {
            bail!(
                "{what}: {} of {} packets were not forwarded",
                self.not_tx,
                self.packets
            );
        }
        Ok(())
    }
}

impl<'a> Runner<'a> {
    fn new(dp: &'a Dataplane, ifindex: u32) -> Result<Self> {
        let prog = dp
            .xdp()
            .map_err(|e| anyhow::anyhow!("XDP program: {}", chain(&e)))?;
        let words = [0u32, 60, 0, ifindex, 0, 0];
        let mut ctx = [0u8; 24];
        for (c, w) in ctx.chunks_exact_mut(4).zip(words) {
            c.copy_from_slice(&w.to_ne_bytes());
        }
        Ok(Self { prog, ctx })
    }

    /// Sends one frame for each of the `total` flow numbers of `flows`; with
    /// `progress`, prints a line every 10%.
    fn send(
        &self,
        flows: &mut dyn Iterator<Item = u64>,
        total: u64,
        progress: Option<&str>,
    ) -> Result<Batch> {
        let info0 = self.prog.info().context("program info")?;
        let start = Instant::now();
        let mut not_tx = 0;
        let mut next_report = 1;
        for (n, i) in flows.take(total as usize).enumerate() {
            let data = frame(i);
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&data);
            opts.ctx_in = Some(&self.ctx);
            let res = self.prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
            if res.return_value != XDP_TX {
                not_tx += 1;
            }
            if let Some(what) = progress {
                let done = n as u64 + 1;
                if done * 10 >= total * next_report {
                    eprintln!(
                        "bench: {what}: {}% ({done} flows, {:.1} s)",
                        next_report * 10,
                        start.elapsed().as_secs_f64()
                    );
                    next_report += 1;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let info1 = self.prog.info().context("program info")?;
        let runs = info1.run_count() - info0.run_count();
        let time = info1.run_time().saturating_sub(info0.run_time());
        if runs == 0 {
            bail!("the program never ran (bpf_stats off?)");
        }
        Ok(Batch {
            packets: total,
            not_tx,
            ns: time.as_nanos() as f64 / runs as f64,
            secs,
        })
    }
}

fn counters(dp: &mut Dataplane) -> Result<GlobalCounters> {
    dp.global_counters()
        .map_err(|e| anyhow::anyhow!("read counters: {}", chain(&e)))
}

fn flows_map(dp: &mut Dataplane) -> Result<BpfHashMap<&mut MapData, FlowKey, FlowEntry>> {
    let map = dp.raw_map(MAP_FLOWS).context("no FLOWS map")?;
    BpfHashMap::try_from(map).context("FLOWS as a hash map")
}

/// Entries of the flow table, by walking its keys.
fn count_entries(dp: &mut Dataplane) -> Result<u64> {
    let map = flows_map(dp)?;
    let mut n = 0;
    for k in map.keys() {
        k.context("walk FLOWS")?;
        n += 1;
    }
    Ok(n)
}

/// How many of the flows numbered `ids` the table holds (lookups from user space
/// do not mark entries as used).
fn present(dp: &mut Dataplane, ids: impl Iterator<Item = u64>) -> Result<u64> {
    let map = flows_map(dp)?;
    let mut n = 0;
    for i in ids {
        match map.get(&flow_key(i), 0) {
            Ok(_) => n += 1,
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e).context("look up FLOWS"),
        }
    }
    Ok(n)
}

/// The kernel's memory accounting of map `name` (`memlock:` in the fdinfo of its fd).
fn memlock(dp: &mut Dataplane, name: &'static str) -> Result<u64> {
    let data = match dp.raw_map(name) {
        Some(Map::LruHashMap(d) | Map::HashMap(d)) => d,
        Some(_) => bail!("{name} is not a hash map"),
        None => bail!("no {name} map"),
    };
    let fd = data.fd().as_fd().as_raw_fd();
    let path = format!("/proc/self/fdinfo/{fd}");
    let info = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .with_context(|| format!("no memlock line in {path}"))?
        .trim()
        .parse()
        .with_context(|| format!("memlock of {name}"))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_flow() {
        let f = frame(PORTS + 5);
        assert_eq!(&f[26..30], &[100, 64, 0, 1]);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 1029);
        assert_eq!(ipv4_checksum(&f[14..34]), 0, "header checksum verifies");
        let k = flow_key(PORTS + 5);
        assert_eq!(k.sport, 1029u16.to_be());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
