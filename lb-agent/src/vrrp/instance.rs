//! One VRRP instance as a task: its sockets, the state machine, the addresses it
//! holds as master (rtnetlink), announcements, notify, and its published status.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::{Instant, sleep, sleep_until},
};

use super::{
    announce, iface,
    machine::{Action, Machine, Params, State},
    net::{Endpoint, GROUP_V4, GROUP_V6},
    packet::{self, Advert, Expect, Version},
};
use crate::{config::VrrpConfig, netlink::route, status::unix_now};

/// What the rest of the agent can tell an instance.
#[derive(Debug)]
pub enum Command {
    /// The effective priority from trackers, or `None` for FAULT.
    Priority(Option<u8>),
    /// Leave gracefully (priority 0, addresses removed), then answer.
    Stop(oneshot::Sender<()>),
    /// Leave for a restart (a last advert at our priority, addresses removed, no
    /// priority 0), then answer with the state left in.
    Leave(oneshot::Sender<State>),
    /// `lb-agent handover`: `true` steps down (priority 0 if master) and stays out of
    /// the election; `false` rejoins it.
    Hold(bool),
}

/// An instance about to take its addresses asks the agent to serve them first (its
/// DSR services leave standby), and waits for `done` (at most `TAKING_WAIT`):
/// packets that arrive with the first gratuitous ARP find the data plane ready.
#[derive(Debug)]
pub struct Taking {
    /// The instance's name.
    pub instance: String,
    pub addresses: Vec<IpAddr>,
    pub done: oneshot::Sender<()>,
}

/// How long taking the addresses waits for the agent's answer.
const TAKING_WAIT: Duration = Duration::from_millis(200);

/// An instance as `lb-agent vrrp` and `/metrics` show it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: String,
    pub base_priority: u8,
    pub priority: u8,
    /// The master as last heard ("" when unknown).
    pub master: String,
    pub last_transition_unix: u64,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Rejected adverts by reason.
    pub rejected: BTreeMap<String, u64>,
    pub addresses: Vec<String>,
    /// The last error (sockets, addresses), if any.
    pub error: String,
    /// Held out of the election by `lb-agent handover`.
    #[serde(default)]
    pub held: bool,
}

/// Runs instance `cfg` until stopped; publishes its status on `status`.
pub async fn run(
    cfg: VrrpConfig,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<InstanceStatus>,
    resume: bool,
    taking: mpsc::Sender<Taking>,
) {
    let mut st = InstanceStatus {
        name: cfg.name.clone(),
        interface: cfg.interface.clone(),
        vrid: cfg.vrid,
        version: if cfg.version == Version::V2 { 2 } else { 3 },
        state: State::Initialize.name().into(),
        base_priority: cfg.priority,
        priority: cfg.priority,
        addresses: cfg
            .addresses
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .collect(),
        ..InstanceStatus::default()
    };
    let vips: Vec<IpAddr> = cfg.addresses.iter().map(|(a, _)| *a).collect();
    // `lb-agent handover` holds the instance out; the trackers' last word is kept
    // for when it rejoins (both also while the interface is awaited).
    let mut held = false;
    let mut tracked: Option<u8> = Some(cfg.priority);
    // Interface and sockets; retried, since an interface may come up late.
    let (ifc, src, ep) = loop {
        match open(&cfg, &vips) {
            Ok(x) => break x,
            Err(e) => {
                st.error = e.clone();
                let _ = status.send(st.clone());
                tracing::error!("vrrp {}: {e}; retrying in 1 s", cfg.name);
                tokio::select! {
                    () = sleep(Duration::from_secs(1)) => continue,
                    c = commands.recv() => match c {
                        Some(Command::Stop(done)) => {
                            let _ = done.send(());
                            return;
                        }
                        Some(Command::Leave(done)) => {
                            let _ = done.send(State::Initialize);
                            return;
                        }
                        Some(Command::Priority(p)) => {
                            tracked = p;
                            continue;
                        }
                        Some(Command::Hold(h)) => {
                            held = h;
                            st.held = h;
                            continue;
                        }
                        None => return,
                    }
                }
            }
        }
    };
    st.error.clear();
    // Whatever an earlier agent (killed before it could clean up) left behind.
    release(&cfg, ifc.index);
    let multicast = cfg.unicast_peers.is_empty();
    let dsts: Vec<IpAddr> = if multicast {
        vec![if src.is_ipv6() {
            IpAddr::V6(GROUP_V6)
        } else {
            IpAddr::V4(GROUP_V4)
        }]
    } else {
        cfg.unicast_peers.clone()
    };
    let expect = Expect {
        version: cfg.version,
        mode: cfg.v3_checksum,
        auth: cfg.auth_pass.as_deref().map(packet::auth_data),
        interval_s: cfg.advert_interval.as_secs().min(255) as u8,
    };
    let mut m = Machine::new(
        Params {
            version: cfg.version,
            interval: cfg.advert_interval,
            preempt: cfg.preempt,
            preempt_delay: cfg.preempt_delay,
            primary: src,
        },
        cfg.priority,
    );
    let io = Io {
        cfg: &cfg,
        ep: &ep,
        src,
        dsts: &dsts,
        ifc: &ifc,
        vips: &vips,
        taking: &taking,
    };
    let mut fault = false;
    let mut actions = if resume {
        tracing::info!(
            "vrrp {}: resuming as MASTER after a restart (the VIP's adverts never stopped long enough for a backup to take over)",
            cfg.name
        );
        m.resume(Instant::now())
    } else {
        m.start(Instant::now())
    };
    // What came while the sockets were awaited: a hold, the trackers' word.
    match tracked {
        _ if held => {
            fault = true;
            actions.append(&mut m.set_fault(Instant::now(), true));
        }
        None => {
            fault = true;
            actions.append(&mut m.set_fault(Instant::now(), true));
        }
        Some(p) if p != cfg.priority && cfg.priority != 255 => {
            actions.append(&mut m.set_priority(Instant::now(), p));
        }
        Some(_) => {}
    }
    let mut refresh_at: Option<Instant> = None;
    loop {
        io.apply(
            &mut m,
            &mut st,
            std::mem::take(&mut actions),
            &mut refresh_at,
        )
        .await;
        st.state = m.state().name().into();
        st.priority = m.priority();
        st.master = m.master().map(|a| a.to_string()).unwrap_or_default();
        let _ = status.send(st.clone());
        let deadline = m.next_deadline();
        tokio::select! {
            r = ep.recv() => match r {
                Ok(p) => {
                    if p.payload.len() > 1 && p.payload[1] != cfg.vrid {
                        continue; // another virtual router on this LAN
                    }
                    let dst = if multicast { dsts[0] } else { src };
                    match packet::parse(&p.payload, p.src, dst, p.ttl, multicast, &expect) {
                        Ok(a) => {
                            st.adverts_received += 1;
                            if a.interval_cs != (cfg.advert_interval.as_millis() / 10) as u16 {
                                tracing::debug!("vrrp {}: {} advertises {} cs", cfg.name, p.src, a.interval_cs);
                            }
                            actions = m.on_advert(Instant::now(), p.src, a.priority, a.interval_cs);
                        }
                        Err(reason) => {
                            *st.rejected.entry(reason.label().to_string()).or_default() += 1;
                            tracing::debug!("vrrp {}: advert from {} rejected: {}", cfg.name, p.src, reason.label());
                        }
                    }
                }
                Err(e) => {
                    st.error = format!("receiving: {e}");
                    sleep(Duration::from_millis(100)).await;
                }
            },
            () = sleep_until(deadline.unwrap_or_else(far)) , if deadline.is_some() => {
                actions = m.on_timer(Instant::now());
            }
            () = sleep_until(refresh_at.unwrap_or_else(far)), if refresh_at.is_some() => {
                if let Err(e) = announce::announce(&ifc, &vips) {
                    tracing::warn!("vrrp {}: refreshing the announcement failed: {e}", cfg.name);
                }
                refresh_at = Some(Instant::now() + cfg.garp_refresh);
            }
            c = commands.recv() => match c {
                Some(Command::Priority(p)) if held => tracked = p,
                Some(Command::Priority(Some(p))) => {
                    tracked = Some(p);
                    if fault {
                        fault = false;
                        actions = m.set_fault(Instant::now(), false);
                    }
                    let mut more = m.set_priority(Instant::now(), if cfg.priority == 255 { 255 } else { p });
                    actions.append(&mut more);
                }
                Some(Command::Priority(None)) => {
                    tracked = None;
                    if !fault {
                        fault = true;
                        actions = m.set_fault(Instant::now(), true);
                    }
                }
                Some(Command::Hold(true)) => {
                    if !held {
                        held = true;
                        st.held = true;
                        tracing::info!("vrrp {}: held out of the election (lb-agent handover)", cfg.name);
                        if !fault {
                            fault = true;
                            actions = m.set_fault(Instant::now(), true);
                        }
                    }
                }
                Some(Command::Hold(false)) => {
                    if held {
                        held = false;
                        st.held = false;
                        tracing::info!("vrrp {}: back in the election", cfg.name);
                        if let Some(p) = tracked {
                            fault = false;
                            actions = m.set_fault(Instant::now(), false);
                            let mut more = m.set_priority(Instant::now(), if cfg.priority == 255 { 255 } else { p });
                            actions.append(&mut more);
                        }
                    }
                }
                Some(Command::Leave(done)) => {
                    let out = m.leave();
                    io.apply(&mut m, &mut st, out, &mut refresh_at).await;
                    let _ = done.send(m.state());
                    return;
                }
                Some(Command::Stop(done)) => {
                    let out = m.stop(Instant::now());
                    io.apply(&mut m, &mut st, out, &mut refresh_at).await;
                    st.state = m.state().name().into();
                    let _ = status.send(st.clone());
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
        }
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

fn open(cfg: &VrrpConfig, vips: &[IpAddr]) -> Result<(iface::Interface, IpAddr, Endpoint), String> {
    let ifc =
        iface::lookup(&cfg.interface).map_err(|e| format!("interface {}: {e}", cfg.interface))?;
    let src = match cfg.unicast_src {
        Some(a) => a,
        None if cfg.is_ipv6() => IpAddr::V6(
            ifc.link_local()
                .ok_or_else(|| format!("{} has no IPv6 link-local address", cfg.interface))?,
        ),
        None => IpAddr::V4(
            ifc.primary_v4(vips)
                .ok_or_else(|| format!("{} has no IPv4 address of its own", cfg.interface))?,
        ),
    };
    let ep =
        Endpoint::open(&ifc, src).map_err(|e| format!("VRRP sockets on {}: {e}", cfg.interface))?;
    Ok((ifc, src, ep))
}

fn release(cfg: &VrrpConfig, ifindex: u32) {
    for (a, p) in &cfg.addresses {
        if let Err(e) = route::remove_address(ifindex, *a, *p) {
            tracing::error!("vrrp {}: removing {a}/{p}: {e}", cfg.name);
        }
    }
}

struct Io<'a> {
    cfg: &'a VrrpConfig,
    ep: &'a Endpoint,
    src: IpAddr,
    dsts: &'a [IpAddr],
    ifc: &'a iface::Interface,
    vips: &'a [IpAddr],
    taking: &'a mpsc::Sender<Taking>,
}

impl Io<'_> {
    async fn apply(
        &self,
        m: &mut Machine,
        st: &mut InstanceStatus,
        actions: Vec<Action>,
        refresh_at: &mut Option<Instant>,
    ) {
        let cfg = self.cfg;
        for a in actions {
            match a {
                Action::Send { priority } => {
                    let advert = Advert {
                        version: cfg.version,
                        vrid: cfg.vrid,
                        priority,
                        interval_cs: (cfg.advert_interval.as_millis() / 10) as u16,
                        addrs: self.vips.to_vec(),
                        auth: cfg.auth_pass.as_deref().map(packet::auth_data),
                    };
                    for dst in self.dsts {
                        let msg = packet::encode(&advert, self.src, *dst, cfg.v3_checksum);
                        match self.ep.send(&msg, *dst).await {
                            Ok(()) => st.adverts_sent += 1,
                            Err(e) => {
                                st.error = format!("sending to {dst}: {e}");
                                tracing::warn!("vrrp {}: sending to {dst}: {e}", cfg.name);
                            }
                        }
                    }
                }
                Action::TakeAddresses | Action::RetakeAddresses => {
                    let (done, answered) = oneshot::channel();
                    let ask = Taking {
                        instance: cfg.name.clone(),
                        addresses: self.vips.to_vec(),
                        done,
                    };
                    // Never blocks: an owner not reading (starting, stopping) must not
                    // stall the instance. A resumed master does not ask: its pinned
                    // data plane never stopped serving the addresses.
                    if a == Action::TakeAddresses
                        && self.taking.try_send(ask).is_ok()
                        && tokio::time::timeout(TAKING_WAIT, answered).await.is_err()
                    {
                        tracing::warn!(
                            "vrrp {}: the data plane did not confirm serving {:?} within {} ms; taking them anyway",
                            cfg.name,
                            self.vips,
                            TAKING_WAIT.as_millis()
                        );
                    }
                    for (a, p) in &cfg.addresses {
                        if let Err(e) = route::add_address(self.ifc.index, *a, *p) {
                            st.error = format!("adding {a}/{p}: {e}");
                            tracing::error!("vrrp {}: adding {a}/{p}: {e}", cfg.name);
                        }
                    }
                    let (ifc, vips, repeat, gap) = (
                        self.ifc.clone(),
                        self.vips.to_vec(),
                        cfg.garp_repeat,
                        cfg.garp_interval,
                    );
                    let name = cfg.name.clone();
                    tokio::spawn(async move {
                        for i in 0..repeat {
                            if let Err(e) = announce::announce(&ifc, &vips) {
                                tracing::warn!("vrrp {name}: announcing: {e}");
                            }
                            if i + 1 < repeat {
                                sleep(gap).await;
                            }
                        }
                    });
                    if !cfg.garp_refresh.is_zero() {
                        *refresh_at = Some(Instant::now() + cfg.garp_refresh);
                    }
                }
                Action::ReleaseAddresses => {
                    release(cfg, self.ifc.index);
                    *refresh_at = None;
                }
                Action::Transition { from, to } => {
                    st.transitions += 1;
                    st.last_transition_unix = unix_now();
                    let master = m.master().map(|a| a.to_string());
                    tracing::info!(
                        event = "vrrp_transition",
                        vrrp_instance = %cfg.name,
                        from = from.name(),
                        to = to.name(),
                        priority = m.priority(),
                        master,
                        "vrrp {}: {} -> {} (priority {}{})",
                        cfg.name,
                        from.name(),
                        to.name(),
                        m.priority(),
                        master
                            .as_deref()
                            .map(|a| format!(", master {a}"))
                            .unwrap_or_default()
                    );
                    notify(cfg, to, m.priority());
                }
            }
        }
    }
}

/// Runs the notify command with instance, state and priority as arguments (no
/// shell); its outcome is logged, never waited on by the protocol.
fn notify(cfg: &VrrpConfig, state: State, priority: u8) {
    let Some((program, args)) = cfg.notify.split_first() else {
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .arg(&cfg.name)
        .arg(state.name())
        .arg(priority.to_string())
        .kill_on_drop(true);
    let name = cfg.name.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(30), cmd.status()).await {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => tracing::warn!("vrrp {name}: notify exited with {s}"),
            Ok(Err(e)) => tracing::warn!("vrrp {name}: notify could not run: {e}"),
            Err(_) => tracing::warn!("vrrp {name}: notify still running after 30 s, killed"),
        }
    });
}
