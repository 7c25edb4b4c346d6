//! `[[vrrp]]`: VRRP instances and their trackers, checked as a whole (unique names
//! and (interface, vrid, family), families of addresses and peers, v2 limits).

use std::{collections::HashSet, net::IpAddr, time::Duration};

use lb_vrrp::packet::{V3Checksum, Version};

use super::{
    defaults as d, duration,
    locate::KeyPath,
    model::VipConfig,
    raw,
    validate::{Problems, choice, dur, int_in, ip},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: Duration,
    pub version: Version,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub unicast_src: Option<IpAddr>,
    /// Empty: multicast to 224.0.0.18 / ff02::12.
    pub unicast_peers: Vec<IpAddr>,
    pub auth_pass: Option<String>,
    /// Address and prefix length.
    pub addresses: Vec<(IpAddr, u8)>,
    pub garp_repeat: u32,
    pub garp_interval: Duration,
    /// Zero: no refresh.
    pub garp_refresh: Duration,
    pub v3_checksum: V3Checksum,
    /// argv of a command run on every transition with instance, state, priority
    /// appended (no shell).
    pub notify: Vec<String>,
    pub tracks: Vec<TrackConfig>,
}

impl VrrpConfig {
    pub fn is_ipv6(&self) -> bool {
        self.addresses.first().is_some_and(|(a, _)| a.is_ipv6())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackKind {
    /// The named `[[vip]]` has a backend taking new flows.
    VipHealthy { vip: String },
    /// The XDP program is attached.
    Dataplane,
    /// A command (argv, no shell) exiting 0 within `timeout`, every `interval`.
    Script {
        command: Vec<String>,
        interval: Duration,
        timeout: Duration,
    },
    /// The interface is up (operationally).
    Interface { name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    pub kind: TrackKind,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
}

/// A duration that may be zero ("0s" turns a feature off).
fn dur0(p: &mut Problems, at: &KeyPath, v: Option<&str>, default: Duration) -> Option<Duration> {
    match v {
        None => Some(default),
        Some(s) => match duration::parse(s) {
            Some(x) => Some(x),
            None => {
                p.add(at, format!("got \"{s}\", expected {}", duration::EXPECTED));
                None
            }
        },
    }
}

fn cidr(p: &mut Problems, at: &KeyPath, s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(addr) = a.parse::<IpAddr>() else {
        p.add(
            at,
            format!("got \"{s}\", expected an address with a prefix, e.g. \"198.18.1.10/24\""),
        );
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len.map(str::parse::<u8>) {
        None => max,
        Some(Ok(l)) if l <= max => l,
        Some(_) => {
            p.add(
                at,
                format!("got \"{s}\", expected a prefix length in 0..={max}"),
            );
            return None;
        }
    };
    Some((addr, len))
}

fn argv(p: &mut Problems, at: &KeyPath, v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() || v[0].is_empty() {
        p.add(at, "expected a command as a list: program and arguments, e.g. [\"/usr/bin/check\", \"--fast\"] (no shell)");
        return None;
    }
    Some(v.to_vec())
}

/// Every `[[vrrp]]`; `vips` for `vip_healthy` trackers.
pub fn instances(
    p: &mut Problems,
    root: &KeyPath,
    raw: &[raw::Vrrp],
    vips: &[VipConfig],
) -> Vec<VrrpConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut routers = HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let at = root.key("vrrp").index(i);
        let Some(v) = instance(p, &at, r, vips) else {
            continue;
        };
        if !names.insert(v.name.clone()) {
            p.add(
                &at.key("name"),
                format!("\"{}\" is used by another [[vrrp]]", v.name),
            );
        }
        if !routers.insert((v.interface.clone(), v.vrid, v.is_ipv6())) {
            p.add(
                &at.key("vrid"),
                format!(
                    "vrid {} is already used on {} by another [[vrrp]] of this family",
                    v.vrid, v.interface
                ),
            );
        }
        out.push(v);
    }
    out
}

fn instance(
    p: &mut Problems,
    at: &KeyPath,
    r: &raw::Vrrp,
    vips: &[VipConfig],
) -> Option<VrrpConfig> {
    let need = |p: &mut Problems, k: &str, v: &Option<String>, what: &str| match v {
        Some(x) if !x.is_empty() => Some(x.clone()),
        _ => {
            p.add(&at.key(k), format!("missing: expected {what}"));
            None
        }
    };
    let name = need(p, "name", &r.name, "the instance's name");
    let interface = need(
        p,
        "interface",
        &r.interface,
        "the interface adverts use, e.g. \"eth0\"",
    );
    let vrid = match r.vrid {
        Some(n) => int_in(p, &at.key("vrid"), n, 1, 255, "a virtual router id").map(|n| n as u8),
        None => {
            p.add(
                &at.key("vrid"),
                "missing: expected a virtual router id in 1..=255",
            );
            None
        }
    };
    let priority = match r.priority {
        Some(n) => int_in(p, &at.key("priority"), n, 1, 255, "a priority").map(|n| n as u8),
        None => {
            p.add(
                &at.key("priority"),
                "missing: expected a priority in 1..=255 (255 = address owner)",
            );
            None
        }
    };
    let version = match r.version.unwrap_or(d::VRRP_VERSION) {
        2 => Some(Version::V2),
        3 => Some(Version::V3),
        n => {
            p.add(&at.key("version"), format!("got {n}, expected 2 or 3"));
            None
        }
    };
    let advert_interval = dur(p, &at.key("advert_interval"), r.advert_interval.as_deref(), d::VRRP_ADVERT_INTERVAL)
        .and_then(|i| {
            let ok = match version {
                Some(Version::V2) => i.subsec_nanos() == 0 && (1..=255).contains(&i.as_secs()),
                _ => i.as_millis() % 10 == 0 && (10..=40_950).contains(&i.as_millis()),
            };
            if ok {
                Some(i)
            } else {
                p.add(
                    &at.key("advert_interval"),
                    match version {
                        Some(Version::V2) => "version 2 advertises whole seconds: expected 1s..=255s",
                        _ => "version 3 advertises centiseconds: expected a multiple of 10ms in 10ms..=40.95s",
                    },
                );
                None
            }
        });
    let preempt_delay = dur0(
        p,
        &at.key("preempt_delay"),
        r.preempt_delay.as_deref(),
        Duration::ZERO,
    );
    let addresses = match &r.addresses {
        Some(list) if !list.is_empty() => {
            let parsed: Vec<Option<(IpAddr, u8)>> = list
                .iter()
                .enumerate()
                .map(|(j, s)| cidr(p, &at.key("addresses").index(j), s))
                .collect();
            let parsed: Vec<(IpAddr, u8)> = parsed.into_iter().flatten().collect();
            if parsed.iter().any(|(a, _)| a.is_ipv4()) && parsed.iter().any(|(a, _)| a.is_ipv6()) {
                p.add(
                    &at.key("addresses"),
                    "mixes IPv4 and IPv6: a VRRP instance is of one family; use two [[vrrp]]",
                );
            }
            Some(parsed)
        }
        _ => {
            p.add(
                &at.key("addresses"),
                "missing: expected the addresses it holds as master, e.g. [\"198.18.1.10/24\"]",
            );
            None
        }
    };
    let v6 = addresses
        .as_ref()
        .is_some_and(|a| a.first().is_some_and(|(x, _)| x.is_ipv6()));
    if v6 && version == Some(Version::V2) {
        p.add(
            &at.key("version"),
            "version 2 is IPv4 only: IPv6 addresses need version 3",
        );
    }
    let family = |p: &mut Problems, key: &KeyPath, a: IpAddr| {
        if a.is_ipv6() != v6 {
            p.add(key, format!("{a} is not of the family of `addresses`"));
        }
    };
    let unicast_src = r
        .unicast_src
        .as_deref()
        .and_then(|s| ip(p, &at.key("unicast_src"), Some(s)));
    if let Some(a) = unicast_src {
        family(p, &at.key("unicast_src"), a);
    }
    let mut unicast_peers = Vec::new();
    for (j, s) in r.unicast_peers.iter().enumerate() {
        if let Some(a) = ip(p, &at.key("unicast_peers").index(j), Some(s)) {
            family(p, &at.key("unicast_peers").index(j), a);
            unicast_peers.push(a);
        }
    }
    let auth_pass = match (&r.auth_pass, version) {
        (Some(pass), Some(Version::V2)) if !pass.is_empty() && pass.len() <= 8 => {
            Some(pass.clone())
        }
        (Some(_), Some(Version::V2)) => {
            p.add(
                &at.key("auth_pass"),
                "expected 1 to 8 characters (v2 carries 8 bytes)",
            );
            None
        }
        (Some(_), _) => {
            p.add(
                &at.key("auth_pass"),
                "only version 2 has authentication (RFC 5798 removed it)",
            );
            None
        }
        (None, _) => None,
    };
    let garp_repeat = match r.garp_repeat {
        Some(n) => int_in(p, &at.key("garp_repeat"), n, 1, 100, "a count").map(|n| n as u32),
        None => Some(d::VRRP_GARP_REPEAT),
    };
    let garp_interval = dur0(
        p,
        &at.key("garp_interval"),
        r.garp_interval.as_deref(),
        d::VRRP_GARP_INTERVAL,
    );
    let garp_refresh = dur0(
        p,
        &at.key("garp_refresh"),
        r.garp_refresh.as_deref(),
        d::VRRP_GARP_REFRESH,
    );
    let v3_checksum = choice(
        p,
        &at.key("v3_checksum"),
        r.v3_checksum.as_deref(),
        d::VRRP_V3_CHECKSUM,
        &[
            ("pseudo-header", V3Checksum::PseudoHeader),
            ("no-pseudo-header", V3Checksum::NoPseudoHeader),
        ],
    );
    let notify = match &r.notify {
        Some(v) => argv(p, &at.key("notify"), v),
        None => Some(Vec::new()),
    };
    let mut tracks = Vec::new();
    for (j, t) in r.track.iter().enumerate() {
        if let Some(t) = track(p, &at.key("track").index(j), t, vips) {
            tracks.push(t);
        }
    }
    Some(VrrpConfig {
        name: name?,
        interface: interface?,
        vrid: vrid?,
        priority: priority?,
        advert_interval: advert_interval?,
        version: version?,
        preempt: r.preempt.unwrap_or(d::VRRP_PREEMPT),
        preempt_delay: preempt_delay?,
        unicast_src,
        unicast_peers,
        auth_pass,
        addresses: addresses?,
        garp_repeat: garp_repeat?,
        garp_interval: garp_interval?,
        garp_refresh: garp_refresh?,
        v3_checksum: v3_checksum?,
        notify: notify?,
        tracks,
    })
}

fn track(
    p: &mut Problems,
    at: &KeyPath,
    t: &raw::Track,
    vips: &[VipConfig],
) -> Option<TrackConfig> {
    let kind_word = t.kind.as_deref().unwrap_or("");
    let unused = |p: &mut Problems, k: &str, set: bool| {
        if set {
            p.add(&at.key(k), format!("not a key of kind \"{kind_word}\""));
        }
    };
    let kind = match kind_word {
        "vip_healthy" => {
            unused(p, "command", t.command.is_some());
            unused(p, "name", t.name.is_some());
            match &t.vip {
                Some(v) if vips.iter().any(|x| &x.name == v) => {
                    Some(TrackKind::VipHealthy { vip: v.clone() })
                }
                Some(v) => {
                    let pools: Vec<&str> = vips
                        .iter()
                        .filter(|x| x.routed.as_ref().is_some_and(|r| &r.vip == v))
                        .map(|x| x.name.as_str())
                        .collect();
                    if pools.is_empty() {
                        p.add(&at.key("vip"), format!("no [[vip]] is named \"{v}\""));
                    } else {
                        p.add(
                            &at.key("vip"),
                            format!(
                                "\"{v}\" is a routed VIP: track one of its pools ({})",
                                pools.join(", ")
                            ),
                        );
                    }
                    None
                }
                None => {
                    p.add(&at.key("vip"), "missing: expected the name of a [[vip]]");
                    None
                }
            }
        }
        "dataplane" => {
            unused(p, "vip", t.vip.is_some());
            unused(p, "command", t.command.is_some());
            unused(p, "name", t.name.is_some());
            Some(TrackKind::Dataplane)
        }
        "script" => {
            unused(p, "vip", t.vip.is_some());
            unused(p, "name", t.name.is_some());
            let command = match &t.command {
                Some(c) => argv(p, &at.key("command"), c),
                None => {
                    p.add(
                        &at.key("command"),
                        "missing: expected the command as a list (no shell)",
                    );
                    None
                }
            };
            let interval = dur(
                p,
                &at.key("interval"),
                t.interval.as_deref(),
                d::TRACK_INTERVAL,
            );
            let timeout = match interval {
                Some(i) => dur(p, &at.key("timeout"), t.timeout.as_deref(), i),
                None => None,
            };
            if let (Some(i), Some(to)) = (interval, timeout)
                && to > i
            {
                p.add(&at.key("timeout"), "expected at most the interval");
            }
            Some(TrackKind::Script {
                command: command?,
                interval: interval?,
                timeout: timeout?,
            })
        }
        "interface" => {
            unused(p, "vip", t.vip.is_some());
            unused(p, "command", t.command.is_some());
            match &t.name {
                Some(n) if !n.is_empty() => Some(TrackKind::Interface { name: n.clone() }),
                _ => {
                    p.add(&at.key("name"), "missing: expected an interface name");
                    None
                }
            }
        }
        other => {
            p.add(
                &at.key("kind"),
                format!("got \"{other}\", expected one of \"vip_healthy\", \"dataplane\", \"script\", \"interface\""),
            );
            None
        }
    };
    if t.interval.is_some()
        && kind
            .as_ref()
            .is_some_and(|k| !matches!(k, TrackKind::Script { .. }))
    {
        p.add(&at.key("interval"), "only script trackers have an interval");
    }
    let weight = match t.weight {
        Some(w) => int_in(p, &at.key("weight"), w, -253, 253, "a weight").map(|w| w as i32),
        None => Some(0),
    };
    let rise = match t.rise {
        Some(n) => int_in(p, &at.key("rise"), n, 1, 100, "a count").map(|n| n as u32),
        None => Some(d::TRACK_RISE),
    };
    let fall = match t.fall {
        Some(n) => int_in(p, &at.key("fall"), n, 1, 100, "a count").map(|n| n as u32),
        None => Some(d::TRACK_FALL),
    };
    Some(TrackConfig {
        kind: kind?,
        weight: weight?,
        rise: rise?,
        fall: fall?,
    })
}
