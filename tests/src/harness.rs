//! Packet tests through `BPF_PROG_TEST_RUN`: a namespace holding one veth (the LB's
//! interface, `lb0`) with addresses, static neighbours for the client and backends,
//! and forwarding on, so `bpf_fib_lookup` in the program resolves real next hops.
//! The test thread enters the namespace; the program runs with `lb0` as ingress.

use std::net::IpAddr;

use aya::programs::{TestRun as _, TestRunOptions};
pub use lb_agent::agent::chain;
use lb_agent::{
    dataplane::{
        BackendSpec, BackendState, Capacities, Dataplane, FlowTimeouts, Forwarding, NoBackend,
        Protocol, ServiceSpec,
    },
    lab::Netns,
};
use lb_common::Counter;

use crate::packet::{DEFAULT_DST_MAC, DEFAULT_SRC_MAC, Decoded, decode, diff_report, hexdump};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;
/// What the TC companions return for a packet that continues (changed or not).
pub const TC_ACT_OK: u32 = 0;

/// The LB interface's MAC: where client frames are sent to.
pub const LB_MAC: [u8; 6] = DEFAULT_DST_MAC;
/// The client's MAC.
pub const CLIENT_MAC: [u8; 6] = DEFAULT_SRC_MAC;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address literal")
}

/// Addresses of one family in the packet lab.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub lb: IpAddr,
    pub vip: IpAddr,
    pub client: IpAddr,
    pub backends: [IpAddr; 3],
    /// A backend address on the link with no neighbour entry.
    pub unresolved: IpAddr,
    /// A backend address with no route.
    pub unroutable: IpAddr,
}

pub fn v4() -> Plan {
    Plan {
        lb: ip("198.18.0.1"),
        vip: ip("198.18.0.10"),
        client: ip("198.18.0.100"),
        backends: [ip("198.18.0.11"), ip("198.18.0.12"), ip("198.18.0.13")],
        unresolved: ip("198.18.0.14"),
        unroutable: ip("198.19.99.99"),
    }
}

pub fn v6() -> Plan {
    Plan {
        lb: ip("fd00:1b::1"),
        vip: ip("fd00:1b::10"),
        client: ip("fd00:1b::100"),
        backends: [ip("fd00:1b::11"), ip("fd00:1b::12"), ip("fd00:1b::13")],
        unresolved: ip("fd00:1b::14"),
        unroutable: ip("fd00:99::99"),
    }
}

/// MAC of backend `i` (0..3).
pub fn backend_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, 0x11 + i as u8]
}

/// What one run of the program produced.
#[derive(Debug)]
pub struct Outcome {
    pub verdict: u32,
    /// Output frame (metadata stripped).
    pub frame: Vec<u8>,
    /// XDP metadata in front of the frame, if the program added any.
    pub meta: Vec<u8>,
}

/// The expected output of a case.
pub enum Expect {
    /// The frame leaves exactly as it came in.
    Unchanged,
    /// The frame leaves as exactly these bytes.
    Frame(Vec<u8>),
    /// The frame must decode (all checksums right) and pass this check.
    Decoded(Box<dyn Fn(&Decoded)>),
}

/// One packet test.
pub struct Case {
    pub name: String,
    pub input: Vec<u8>,
    pub verdict: u32,
    pub expect: Expect,
}

impl Case {
    pub fn new(name: impl Into<String>, input: Vec<u8>, verdict: u32, expect: Expect) -> Self {
        Self {
            name: name.into(),
            input,
            verdict,
            expect,
        }
    }
}

/// The namespace, the loaded program and its interface.
pub struct PacketLab {
    pub dp: Dataplane,
    pub ifindex: u32,
    pub ns: Netns,
}

impl PacketLab {
    /// Builds the namespace, enters it with the calling thread, loads the program
    /// with small test capacities.
    pub fn new() -> Self {
        Self::with_caps(Capacities {
            max_vips: 8,
            max_backends: 64,
            flow_table_size: 4096,
            ..Capacities::default()
        })
    }

    /// As `new`, with the given capacities.
    pub fn with_caps(caps: Capacities) -> Self {
        let ns = Netns::new("lbpt").expect("create test namespace");
        let v4 = v4();
        let v6 = v6();
        let setup = || -> Result<(), lb_agent::lab::LabError> {
            ns.ip(&[
                "link", "add", "lb0", "type", "veth", "peer", "name", "peer0",
            ])?;
            ns.ip(&["link", "set", "lb0", "address", "02:00:00:00:00:02", "up"])?;
            ns.ip(&["link", "set", "peer0", "up"])?;
            ns.ip(&["addr", "add", &format!("{}/24", v4.lb), "dev", "lb0"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/64", v6.lb),
                "dev",
                "lb0",
                "nodad",
            ])?;
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
            for plan in [v4, v6] {
                let mut neigh = vec![(plan.client, CLIENT_MAC)];
                for (i, b) in plan.backends.iter().enumerate() {
                    neigh.push((*b, backend_mac(i)));
                }
                for (addr, m) in neigh {
                    ns.static_neighbour(addr, m, "lb0")?;
                }
            }
            Ok(())
        };
        setup().expect("set up test namespace");
        let ifindex = ns.ifindex("lb0").expect("lb0 ifindex");
        ns.enter_current_thread().expect("enter test namespace");
        let dp = Dataplane::load(caps).unwrap_or_else(|e| panic!("load program: {}", chain(&e)));
        Self { dp, ifindex, ns }
    }

    /// Programs services, panicking with the error chain.
    pub fn apply(&mut self, services: &[ServiceSpec]) {
        self.dp
            .apply(services)
            .unwrap_or_else(|e| panic!("apply services: {}", chain(&e)));
    }

    /// Runs the program once on `input` with `lb0` as the ingress interface.
    pub fn run(&self, input: &[u8]) -> Outcome {
        self.run_on(self.ifindex, input)
    }

    /// Runs the program once on `input` arriving on interface `ifindex`.
    pub fn run_on(&self, ifindex: u32, input: &[u8]) -> Outcome {
        let mut out = vec![0u8; input.len() + 256];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let ctx_words = [0u32, input.len() as u32, 0, ifindex, 0, 0];
        let ctx_in: Vec<u8> = ctx_words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut ctx_out = vec![0u8; ctx_in.len()];
        let prog = self.dp.xdp().expect("xdp program");
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(input);
        opts.data_out = Some(&mut out);
        opts.ctx_in = Some(&ctx_in);
        opts.ctx_out = Some(&mut ctx_out);
        let res = prog
            .test_run(opts)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}\ninput:\n{}", hexdump(input)));
        out.truncate(res.data_size_out as usize);
        // ctx_out.data is the metadata length in front of the frame.
        let meta_len =
            u32::from_ne_bytes([ctx_out[0], ctx_out[1], ctx_out[2], ctx_out[3]]) as usize;
        let frame = out.split_off(meta_len.min(out.len()));
        Outcome {
            verdict: res.return_value,
            frame,
            meta: out,
        }
    }

    /// Runs the TC egress companion (`lb_tc_local_reply`) once on `input`, a frame
    /// leaving the node: its return value and the frame as it leaves.
    pub fn run_egress(&mut self, input: &[u8]) -> Outcome {
        let mut out = vec![0u8; input.len() + 256];
        let prog = self.dp.tc_local_reply().expect("tc egress program");
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(input);
        opts.data_out = Some(&mut out);
        let res = prog
            .test_run(opts)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}\ninput:\n{}", hexdump(input)));
        out.truncate(res.data_size_out as usize);
        Outcome {
            verdict: res.return_value,
            frame: out,
            meta: Vec::new(),
        }
    }

    /// `check` for the TC egress companion: a case's verdict is `TC_ACT_OK` (0).
    pub fn check_egress(&mut self, case: &Case) -> Outcome {
        let got = self.run_egress(&case.input);
        self.compare(case, got)
    }

    /// Runs a case and checks verdict and output; panics with input, expected and
    /// actual bytes on a mismatch.
    pub fn check(&self, case: &Case) -> Outcome {
        let got = self.run(&case.input);
        self.compare(case, got)
    }

    fn compare(&self, case: &Case, got: Outcome) -> Outcome {
        let fail = |what: &str, expected: &[u8]| -> ! {
            panic!(
                "case `{}`: {what}\n{}",
                case.name,
                diff_report(&case.input, expected, &got.frame)
            )
        };
        if got.verdict != case.verdict {
            let expected = match &case.expect {
                Expect::Frame(f) => f.as_slice(),
                _ => case.input.as_slice(),
            };
            fail(
                &format!(
                    "verdict {} (expected {})",
                    verdict_name(got.verdict),
                    verdict_name(case.verdict)
                ),
                expected,
            );
        }
        match &case.expect {
            Expect::Unchanged => {
                if got.frame != case.input {
                    fail("frame changed", &case.input);
                }
            }
            Expect::Frame(f) => {
                if let Err(e) = decode(f) {
                    panic!(
                        "case `{}`: the expected frame itself is invalid: {e}",
                        case.name
                    );
                }
                if &got.frame != f {
                    fail("output differs", f);
                }
                if let Err(e) = decode(&got.frame) {
                    fail(&format!("output invalid: {e}"), f);
                }
            }
            Expect::Decoded(check) => match decode(&got.frame) {
                Ok(d) => check(&d),
                Err(e) => fail(&format!("output invalid: {e}"), &case.input),
            },
        }
        got
    }

    /// Global counter value.
    pub fn counter(&mut self, c: Counter) -> u64 {
        self.dp
            .global_counters()
            .unwrap_or_else(|e| panic!("read counters: {}", chain(&e)))
            .get(c)
    }

    /// Asserts every global counter: those listed have exactly these values, all
    /// others are zero.
    pub fn assert_counters(&mut self, expected: &[(Counter, u64)]) {
        let all = self
            .dp
            .global_counters()
            .unwrap_or_else(|e| panic!("read counters: {}", chain(&e)));
        let mut wrong = Vec::new();
        for c in Counter::ALL {
            let want = expected.iter().find(|(e, _)| e == c).map_or(0, |(_, v)| *v);
            if all.get(*c) != want {
                wrong.push(format!("{}: {} (expected {want})", c.label(), all.get(*c)));
            }
        }
        assert!(wrong.is_empty(), "counters differ:\n{}", wrong.join("\n"));
    }
}

impl Default for PacketLab {
    fn default() -> Self {
        Self::new()
    }
}

/// A service over the plan's three backends.
pub fn service(
    plan: &Plan,
    name: &str,
    port: u16,
    protocol: Protocol,
    forwarding: Forwarding,
) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        vip: plan.vip,
        port,
        protocol,
        forwarding,
        snat: vec![plan.lb],
        on_no_backend: NoBackend::Drop,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: plan
            .backends
            .iter()
            .map(|b| BackendSpec {
                addr: *b,
                // NAT may change the port; DSR cannot.
                port: if port == 0 || forwarding == Forwarding::Dsr {
                    0
                } else {
                    8080
                },
                weight: 1,
                state: BackendState::Up,
            })
            .collect(),
    }
}

/// Index of a backend address in the plan.
pub fn backend_index(plan: &Plan, addr: IpAddr) -> usize {
    plan.backends
        .iter()
        .position(|b| *b == addr)
        .unwrap_or_else(|| panic!("{addr} is not one of the plan's backends"))
}

pub fn verdict_name(v: u32) -> &'static str {
    match v {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}
