//! A Maglev ring is rewritten as the entries that changed (the standby ring's
//! content is known from the write before), not whole: after every change of a
//! long series (backends down and up, weights, backends added and removed) the
//! live ring in the map is exactly the table the agent built, for two services
//! side by side; a service new to a slot, and one after `forget_ring_contents`, is
//! written whole. The program is loaded into the kernel (not attached). Needs root.

use std::net::{IpAddr, Ipv4Addr};

use lb_agent::dataplane::{
    BackendSpec, BackendState, Capacities, Dataplane, FlowTimeouts, Forwarding, LiveRing,
    NoBackend, Protocol, ServiceSpec,
};

fn spec(name: &str, vip: u8, backends: &[(u8, u32, BackendState)]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        vip: IpAddr::V4(Ipv4Addr::new(198, 18, 9, vip)),
        port: 443,
        protocol: Protocol::Tcp,
        forwarding: Forwarding::Dsr,
        snat: Vec::new(),
        on_no_backend: NoBackend::Reset,
        standby: false,
        timeouts: FlowTimeouts::default(),
        backends: backends
            .iter()
            .map(|&(n, weight, state)| BackendSpec {
                addr: IpAddr::V4(Ipv4Addr::new(10, 9, (n / 200) + 1, n % 200 + 1)),
                port: 0,
                weight,
                state,
            })
            .collect(),
    }
}

fn check(dp: &mut Dataplane, s: &ServiceSpec, step: &str) {
    let LiveRing {
        table,
        held,
        ring,
        live,
    } = dp
        .live_ring(s.vip, s.port, s.protocol)
        .expect("read the ring")
        .expect("a programmed service");
    assert_eq!(
        ring, live,
        "{step}: the service names another ring than was written"
    );
    assert_eq!(table.len(), held.len(), "{step}");
    let wrong = table.iter().zip(&held).filter(|(a, b)| a != b).count();
    assert_eq!(
        wrong, 0,
        "{step}: {wrong} ring entries differ from the table"
    );
}

#[test]
fn changed_entries_leave_the_ring_the_agent_built() {
    let mut dp = Dataplane::load(Capacities {
        flow_table_size: 1024,
        ..Capacities::default()
    })
    .expect("load the data plane");
    let mut a: Vec<(u8, u32, BackendState)> = (0..100).map(|n| (n, 1, BackendState::Up)).collect();
    let mut b: Vec<(u8, u32, BackendState)> =
        (100..110).map(|n| (n, 1, BackendState::Up)).collect();
    let mut x = 0x9e37_79b9u32;
    let mut next = |m: usize| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize % m
    };
    for step in 0..40 {
        match step % 5 {
            0 => {
                let i = next(a.len());
                a[i].2 = if a[i].2 == BackendState::Up {
                    BackendState::Down
                } else {
                    BackendState::Up
                };
            }
            1 => {
                let i = next(a.len());
                a[i].1 = 1 + next(5) as u32;
            }
            2 => {
                let i = next(b.len());
                b[i].2 = BackendState::Drain;
            }
            3 => {
                a.push((150 + step as u8, 2, BackendState::Up));
            }
            _ => {
                let i = next(a.len());
                a.remove(i);
            }
        }
        if step == 20 {
            dp.forget_ring_contents();
        }
        let (sa, sb) = (spec("a", 1, &a), spec("b", 2, &b));
        dp.apply(&[sa.clone(), sb.clone()]).expect("apply");
        check(&mut dp, &sa, &format!("step {step}, a"));
        check(&mut dp, &sb, &format!("step {step}, b"));
    }
    // A service gone and another in its slot: written whole, right.
    let c = spec(
        "c",
        3,
        &[(1, 1, BackendState::Up), (2, 1, BackendState::Up)],
    );
    dp.apply(std::slice::from_ref(&c)).expect("apply");
    check(&mut dp, &c, "a new service");
}
