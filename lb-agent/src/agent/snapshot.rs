//! Building `Status` and flow listings: live from the agent, or from pinned maps
//! (with the config, when given, for names) when the daemon is down.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Instant,
};

use lb_common::{Counter, FlowKey, NO_BACKEND, PROTO_TCP, maps::addr::from_words};

use super::{
    core::{Agent, key},
    error::chain,
    forwarding,
    protocol::{FlowList, FlowRow},
};
use crate::{
    config::{AdminState, CheckKind, Config, VipConfig, backup},
    dataplane::{
        BackendState, DataplaneError, Forwarding, MapSet, Protocol, ServiceView, Traffic, read,
    },
    status::{
        BackendStatus, BindingsInUse, CheckStatus, CounterStatus, FlowTableStatus, Rates, Status,
        VipStatus, host_port,
    },
};

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

pub fn forwarding_name(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Nat => "nat",
        Forwarding::Dsr => "dsr",
    }
}

pub fn state_name(s: BackendState) -> &'static str {
    match s {
        BackendState::Up => "up",
        BackendState::Drain => "drain",
        BackendState::Down => "down",
    }
}

pub fn admin_name(s: AdminState) -> &'static str {
    match s {
        AdminState::Enabled => "enabled",
        AdminState::Drain => "drain",
        AdminState::Disabled => "disabled",
    }
}

fn check_name(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp => "tcp",
        CheckKind::Http => "http",
        CheckKind::Https => "https",
        CheckKind::Tls => "tls",
        CheckKind::None => "none",
    }
}

fn counters(values: &[u64], old: Option<&[u64]>, secs: f64) -> Vec<CounterStatus> {
    Counter::ALL
        .iter()
        .map(|c| {
            let value = values.get(*c as usize).copied().unwrap_or(0);
            let before = old.and_then(|o| o.get(*c as usize).copied());
            CounterStatus {
                name: c.label().to_string(),
                value,
                per_s: match before {
                    Some(b) if secs > 0.0 => value.saturating_sub(b) as f64 / secs,
                    _ => 0.0,
                },
            }
        })
        .collect()
}

/// Route lookups failing while nothing is forwarded, over the last refresh: the
/// data plane cannot reach any backend (a missing route or sysctl, a down link).
fn routing_problem(counters: &[CounterStatus]) -> Option<String> {
    let rate = |c: Counter| {
        counters
            .iter()
            .find(|s| s.name == c.label())
            .map_or(0.0, |s| s.per_s)
    };
    let failed = rate(Counter::DropFibFailed);
    let forwarded = rate(Counter::FwdToBackend) + rate(Counter::FwdNatReply);
    (failed > 0.0 && forwarded == 0.0).then(|| {
        format!(
            "route lookups are failing ({failed:.0} packets/s dropped as drop_fib_failed) and \
             nothing is forwarded: check the routes to the backends and forwarding on the \
             interfaces"
        )
    })
}

impl Agent {
    /// The live picture. Rates are over the time since the last `remember` reading
    /// (the once-a-second refresh), which this one becomes if `remember` is set.
    pub(super) fn snapshot(&mut self, remember: bool) -> Result<Status, DataplaneError> {
        let now = Instant::now();
        let globals = read::global_counters(&mut self.dp)?.0;
        let (secs, old_traffic, old_globals) = match &self.previous {
            Some((t, tr, g)) => (
                now.duration_since(*t).as_secs_f64(),
                Some(tr.clone()),
                Some(g.clone()),
            ),
            None => (0.0, None, None),
        };
        let rate = |id: &str, t: &Traffic| match old_traffic.as_ref().and_then(|o| o.get(id)) {
            Some(old) => Rates::between(old, t, secs),
            None => Rates::default(),
        };
        let mut readings: HashMap<String, Traffic> = HashMap::new();
        let mut vips = Vec::with_capacity(self.config.vips.len());
        for v in &self.config.vips {
            let slot = self.dp.service_slot(v.address, v.port, v.protocol);
            let traffic = match slot {
                Some(id) => read::vip_traffic(&mut self.dp, id)?,
                None => Traffic::default(),
            };
            let vid = format!("vip/{}", v.name);
            let vip_rates = rate(&vid, &traffic);
            readings.insert(vid, traffic);
            let shares = self.dp.ring_shares(v.address, v.port, v.protocol);
            let mut backends = Vec::with_capacity(v.backends.len());
            for (b, serving) in v.backends.iter().zip(self.serving(v)) {
                let bslot = self
                    .dp
                    .backend_slot(v.address, v.port, v.protocol, b.address, b.port);
                let t = match bslot {
                    Some(id) => read::backend_traffic(&mut self.dp, id)?,
                    None => Traffic::default(),
                };
                let bid = format!(
                    "backend/{}/{}",
                    v.name,
                    host_port(&b.address.to_string(), b.port)
                );
                let rates = rate(&bid, &t);
                readings.insert(bid, t);
                let c = self.checks.get(&key(v, b));
                backends.push(BackendStatus {
                    address: b.address.to_string(),
                    port: b.port,
                    local: self.dp.local_backends().contains(&b.address),
                    weight: b.weight,
                    admin: admin_name(self.admin(v, b)).into(),
                    health: match c {
                        Some(c) if c.up => "up",
                        Some(_) => "down",
                        None => "unchecked",
                    }
                    .into(),
                    backup: b.backup,
                    state: if backup::standing_by(b.backup, self.effective(v, b), serving) {
                        "standby"
                    } else {
                        state_name(serving)
                    }
                    .into(),
                    last_check: c.and_then(|c| c.last.as_ref()).map(|(o, at)| CheckStatus {
                        ok: o.ok,
                        reason: o.reason.clone(),
                        duration_ms: o.elapsed.as_secs_f64() * 1000.0,
                        at_unix: *at,
                    }),
                    since_unix: c.map_or(0, |c| c.since_unix),
                    traffic: t,
                    rates,
                    ring_slots: bslot.and_then(|s| shares.get(&s).copied()).unwrap_or(0),
                });
            }
            let (up, total) = self.count_up(&v.name);
            vips.push(VipStatus {
                name: v.name.clone(),
                address: v.address.to_string(),
                port: v.port,
                protocol: protocol_name(v.protocol).into(),
                forwarding: if v.routed.is_some() {
                    "proxy".into()
                } else {
                    forwarding_name(v.forwarding).into()
                },
                node_local: v.node_local(),
                check: check_name(v.check.kind).into(),
                up,
                total,
                traffic,
                rates: vip_rates,
                backends,
                empty_ring_slots: shares.get(&NO_BACKEND).copied().unwrap_or(0),
                ring_size: self.dp.capacities().ring_size,
            });
        }
        let counters = counters(&globals, old_globals.as_deref(), secs);
        let mut dataplane_problems = forwarding::missing(
            &self.config.agent.interfaces,
            forwarding::Families::of(&self.config),
        );
        dataplane_problems.extend(routing_problem(&counters));
        let flow_table = self.flow_table_status();
        let status = Status {
            routed: self
                .routed
                .iter()
                .map(super::routed::Listener::status)
                .collect(),
            sync: self.sync.as_ref().map(crate::sync::FlowSync::status),
            dataplane_problems,
            sockets: self.sockets.clone(),
            flow_table,
            source: "daemon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_file: self.config_path.display().to_string(),
            uptime_s: self.uptime().as_secs(),
            adopted: self.adopted,
            interfaces: self.interfaces.clone(),
            vips,
            counters,
            last_reload: self.last_reload.clone(),
            vrrp: self.vrrp.iter().map(|w| w.borrow().clone()).collect(),
            history: None,
        };
        if remember {
            self.previous = Some((now, readings, globals));
        }
        Ok(status)
    }

    /// What the last sweep found, and the config's NAT capacity.
    fn flow_table_status(&self) -> Option<FlowTableStatus> {
        let swept = self.sweep.as_ref()?.read();
        let by_state = |counts: &[u64]| -> BTreeMap<String, u64> {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| (crate::dataplane::state_name(s as u8).to_string(), *n))
                .collect()
        };
        let last = swept.last.clone().unwrap_or_default();
        Some(FlowTableStatus {
            capacity: self.dp.capacities().flow_table_size,
            flows: last.flows.entries(),
            bindings: last.bindings.entries(),
            bindings_expired: last.bindings.expired,
            flows_by_state: by_state(&last.flows.by_state),
            bindings_by_state: by_state(&last.bindings.by_state),
            flows_removed: by_state(&swept.flows_removed),
            bindings_removed: by_state(&swept.bindings_removed),
            in_use: last
                .in_use
                .iter()
                .map(|((snat, backend), n)| BindingsInUse {
                    snat: snat.to_string(),
                    backend: backend.to_string(),
                    bindings: *n,
                })
                .collect(),
            sweep_seconds: last.took.as_secs_f64(),
            sweeps: swept.passes,
            nat: crate::config::capacity::nat(&self.config),
        })
    }
}

/// The name of a service: the config's, else `addr:port/proto`.
fn service_name(view: &ServiceView, config: Option<&Config>) -> String {
    config
        .and_then(|c| {
            c.vips.iter().find(|v| {
                v.address == view.vip && v.port == view.port && v.protocol == view.protocol
            })
        })
        .map_or_else(
            || {
                format!(
                    "{}/{}",
                    host_port(&view.vip.to_string(), view.port),
                    protocol_name(view.protocol)
                )
            },
            |v| v.name.clone(),
        )
}

/// A backend filter: `ADDR` or `ADDR:PORT` (`[V6]:PORT`).
fn parse_backend(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|ip| (ip, None))
        .map_err(|_| format!("backend {s:?}: expected ADDR or ADDR:PORT"))
}

/// Flows of the flow table matching `vip` (a name, see `service_name`) and
/// `backend`; at most `limit` rows, and how many matched.
pub fn flow_list(
    set: &mut impl MapSet,
    config: Option<&Config>,
    vip: Option<&str>,
    backend: Option<&str>,
    limit: usize,
) -> Result<FlowList, String> {
    let backend = backend.map(parse_backend).transpose()?;
    let views = read::services(set, false).map_err(|e| chain(&e))?;
    let names: HashMap<u32, String> = views
        .iter()
        .map(|v| (v.id, service_name(v, config)))
        .collect();
    if let Some(want) = vip
        && !names.values().any(|n| n == want)
    {
        return Err(format!(
            "no VIP named {want:?} (known: {})",
            names.values().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let slots: HashMap<u32, (IpAddr, u16)> = views
        .iter()
        .flat_map(|v| v.backends.iter().map(|b| (b.slot, (b.addr, b.port))))
        .collect();
    let mut out = FlowList::default();
    for (k, e) in read::flows(set).map_err(|e| chain(&e))? {
        let name = names.get(&e.vip_id).cloned().unwrap_or_else(|| "?".into());
        if vip.is_some_and(|want| want != name) {
            continue;
        }
        let Some(&(baddr, bport)) = slots.get(&e.backend) else {
            continue;
        };
        if let Some((ip, port)) = backend
            && (ip != baddr || port.is_some_and(|p| p != bport))
        {
            continue;
        }
        out.matched += 1;
        if out.flows.len() < limit {
            let mut r = row(&k, &name, baddr, bport, e.snat_addr, e.snat_port);
            let now = crate::dataplane::now_tick();
            r.state = crate::dataplane::state_name(e.state).into();
            r.learned = e._pad == lb_common::FLOW_F_LEARNED;
            r.idle_s = crate::dataplane::ticks_to_duration(now.wrapping_sub(e.seen)).as_secs();
            let left = -lb_common::ticks::past(now, e.expires);
            r.expires_in_s = (i64::from(left) * crate::dataplane::TICK_NS as i64) / 1_000_000_000;
            out.flows.push(r);
        }
    }
    Ok(out)
}

fn row(k: &FlowKey, name: &str, baddr: IpAddr, bport: u16, snat: [u32; 4], sport: u16) -> FlowRow {
    let dport = u16::from_be(k.dport);
    let bport = if bport == 0 { dport } else { bport };
    FlowRow {
        protocol: if k.proto == PROTO_TCP { "tcp" } else { "udp" }.into(),
        client: host_port(
            &from_words(k.src, k.family).to_string(),
            u16::from_be(k.sport),
        ),
        vip_name: name.into(),
        vip: host_port(&from_words(k.dst, k.family).to_string(), dport),
        backend: host_port(&baddr.to_string(), bport),
        snat: if sport == 0 {
            String::new()
        } else {
            host_port(&from_words(snat, k.family).to_string(), u16::from_be(sport))
        },
        ..FlowRow::default()
    }
}

/// The picture from pinned maps alone (the daemon is down): states as the data
/// plane holds them, health "unknown", no rates.
pub fn offline_status(
    set: &mut impl MapSet,
    config: Option<&Config>,
) -> Result<Status, DataplaneError> {
    let views = read::services(set, true)?;
    let globals = read::global_counters(set)?.0;
    let mut vips = Vec::with_capacity(views.len());
    for view in &views {
        let cfg: Option<&VipConfig> = config.and_then(|c| {
            c.vips.iter().find(|v| {
                v.address == view.vip && v.port == view.port && v.protocol == view.protocol
            })
        });
        let mut backends = Vec::with_capacity(view.backends.len());
        for b in &view.backends {
            let bc = cfg.and_then(|v| {
                v.backends
                    .iter()
                    .find(|c| c.address == b.addr && c.port == b.port)
            });
            backends.push(BackendStatus {
                address: b.addr.to_string(),
                port: b.port,
                local: b.local,
                weight: bc.map_or(0, |c| c.weight),
                admin: bc.map_or("?", |c| admin_name(c.state)).into(),
                health: "unknown".into(),
                backup: bc.is_some_and(|c| c.backup),
                state: state_name(b.state).into(),
                last_check: None,
                since_unix: 0,
                traffic: read::backend_traffic(set, b.slot)?,
                rates: Rates::default(),
                ring_slots: b.ring_slots,
            });
        }
        vips.push(VipStatus {
            name: service_name(view, config),
            address: view.vip.to_string(),
            port: view.port,
            protocol: protocol_name(view.protocol).into(),
            forwarding: forwarding_name(view.forwarding).into(),
            node_local: view.vip.is_loopback(),
            check: cfg.map_or("?", |v| check_name(v.check.kind)).into(),
            up: view
                .backends
                .iter()
                .filter(|b| b.state == BackendState::Up)
                .count(),
            total: view.backends.len(),
            traffic: read::vip_traffic(set, view.id)?,
            rates: Rates::default(),
            backends,
            empty_ring_slots: view.empty_slots,
            ring_size: view.ring_size,
        });
    }
    Ok(Status {
        routed: Vec::new(),
        sync: None,
        source: "pinned maps".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config_file: String::new(),
        uptime_s: 0,
        adopted: false,
        interfaces: Vec::new(),
        vips,
        counters: counters(&globals, None, 0.0),
        last_reload: None,
        vrrp: Vec::new(),
        dataplane_problems: Vec::new(),
        sockets: None,
        flow_table: None,
        history: None,
    })
}
