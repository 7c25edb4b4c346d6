//! keepalived's VRRP side: `global_defs` (only `vrrp_version` is used),
//! `vrrp_script` and `vrrp_instance` become `[[vrrp]]` with `[[vrrp.track]]`.
//! keepalived's defaults are written out where ours differ (version 2, script
//! interval 1 s); what has no equivalent is warned about.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use super::{
    ipvs,
    keepalived::{Node, script_argv},
    model::{Service, TrackPlan, VrrpPlan},
    sync_group::{self, SyncGroup},
    warning::{Diagnostics, Loc},
};

/// keepalived's defaults.
const KEEPALIVED_VERSION: i64 = 2;
const KEEPALIVED_PRIORITY: i64 = 100;
const OWNER_PRIORITY: i64 = 255;
const SCRIPT_INTERVAL: Duration = Duration::from_secs(1);
/// keepalived's gratuitous ARP defaults: 5 on becoming master, no gap, no refresh.
const GARP_REPEAT: i64 = 5;
const GARP_INTERVAL: Duration = Duration::ZERO;
const GARP_REFRESH: Duration = Duration::ZERO;

/// What `global_defs` gives every instance: the VRRP version and gratuitous ARP
/// settings, each with its line.
#[derive(Clone, Debug, Default)]
struct Globals {
    version: Option<(i64, usize)>,
    garp_repeat: Option<(i64, usize)>,
    garp_refresh: Option<(Duration, usize)>,
    garp_interval: Option<(Duration, usize)>,
    /// `vrrp_gna_interval`: the gap between IPv6 unsolicited NAs.
    gna_interval: Option<(Duration, usize)>,
}

/// Everything read from keepalived.conf.
#[derive(Debug, Default)]
pub struct Keepalived {
    pub instances: Vec<VrrpPlan>,
    /// From `virtual_server` (IPVS) blocks.
    pub services: Vec<Service>,
}

#[derive(Clone, Debug, Default)]
struct Script {
    line: usize,
    script: Option<String>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    weight: Option<i64>,
    rise: Option<i64>,
    fall: Option<i64>,
}

/// A keepalived TIMER: seconds, fractions allowed.
pub fn seconds(text: &str) -> Option<Duration> {
    let v: f64 = text.parse().ok()?;
    (0.0..1e9)
        .contains(&v)
        .then(|| Duration::from_micros((v * 1e6).round() as u64))
}

fn number(n: &Node, at: Loc<'_>, d: &mut Diagnostics) -> Option<i64> {
    match n.word(1).parse::<i64>() {
        Ok(v) => Some(v),
        Err(_) => {
            d.warn(at, format!("`{}`: not a number; ignored", n.text()));
            None
        }
    }
}

fn timer(n: &Node, at: Loc<'_>, d: &mut Diagnostics) -> Option<Duration> {
    let t = seconds(n.word(1));
    if t.is_none() {
        d.warn(
            at,
            format!("`{}`: not a time in seconds; ignored", n.text()),
        );
    }
    t
}

pub fn read(nodes: &[Node], file: &str, d: &mut Diagnostics) -> Keepalived {
    let mut out = Keepalived::default();
    let mut globals = Globals::default();
    let mut scripts: HashMap<String, Script> = HashMap::new();
    for n in nodes {
        let at = Loc { file, line: n.line };
        match n.word(0) {
            "global_defs" => global_defs(n, file, d, &mut globals),
            "vrrp_script" => {
                scripts.insert(n.word(1).to_string(), script(n, file, d));
            }
            _ => {}
        }
        if n.block.is_none()
            && matches!(
                n.word(0),
                "global_defs"
                    | "vrrp_script"
                    | "vrrp_instance"
                    | "virtual_server"
                    | "vrrp_sync_group"
            )
        {
            d.warn(
                at,
                format!("`{}` without its {{ }} block: ignored", n.text()),
            );
        }
    }
    let groups = sync_group::read(nodes, file, d);
    let mut tracked: Vec<String> = Vec::new();
    for n in nodes {
        let at = Loc { file, line: n.line };
        match n.word(0) {
            "global_defs" | "vrrp_script" | "vrrp_sync_group" => {}
            "vrrp_instance" if n.block.is_some() => {
                let group = sync_group::of(&groups, n.word(1));
                let ctx = Context {
                    file,
                    globals: &globals,
                    scripts: &scripts,
                    group,
                };
                if let Some(i) = instance(n, &ctx, d, &mut tracked) {
                    out.instances.push(i);
                }
            }
            "virtual_server" if n.block.is_some() => {
                if let Some(s) = ipvs::virtual_server(n, file, d) {
                    out.services.push(s);
                }
            }
            "vrrp_instance" | "virtual_server" => {}
            other => d.warn(
                at,
                format!(
                    "`{other}`{} not converted: no equivalent in lb-agent",
                    if n.block.is_some() { " block" } else { "" }
                ),
            ),
        }
    }
    let ctx = Context {
        file,
        globals: &globals,
        scripts: &scripts,
        group: None,
    };
    group_trackers(&groups, &mut out.instances, &ctx, &mut tracked, d);
    for g in &groups {
        for m in &g.members {
            if !out.instances.iter().any(|i| &i.name == m) {
                d.warn(
                    Loc { file, line: g.line },
                    format!(
                        "vrrp_sync_group {}: no vrrp_instance {m} was converted",
                        g.name
                    ),
                );
            }
        }
    }
    let mut unused: Vec<(&String, &Script)> = scripts
        .iter()
        .filter(|(name, _)| !tracked.contains(name))
        .collect();
    unused.sort_by_key(|(_, s)| s.line);
    for (name, s) in unused {
        d.warn(
            Loc { file, line: s.line },
            format!("vrrp_script {name} is not tracked by any vrrp_instance: not converted"),
        );
    }
    out
}

/// `global_defs`: the VRRP version and the gratuitous ARP defaults; everything else
/// warned about.
fn global_defs(n: &Node, file: &str, d: &mut Diagnostics, g: &mut Globals) {
    for c in n.children() {
        let at = Loc { file, line: c.line };
        let key = c.word(0);
        match key {
            "vrrp_version" => g.version = number(c, at, d).map(|v| (v, c.line)).or(g.version),
            "vrrp_garp_master_repeat" => g.garp_repeat = number(c, at, d).map(|v| (v, c.line)),
            "vrrp_garp_master_refresh" => g.garp_refresh = timer(c, at, d).map(|t| (t, c.line)),
            "vrrp_garp_interval" => g.garp_interval = timer(c, at, d).map(|t| (t, c.line)),
            "vrrp_gna_interval" => g.gna_interval = timer(c, at, d).map(|t| (t, c.line)),
            "vrrp_garp_master_delay" => d.warn(at, format!("`{}` not converted: lb-agent sends its gratuitous ARPs on becoming master and every garp_refresh, with no second burst after a delay", c.text())),
            "vrrp_garp_master_refresh_repeat" => d.warn(at, format!("`{}` not converted: each garp_refresh sends one gratuitous ARP / NA per address", c.text())),
            "vrrp_garp_lower_prio_delay" | "vrrp_garp_lower_prio_repeat" => d.warn(at, format!("`{}` not converted: lb-agent sends no gratuitous ARPs on adverts of lower priority", c.text())),
            "notification_email" | "notification_email_from" | "smtp_server" | "smtp_connect_timeout" | "smtp_helo_name" | "email_from" => {
                d.warn_grouped("mail", at, format!("mail alerts (`{key}` and the lines listed) not converted: lb-agent sends no mail (watch /metrics, or use [[vrrp]] notify)"));
            }
            "router_id" => d.warn(at, format!("`{}` not converted: keepalived's name for this node in logs and mails; lb-agent has none", c.text())),
            "enable_script_security" | "script_user" => d.warn(
                at,
                format!("`{}` not converted: tracker scripts run as lb-agent's user, without a shell", c.text()),
            ),
            "vrrp_strict" => d.warn(at, "`vrrp_strict` not converted: lb-agent checks adverts as keepalived does by default; it adds no iptables rules"),
            "vrrp_mcast_group4" | "vrrp_mcast_group6" => d.warn(at, format!("`{}` not converted: adverts go to 224.0.0.18 / ff02::12 (or unicast_peers)", c.text())),
            _ => d.warn(at, format!("global_defs `{}` not converted: no equivalent in lb-agent", c.text())),
        }
    }
}

fn script(n: &Node, file: &str, d: &mut Diagnostics) -> Script {
    let mut s = Script {
        line: n.line,
        ..Script::default()
    };
    for c in n.children() {
        let at = Loc { file, line: c.line };
        match c.word(0) {
            "script" => s.script = Some(c.words[1..].join(" ")),
            "interval" => s.interval = timer(c, at, d),
            "timeout" => s.timeout = timer(c, at, d),
            "weight" => {
                s.weight = number(c, at, d);
                if c.word(2) == "reverse" {
                    d.warn(at, "`weight ... reverse` not converted: the weight applies as keepalived's does without reverse");
                }
            }
            "rise" => s.rise = number(c, at, d),
            "fall" => s.fall = number(c, at, d),
            "user" => d.warn(
                at,
                format!(
                    "`{}` not converted: scripts run as lb-agent's user",
                    c.text()
                ),
            ),
            "init_fail" => d.warn(
                at,
                "`init_fail` not converted: lb-agent's trackers always start failing",
            ),
            other => d.warn(
                at,
                format!("vrrp_script `{other}` not converted: no equivalent"),
            ),
        }
    }
    s
}

/// `ADDR[/LEN] [dev IF] [label L] ...` of virtual_ipaddress.
fn vip_address(
    c: &Node,
    interface: Option<&str>,
    at: Loc<'_>,
    d: &mut Diagnostics,
) -> Option<(String, IpAddr)> {
    let text = c.word(0);
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        d.warn(
            at,
            format!("virtual_ipaddress `{text}` is not an address: not converted"),
        );
        return None;
    };
    let len = len.map_or_else(
        || {
            if ip.is_ipv4() {
                "32".into()
            } else {
                "128".into()
            }
        },
        str::to_string,
    );
    let mut rest = c.words[1..].iter();
    let mut ignored = Vec::new();
    while let Some(w) = rest.next() {
        match w.as_str() {
            "dev" => {
                let dev = rest.next().map_or("", String::as_str);
                if Some(dev) != interface {
                    d.warn(
                        at,
                        format!("`dev {dev}`: lb-agent adds an instance's addresses on its interface ({}), not on {dev}", interface.unwrap_or("?")),
                    );
                }
            }
            "label" | "brd" | "broadcast" | "scope" | "peer" | "preferred_lft" => {
                ignored.push(format!("{w} {}", rest.next().map_or("", String::as_str)));
            }
            other => ignored.push(other.to_string()),
        }
    }
    if !ignored.is_empty() {
        d.warn(
            at,
            format!("virtual_ipaddress options `{}` not converted: lb-agent adds ADDR/PREFIX only (no label, broadcast or scope)", ignored.join(" ")),
        );
    }
    Some((format!("{ip}/{len}"), ip))
}

/// What converting an instance needs besides its own block.
struct Context<'a> {
    file: &'a str,
    globals: &'a Globals,
    scripts: &'a HashMap<String, Script>,
    group: Option<&'a SyncGroup>,
}

impl Context<'_> {
    fn script(&self, c: &Node, d: &mut Diagnostics) -> Option<TrackPlan> {
        let file = self.file;
        let at = Loc { file, line: c.line };
        let name = c.word(0);
        let Some(s) = self.scripts.get(name) else {
            d.warn(
                at,
                format!(
                    "track_script `{name}`: there is no vrrp_script of that name; not converted"
                ),
            );
            return None;
        };
        let mut weight = s.weight;
        if c.word(1) == "weight" {
            weight = c.word(2).parse().ok().or(weight);
            if c.word(3) == "reverse" {
                d.warn(at, "`weight ... reverse` not converted: the weight applies as keepalived's does without reverse");
            }
        }
        let mut t = TrackPlan {
            origin: format!(
                "{file}:{} vrrp_script {name}, tracked at line {}",
                s.line, c.line
            ),
            weight: weight.unwrap_or(0),
            rise: s.rise,
            fall: s.fall,
            ..TrackPlan::default()
        };
        let script = s.script.clone().unwrap_or_default();
        if script.contains("haproxy") {
            d.warn(
                at.at(s.line),
                format!("vrrp_script {name} (`{script}`) watches HAProxy, which lb-agent replaces: converted to a `dataplane` tracker (the XDP program is attached)"),
            );
            t.kind = "dataplane";
            t.notes.add("kind", format!("was `{script}`"));
            return Some(t);
        }
        if script.is_empty() {
            d.warn(
                at.at(s.line),
                format!("vrrp_script {name} has no `script`: not converted"),
            );
            return None;
        }
        t.kind = "script";
        t.command = Some(match script_argv(&script) {
            Some(argv) => argv,
            None => {
                d.warn(
                    at.at(s.line),
                    format!("vrrp_script {name}: `{script}` needs a shell; lb-agent runs commands without one, so it becomes [\"/bin/sh\", \"-c\", ...]"),
                );
                vec!["/bin/sh".into(), "-c".into(), script.clone()]
            }
        });
        let interval = s.interval.unwrap_or(SCRIPT_INTERVAL);
        t.interval = Some(interval);
        if s.interval.is_none() {
            t.notes.add("interval", "keepalived's default");
        }
        if let Some(to) = s.timeout {
            if to > interval {
                d.warn(at.at(s.line), format!("vrrp_script {name}: timeout is longer than the interval; lb-agent's is at most the interval, set to it"));
                t.timeout = Some(interval);
            } else {
                t.timeout = Some(to);
            }
        }
        Some(t)
    }

    fn interface(&self, c: &Node) -> TrackPlan {
        TrackPlan {
            origin: format!("{}:{} track_interface", self.file, c.line),
            kind: "interface",
            name: Some(c.word(0).to_string()),
            weight: if c.word(1) == "weight" {
                c.word(2).parse().unwrap_or(0)
            } else {
                0
            },
            ..TrackPlan::default()
        }
    }
}

fn instance(
    n: &Node,
    ctx: &Context<'_>,
    d: &mut Diagnostics,
    tracked: &mut Vec<String>,
) -> Option<VrrpPlan> {
    let file = ctx.file;
    let global_version = ctx.globals.version;
    let at = Loc { file, line: n.line };
    let name = n.word(1).to_string();
    let mut v = VrrpPlan {
        name: name.clone(),
        file: file.to_string(),
        line: n.line,
        comments: vec![format!("from {file}:{} vrrp_instance {name}", n.line)],
        ..VrrpPlan::default()
    };
    let track = ctx;
    let (mut state, mut priority, mut version, mut advert) = (None, None, None, None);
    let mut nopreempt = None;
    let mut preempt_delay_line = None;
    let mut auth: (Option<String>, Option<String>, usize) = (None, None, 0);
    let interface = n
        .children()
        .iter()
        .find(|c| c.word(0) == "interface")
        .map(|c| c.word(1).to_string());
    for c in n.children() {
        let at = at.at(c.line);
        let key = c.word(0);
        match key {
            "interface" => v.interface = c.word(1).to_string(),
            "state" => state = Some((c.word(1).to_string(), c.line)),
            "virtual_router_id" => v.vrid = number(c, at, d),
            "priority" => priority = Some(vrrp_priority(c, &name, at, d)),
            "advert_int" => advert = timer(c, at, d).map(|t| (t, c.line)),
            "version" => version = number(c, at, d).map(|x| (x, c.line)),
            "nopreempt" => nopreempt = Some(c.line),
            "preempt" => {}
            "preempt_delay" => {
                v.preempt_delay = timer(c, at, d);
                preempt_delay_line = Some(c.line);
            }
            "unicast_src_ip" | "mcast_src_ip" => match c.word(1).parse::<IpAddr>() {
                Ok(a) => {
                    v.unicast_src = Some(a);
                    if key == "mcast_src_ip" {
                        v.notes.add("unicast_src", format!("mcast_src_ip ({file}:{}): the adverts' source", c.line));
                    }
                }
                Err(_) => d.warn(at, format!("`{}`: not an address; not converted", c.text())),
            },
            "unicast_peer" => {
                for p in c.children() {
                    v.unicast_peers.push(p.word(0).to_string());
                    if p.words.len() > 1 {
                        d.warn(at.at(p.line), format!("unicast_peer options `{}` not converted", p.words[1..].join(" ")));
                    }
                }
            }
            "virtual_ipaddress" => {
                for a in c.children() {
                    if let Some((text, ip)) = vip_address(a, interface.as_deref(), at.at(a.line), d) {
                        v.addresses.push(text);
                        v.held.push(ip);
                    }
                }
            }
            "authentication" => {
                auth.2 = c.line;
                for a in c.children() {
                    match a.word(0) {
                        "auth_type" => auth.0 = Some(a.word(1).to_string()),
                        "auth_pass" => auth.1 = Some(a.words[1..].join(" ")),
                        _ => d.warn(at.at(a.line), format!("authentication `{}` not converted", a.text())),
                    }
                }
            }
            "track_script" => {
                for t in c.children() {
                    tracked.push(t.word(0).to_string());
                    if ctx.kept_in_group(t, &name, d)
                        && let Some(plan) = track.script(t, d)
                    {
                        v.tracks.push(plan);
                    }
                }
            }
            "track_interface" => {
                for t in c.children() {
                    let mut plan = track.interface(t);
                    if Some(t.word(0)) == interface.as_deref() {
                        d.warn(
                            at.at(t.line),
                            format!("track_interface {}: keepalived reports \"({name}) Ignoring track_interface {} since own interface\" (its own interface going down faults it anyway); converted as a weight-0 interface tracker, which does the same", t.word(0), t.word(0)),
                        );
                        plan.weight = 0;
                        v.tracks.push(plan);
                        continue;
                    }
                    if let Some(g) = ctx.group.filter(|g| !g.tracking_weight)
                        && plan.weight != 0
                    {
                        // keepalived keeps a member's interface, without its weight.
                        d.warn(
                            at.at(t.line),
                            format!("weight {} of tracked interface {} dropped: vrrp_instance {name} is in vrrp_sync_group {} (line {}), and keepalived reports \"({name}) ignoring {} tracked interface weight due to SYNC group\" (it faults the group when the link goes down); weight 0 here too", plan.weight, t.word(0), g.name, g.line, t.word(0)),
                        );
                        plan.weight = 0;
                    }
                    v.tracks.push(plan);
                }
            }
            "garp_master_repeat" => v.garp_repeat = number(c, at, d),
            "garp_master_refresh" => v.garp_refresh = timer(c, at, d),
            "garp_interval" => v.garp_interval = timer(c, at, d),
            "notify" => {
                let cmd = c.words[1..].join(" ");
                v.notify = Some(script_argv(&cmd).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), cmd.clone()]));
                d.warn(
                    at,
                    "`notify`: lb-agent runs it with instance, state, priority appended; keepalived passed \"INSTANCE\", the name, the state and the priority: adapt the script",
                );
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify_deleted" | "notify_master_rx_lower_pri" => d.warn(
                at,
                format!("`{key}` not converted: lb-agent has one `notify` command, given the new state as an argument"),
            ),
            "virtual_ipaddress_excluded" => d.warn(
                at,
                "`virtual_ipaddress_excluded` not converted: lb-agent adds only the instance's `addresses`; add them there (one family per instance) if they must move with it",
            ),
            "garp_master_delay" => d.warn(at, format!("`{}` not converted: the gratuitous ARPs are sent at once (garp_repeat, garp_interval)", c.text())),
            _ => d.warn(at, format!("vrrp_instance `{}` not converted: no equivalent in lb-agent", c.text())),
        }
    }
    if v.interface.is_empty() {
        d.error(
            at,
            format!("vrrp_instance {name} has no interface (keepalived refuses it too)"),
        );
        return None;
    }
    if v.vrid.is_none() {
        d.error(
            at,
            format!("vrrp_instance {name} has no virtual_router_id (keepalived refuses it too)"),
        );
        return None;
    }
    let wants_master =
        state.as_ref().is_some_and(|(s, _)| s == "MASTER") || priority == Some(OWNER_PRIORITY);
    if let (Some(line), true) = (preempt_delay_line, wants_master) {
        d.warn(
            at.at(line),
            format!("`preempt_delay` with `state MASTER` (or priority 255): keepalived reports \"({name}) Warning - preempt delay will not work with initial state MASTER - clearing\"; so does this config"),
        );
        v.preempt_delay = None;
    }
    if let Some(line) = nopreempt {
        if state.as_ref().is_some_and(|(s, _)| s == "MASTER") {
            // keepalived clears it (vrrp_complete_instance).
            d.warn(
                at.at(line),
                format!("`nopreempt` with `state MASTER`: keepalived reports \"({name}) Warning - nopreempt will not work with initial state MASTER - clearing\" and preempts; so does this config"),
            );
        } else {
            v.preempt = Some(false);
        }
    }
    garp_defaults(&mut v, ctx.globals, file);
    // keepalived: no priority set = 255 for state MASTER, else 100.
    if let Some((s, line)) = &state {
        d.warn(
            at.at(*line),
            format!("`state {s}` has no equivalent: lb-agent starts as backup and the highest priority becomes master (with preempt, as keepalived)"),
        );
    }
    v.priority = match priority {
        Some(p) => p,
        None if state.as_ref().is_some_and(|(s, _)| s == "MASTER") => {
            v.notes.add(
                "priority",
                "keepalived's default for state MASTER (address owner)",
            );
            OWNER_PRIORITY
        }
        None => {
            v.notes.add("priority", "keepalived's default");
            KEEPALIVED_PRIORITY
        }
    };
    let v6 = v.held.first().is_some_and(IpAddr::is_ipv6);
    v.version = match (version, global_version) {
        (Some((x, _)), _) => x,
        (None, Some((x, line))) => {
            v.notes.add(
                "version",
                format!("vrrp_version in global_defs ({file}:{line})"),
            );
            x
        }
        (None, None) if v6 => {
            v.notes.add("version", "keepalived uses version 3 for IPv6");
            3
        }
        (None, None) => {
            v.notes.add("version", "keepalived's default");
            KEEPALIVED_VERSION
        }
    };
    if v6 && v.version == 2 {
        d.warn(
            at,
            "version 2 with IPv6 addresses: keepalived switches to version 3, so does this config",
        );
        v.version = 3;
    }
    if let Some((t, line)) = advert {
        v.advert_interval = Some(advert_interval(t, v.version, at.at(line), d));
    }
    match (auth.0.as_deref(), auth.1) {
        (None, None) => {}
        (Some("PASS") | None, Some(pass)) if v.version == 2 => {
            let mut pass = pass;
            if pass.chars().count() > 8 {
                pass = pass.chars().take(8).collect();
                d.warn(at.at(auth.2), "auth_pass is longer than 8 characters: keepalived sends the first 8, so does this config");
            }
            v.auth_pass = Some(pass);
        }
        (Some("PASS") | None, _) => d.warn(
            at.at(auth.2),
            "authentication not converted: only VRRP version 2 has it (keepalived ignores it with version 3 too)",
        ),
        (Some(kind), _) => d.warn(
            at.at(auth.2),
            format!("auth_type {kind} not converted: lb-agent has PASS (v2) only; peers expecting {kind} will reject its adverts"),
        ),
    }
    Some(v)
}

/// `priority N`: 1 to 255; anything else keepalived reports and replaces with 100
/// (its default, even with `state MASTER`), and so does the import.
fn vrrp_priority(c: &Node, instance: &str, at: Loc<'_>, d: &mut Diagnostics) -> i64 {
    match c.word(1).parse::<i64>() {
        Ok(p) if (1..=OWNER_PRIORITY).contains(&p) => p,
        _ => {
            d.warn(
                at,
                format!("`{}`: keepalived reports \"({instance}) Priority not valid! must be between 1 & {OWNER_PRIORITY}. Using default {KEEPALIVED_PRIORITY}\" and uses {KEEPALIVED_PRIORITY}; so does this config", c.text()),
            );
            KEEPALIVED_PRIORITY
        }
    }
}

/// Gratuitous ARP settings the instance does not set: `global_defs`' or
/// keepalived's defaults (lb-agent's own differ).
fn garp_defaults(v: &mut VrrpPlan, g: &Globals, file: &str) {
    let from = |key: &str, line: usize| format!("{key} in global_defs ({file}:{line})");
    if v.garp_repeat.is_none() {
        let (n, note) = match g.garp_repeat {
            Some((n, line)) => (n, from("vrrp_garp_master_repeat", line)),
            None => (GARP_REPEAT, "keepalived's default".into()),
        };
        v.garp_repeat = Some(n);
        v.notes.add("garp_repeat", note);
    }
    if v.garp_refresh.is_none() {
        let (t, note) = match g.garp_refresh {
            Some((t, line)) => (t, from("vrrp_garp_master_refresh", line)),
            None => (GARP_REFRESH, "keepalived's default: no refresh".into()),
        };
        v.garp_refresh = Some(t);
        v.notes.add("garp_refresh", note);
    }
    if v.garp_interval.is_none() {
        let v6 = v.held.first().is_some_and(IpAddr::is_ipv6);
        let (global, key) = if v6 {
            (g.gna_interval, "vrrp_gna_interval")
        } else {
            (g.garp_interval, "vrrp_garp_interval")
        };
        let (t, note) = match global {
            Some((t, line)) => (t, from(key, line)),
            None => (GARP_INTERVAL, "keepalived's default: no gap".into()),
        };
        v.garp_interval = Some(t);
        v.notes.add("garp_interval", note);
    }
}

impl Context<'_> {
    /// Whether a tracked script of a sync group member's own is kept: keepalived
    /// ignores (drops) one with a weight unless the group sets
    /// `sync_group_tracking_weight`, and reports it.
    fn kept_in_group(&self, t: &Node, instance: &str, d: &mut Diagnostics) -> bool {
        let Some(g) = self.group.filter(|g| !g.tracking_weight) else {
            return true;
        };
        let own = if t.word(1) == "weight" {
            t.word(2).parse::<i64>().ok()
        } else {
            None
        };
        let weight = own
            .or_else(|| self.scripts.get(t.word(0)).and_then(|s| s.weight))
            .unwrap_or(0);
        if weight == 0 {
            return true;
        }
        let tracked = t.word(0);
        let keepalived = format!(
            "({instance}) ignoring tracked script {tracked} with weights due to SYNC group"
        );
        d.warn(
            Loc { file: self.file, line: t.line },
            format!("tracked script {tracked} (weight {weight}) not converted: vrrp_instance {instance} is in vrrp_sync_group {} (line {}), and keepalived reports \"{keepalived}\" and does not track it (sync_group_tracking_weight would keep it); neither does this config", g.name, g.line),
        );
        false
    }
}

/// The sync groups' trackers and notify command given to their member instances
/// (after every instance is read: a member with priority 255 clears the weights of
/// the group's scripts, as keepalived does).
fn group_trackers(
    groups: &[SyncGroup],
    instances: &mut [VrrpPlan],
    ctx: &Context<'_>,
    tracked: &mut Vec<String>,
    d: &mut Diagnostics,
) {
    let file = ctx.file;
    for g in groups {
        let owner = instances
            .iter()
            .any(|i| g.members.contains(&i.name) && i.priority == OWNER_PRIORITY);
        let mut reported = false;
        // keepalived faults the whole group when one member faults: each member's
        // weight-0 trackers and its interface's link go to every member.
        let mut faults: Vec<(String, TrackPlan)> = Vec::new();
        for m in instances.iter().filter(|i| g.members.contains(&i.name)) {
            let of = |o: &str| {
                format!(
                    "{o}, of vrrp_instance {} in vrrp_sync_group {}",
                    m.name, g.name
                )
            };
            for t in m.tracks.iter().filter(|t| t.weight == 0) {
                let mut t = t.clone();
                t.origin = of(&t.origin);
                faults.push((m.name.clone(), t));
            }
            faults.push((
                m.name.clone(),
                TrackPlan {
                    origin: of(&format!("{file}:{} interface {}", m.line, m.interface)),
                    kind: "interface",
                    name: Some(m.interface.clone()),
                    ..TrackPlan::default()
                },
            ));
        }
        for v in instances.iter_mut().filter(|i| g.members.contains(&i.name)) {
            let origin =
                |o: &str| format!("{o}, of vrrp_sync_group {} ({file}:{})", g.name, g.line);
            for t in &g.scripts {
                tracked.push(t.word(0).to_string());
                let Some(mut plan) = ctx.script(t, d) else {
                    continue;
                };
                plan.origin = origin(&plan.origin);
                if owner && plan.weight != 0 {
                    if !reported {
                        d.warn(
                            Loc { file, line: t.line },
                            format!("weight {} of the group's track_script {} cleared: keepalived reports \"({}) Cannot have weighted track script '{}' with member having priority 255 - clearing weight\"; so does this config", plan.weight, t.word(0), g.name, t.word(0)),
                        );
                    }
                    plan.weight = 0;
                }
                v.tracks.push(plan);
            }
            for t in &g.interfaces {
                let mut plan = ctx.interface(t);
                plan.origin = origin(&plan.origin);
                v.tracks.push(plan);
            }
            reported = true;
            if v.notify.is_none() {
                v.notify = g.notify.clone();
            }
            for t in &faults {
                if t.0 != v.name && !v.tracks.iter().any(|x| same_tracker(x, &t.1)) {
                    v.tracks.push(t.1.clone());
                }
            }
            v.comments.push(format!(
                "in vrrp_sync_group {} ({file}:{}): lb-agent's instances change state on their own; the group's trackers, the other members' weight-0 trackers and their interfaces are this instance's too, so a fault of one faults all",
                g.name, g.line
            ));
        }
    }
}

/// The same check (kind and what it watches), whatever its origin.
fn same_tracker(a: &TrackPlan, b: &TrackPlan) -> bool {
    a.kind == b.kind && a.command == b.command && a.name == b.name && a.weight == b.weight
}

/// advert_int made valid for the version: v2 whole seconds, v3 centiseconds.
fn advert_interval(t: Duration, version: i64, at: Loc<'_>, d: &mut Diagnostics) -> Duration {
    let ms = t.as_millis();
    let fixed = if version == 2 {
        Duration::from_secs(((ms + 500) / 1000).max(1) as u64)
    } else {
        Duration::from_millis((((ms + 5) / 10) * 10).max(10) as u64)
    };
    if fixed != t {
        d.warn(
            at,
            format!(
                "advert_int {}s is not a valid version {version} interval: written as {}",
                t.as_secs_f64(),
                lb_config::duration::format(fixed)
            ),
        );
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived;

    fn run(text: &str) -> (Keepalived, Diagnostics) {
        let mut d = Diagnostics::default();
        let nodes = keepalived::parse(text, "k.conf", &mut d);
        let k = read(&nodes, "k.conf", &mut d);
        (k, d)
    }

    #[test]
    fn a_kubeadm_instance() {
        let (k, d) = run(
            "global_defs {\n  router_id LVS_DEVEL\n}\nvrrp_script check_apiserver {\n  script \"/etc/keepalived/check_apiserver.sh\"\n  interval 3\n  weight -2\n  fall 10\n  rise 2\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 101\n  authentication {\n    auth_type PASS\n    auth_pass 42\n  }\n  virtual_ipaddress {\n    192.168.1.100\n  }\n  track_script {\n    check_apiserver\n  }\n}\n",
        );
        let (warnings, errors) = d.split();
        assert!(errors.is_empty(), "{errors:#?}");
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [2, 12], "{warnings:#?}");
        let v = &k.instances[0];
        assert_eq!((v.vrid, v.priority, v.version), (Some(51), 101, 2));
        assert_eq!(v.auth_pass.as_deref(), Some("42"));
        assert_eq!(v.addresses, ["192.168.1.100/32"]);
        let t = &v.tracks[0];
        assert_eq!(t.kind, "script");
        assert_eq!(
            t.command.as_deref(),
            Some(&["/etc/keepalived/check_apiserver.sh".to_string()][..])
        );
        assert_eq!((t.weight, t.rise, t.fall), (-2, Some(2), Some(10)));
        assert_eq!(t.interval, Some(Duration::from_secs(3)));
    }

    #[test]
    fn keepalived_defaults_and_fixes() {
        let (k, d) = run(
            "vrrp_script chk_haproxy {\n  script \"killall -0 haproxy\"\n}\nvrrp_instance V6 {\n  interface eth1\n  state MASTER\n  virtual_router_id 7\n  advert_int 0.25\n  nopreempt\n  authentication {\n    auth_type PASS\n    auth_pass averylongpassword\n  }\n  virtual_ipaddress {\n    2001:db8::10/64 dev eth1 label eth1:vip\n  }\n  track_script {\n    chk_haproxy weight 20\n  }\n}\n",
        );
        let v = &k.instances[0];
        assert_eq!(v.priority, 255);
        assert_eq!(v.version, 3);
        assert_eq!(
            v.preempt, None,
            "keepalived clears nopreempt with state MASTER"
        );
        assert_eq!(v.garp_repeat, Some(5), "keepalived's default");
        assert_eq!(v.garp_refresh, Some(Duration::ZERO));
        assert_eq!(v.advert_interval, Some(Duration::from_millis(250)));
        assert_eq!(v.auth_pass, None);
        assert_eq!(v.tracks[0].kind, "dataplane");
        assert_eq!(v.tracks[0].weight, 20);
        let (warnings, _) = d.split();
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|w| w
                    .starts_with("k.conf:15: warning: virtual_ipaddress options `label eth1:vip`")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|w| w.starts_with("k.conf:10: warning: authentication not converted")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|w| w.starts_with("k.conf:1: warning: vrrp_script chk_haproxy")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|w| w.starts_with(
                "k.conf:9: warning: `nopreempt` with `state MASTER`: keepalived reports"
            )),
            "{text:#?}"
        );
    }

    #[test]
    fn a_bad_priority_is_keepalived_s_default_even_for_state_master() {
        for p in ["False", "0", "256"] {
            let (k, d) = run(&format!(
                "vrrp_instance A {{\n  state MASTER\n  interface eth0\n  virtual_router_id 9\n  priority {p}\n  virtual_ipaddress {{\n    10.0.0.9/24\n  }}\n}}\n"
            ));
            assert_eq!(k.instances[0].priority, 100, "priority {p}");
            let (warnings, _) = d.split();
            assert!(
                warnings
                    .iter()
                    .any(|w| w.line == 5 && w.message.contains("Using default 100")),
                "{warnings:#?}"
            );
        }
    }

    #[test]
    fn global_garp_settings_are_every_instance_s_defaults() {
        let (k, _) = run(
            "global_defs {\n  vrrp_garp_master_repeat 3\n  vrrp_garp_master_refresh 60\n  vrrp_garp_interval 0.001\n}\nvrrp_instance A {\n  interface eth0\n  virtual_router_id 9\n  virtual_ipaddress {\n    10.0.0.9/24\n  }\n}\nvrrp_instance B {\n  interface eth0\n  virtual_router_id 10\n  garp_master_repeat 2\n  virtual_ipaddress {\n    10.0.0.10/24\n  }\n}\n",
        );
        let a = &k.instances[0];
        assert_eq!(a.garp_repeat, Some(3));
        assert_eq!(a.garp_refresh, Some(Duration::from_secs(60)));
        assert_eq!(a.garp_interval, Some(Duration::from_millis(1)));
        assert_eq!(
            k.instances[1].garp_repeat,
            Some(2),
            "the instance's own wins"
        );
    }

    #[test]
    fn a_sync_group_tracks_every_member_and_drops_member_weights() {
        let (k, d) = run(
            "vrrp_script chk_svc {\n  script \"/usr/local/bin/chk_svc\"\n  weight 20\n}\nvrrp_script chk_own {\n  script \"/usr/local/bin/chk_own\"\n}\nvrrp_sync_group VG_1 {\n  group {\n    VI_EXT\n    VI_INT\n  }\n  track_script {\n    chk_svc\n  }\n  notify_master \"/etc/keepalived/master.sh\"\n}\nvrrp_instance VI_EXT {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    10.0.0.9/24\n  }\n  track_script {\n    chk_own weight 10\n  }\n}\nvrrp_instance VI_INT {\n  interface eth1\n  virtual_router_id 2\n  virtual_ipaddress {\n    10.1.0.9/24\n  }\n}\n",
        );
        let (warnings, errors) = d.split();
        assert!(errors.is_empty(), "{errors:#?}");
        let ext = &k.instances[0];
        let int = &k.instances[1];
        let names = |v: &VrrpPlan| -> Vec<(String, i64)> {
            v.tracks
                .iter()
                .map(|t| {
                    let what = match (&t.command, &t.name) {
                        (Some(c), _) => c[0].clone(),
                        (None, Some(n)) => format!("interface {n}"),
                        (None, None) => t.kind.to_string(),
                    };
                    (what, t.weight)
                })
                .collect()
        };
        let svc = ("/usr/local/bin/chk_svc".to_string(), 20);
        let link = |i: &str| (format!("interface {i}"), 0);
        assert_eq!(
            names(ext),
            [svc.clone(), link("eth1")],
            "the member's weighted script is dropped; the other member's link faults it"
        );
        assert_eq!(
            names(int),
            [svc, link("eth0")],
            "the group's script keeps its weight"
        );
        assert!(
            !warnings
                .iter()
                .any(|w| w.message.contains("not tracked by any")),
            "the group's script is tracked: {warnings:#?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.line == 16 && w.message.contains("notify_master")),
            "{warnings:#?}"
        );
        assert!(
            warnings.iter().any(|w| w.line == 25
                && w.message.contains(
                    "(VI_EXT) ignoring tracked script chk_own with weights due to SYNC group"
                )),
            "{warnings:#?}"
        );
    }

    #[test]
    fn v2_passwords_are_cut_to_8_and_intervals_to_seconds() {
        let (k, d) = run(
            "vrrp_instance A {\n  interface eth0\n  virtual_router_id 9\n  advert_int 1.5\n  authentication {\n    auth_pass 0123456789\n  }\n  virtual_ipaddress {\n    10.0.0.9/24\n  }\n}\n",
        );
        let v = &k.instances[0];
        assert_eq!(v.auth_pass.as_deref(), Some("01234567"));
        assert_eq!(v.advert_interval, Some(Duration::from_secs(2)));
        assert_eq!(v.priority, 100);
        assert_eq!(d.warning_count(), 2);
    }
}
