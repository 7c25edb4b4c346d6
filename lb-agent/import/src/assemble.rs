//! The pieces joined into one config: a [[vip]] per bind, its address when the
//! bind has none (the keepalived virtual address, or --vip), its SNAT address
//! (--snat-address, or the keepalived unicast_src_ip of its family), the
//! interfaces (--interface, or the VRRP instances'), the stats listener.

use std::{collections::HashSet, net::IpAddr};

use super::{
    Options,
    model::{AgentPlan, Plan, Service, VipPlan, VrrpPlan},
    proxy::{Bind, BindAddr},
    routed,
    stats::Stats,
    warning::{Diagnostics, Loc},
};

/// An address a bind without one may mean, and where it came from.
struct Candidate {
    addr: IpAddr,
    origin: String,
    from_keepalived: bool,
}

pub fn plan(
    services: Vec<Service>,
    stats: Option<Stats>,
    instances: Vec<VrrpPlan>,
    keepalived_given: bool,
    haproxy_file: &str,
    opts: &Options,
    d: &mut Diagnostics,
) -> Plan {
    let mut plan = Plan {
        agent: agent(&instances, stats, keepalived_given, haproxy_file, opts, d),
        ..Plan::default()
    };
    let candidates: Vec<Candidate> = if opts.vips.is_empty() {
        let mut seen = HashSet::new();
        instances
            .iter()
            .flat_map(|i| i.held.iter().map(move |a| (a, i)))
            .filter(|(a, _)| seen.insert(**a))
            .map(|(a, i)| Candidate {
                addr: *a,
                origin: format!(
                    "the keepalived virtual address of vrrp_instance {} ({}:{})",
                    i.name, i.file, i.line
                ),
                from_keepalived: true,
            })
            .collect()
    } else {
        opts.vips
            .iter()
            .map(|a| Candidate {
                addr: *a,
                origin: "--vip".into(),
                from_keepalived: false,
            })
            .collect()
    };
    let mut names: HashSet<String> = HashSet::new();
    let mut missing_snat: Vec<(bool, String)> = Vec::new();
    for s in services {
        // Each bind's addresses: (bind, address, note); a wildcard bind may give one
        // per family, and two binds may give the same address (`:::6443` and
        // `0.0.0.0:6443`): one [[vip]] for it.
        let mut resolved: Vec<(&Bind, IpAddr, Option<String>)> = Vec::new();
        for b in &s.binds {
            let at = Loc {
                file: &s.file,
                line: b.line,
            };
            for (address, note) in bind_addresses(b, &candidates, keepalived_given, opts, at, d) {
                if !resolved
                    .iter()
                    .any(|(o, a, _)| *a == address && o.port == b.port)
                {
                    resolved.push((b, address, note));
                }
            }
        }
        let ports: HashSet<u16> = resolved.iter().map(|(b, _, _)| b.port).collect();
        let several = resolved.len() > 1;
        for (i, (b, address, note)) in resolved.iter().enumerate() {
            let address = *address;
            let mut notes = s.notes.clone();
            if let Some(n) = note {
                notes.add("address", n.clone());
            }
            let base = if !several {
                s.name.clone()
            } else if ports.len() == resolved.len() {
                format!("{}-{}", s.name, b.port)
            } else if resolved.len() == 2 && resolved[0].1.is_ipv6() != resolved[1].1.is_ipv6() {
                format!("{}-{}", s.name, if address.is_ipv6() { "v6" } else { "v4" })
            } else {
                format!("{}-{}", s.name, i + 1)
            };
            let mut name = base.clone();
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            let mut comments = s.comments.clone();
            if several {
                comments.push(format!(
                    "bind {} ({}:{}), one [[vip]] per address and port",
                    b.text, s.file, b.line
                ));
            }
            let node_local = address.is_loopback();
            if node_local {
                notes.add(
                    "address",
                    "a loopback address: a node-local VIP, served to this node's own connects by the socket programs ([agent] socket_lb)",
                );
            }
            let snat_address = if s.forwarding == "nat" && !node_local && s.routing.is_none() {
                let snat = snat(address, &instances, opts);
                match snat {
                    Some((a, note)) => {
                        notes.add("snat_address", note);
                        Some(a)
                    }
                    None => {
                        missing_snat
                            .push((address.is_ipv6(), format!("{name} ({}:{})", s.file, s.line)));
                        None
                    }
                }
            } else {
                None
            };
            let own = own_addresses(&instances, opts, snat_address);
            let backends = s
                .backends
                .iter()
                .cloned()
                .map(|mut be| {
                    if own.contains(&be.address) {
                        be.notes.add(
                            "address",
                            "this node's own address: served through the local stack (a local backend)",
                        );
                    }
                    be
                })
                .collect();
            plan.vips.push(VipPlan {
                comments,
                name,
                address,
                port: b.port,
                protocol: s.protocol,
                forwarding: s.forwarding,
                snat_address,
                all_backups: s.all_backups,
                notes,
                check: s.check.clone(),
                backends,
                routing: s.routing.clone().map(|mut r| {
                    for pool in &mut r.pools {
                        routed::with_ports(&mut pool.backends, b.port);
                    }
                    r
                }),
            });
        }
    }
    for v6 in [false, true] {
        let vips: Vec<&str> = missing_snat
            .iter()
            .filter(|(f, _)| *f == v6)
            .map(|(_, n)| n.as_str())
            .collect();
        if !vips.is_empty() {
            let fam = if v6 { "IPv6" } else { "IPv4" };
            d.error_global(format!(
                "forwarding = \"nat\" needs snat_address, this node's {fam} address the backends reply to, for {}: no keepalived unicast_src_ip of that family gives it; pass --snat-address ADDR",
                vips.join(", ")
            ));
        }
    }
    plan.vrrp = instances;
    plan
}

/// The addresses a bind stands for, each with a note when it was not written in
/// the bind: a wildcard bind means the virtual address of each family it listens on
/// (keepalived's, or --vip); more than one of a family is ambiguous (an error).
fn bind_addresses(
    b: &Bind,
    candidates: &[Candidate],
    keepalived_given: bool,
    opts: &Options,
    at: Loc<'_>,
    d: &mut Diagnostics,
) -> Vec<(IpAddr, Option<String>)> {
    let families = match &b.addr {
        BindAddr::Ip(a) => return vec![(*a, None)],
        BindAddr::Any(f) => *f,
    };
    let listens = match (families.v4, families.v6) {
        (true, true) => "IPv4 and IPv6",
        (false, true) => "IPv6",
        _ => "IPv4",
    };
    let mut out = Vec::new();
    let mut ambiguous = Vec::new();
    for v6 in [false, true] {
        if !(if v6 { families.v6 } else { families.v4 }) {
            continue;
        }
        let fits: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.addr.is_ipv6() == v6)
            .collect();
        match fits.as_slice() {
            [] => {}
            [c] => {
                if c.from_keepalived {
                    d.warn(at, format!("bind {} has no address (HAProxy listens on every {listens} address): the VIP is {}, {}", b.text, c.addr, c.origin));
                }
                out.push((
                    c.addr,
                    Some(format!(
                        "bind {} ({listens}) has no address: {}",
                        b.text, c.origin
                    )),
                ));
            }
            list => ambiguous.extend(list.iter().map(|c| c.addr.to_string())),
        }
    }
    if !ambiguous.is_empty() {
        d.error(
            at,
            format!("bind {} has no address and it could be any of {}: pass --vip ADDR (the address clients connect to)", b.text, ambiguous.join(", ")),
        );
        return Vec::new();
    }
    if out.is_empty() {
        let what = if keepalived_given || !opts.vips.is_empty() {
            format!("no virtual address of its families ({listens}) is known")
        } else {
            "no keepalived config was given".to_string()
        };
        d.error(
            at,
            format!("bind {} has no address and {what}: pass --vip ADDR (the address clients connect to)", b.text),
        );
    }
    out
}

/// This node's own addresses as the inputs tell them (unicast_src_ip, the SNAT
/// address): a backend at one of them is served through the local stack.
fn own_addresses(instances: &[VrrpPlan], opts: &Options, snat: Option<IpAddr>) -> Vec<IpAddr> {
    instances
        .iter()
        .filter_map(|i| i.unicast_src)
        .chain(opts.snat_addresses.iter().copied())
        .chain(snat)
        .collect()
}

/// The SNAT address for a VIP and a note saying where it came from.
fn snat(vip: IpAddr, instances: &[VrrpPlan], opts: &Options) -> Option<(IpAddr, String)> {
    if let Some(a) = opts
        .snat_addresses
        .iter()
        .find(|a| a.is_ipv4() == vip.is_ipv4())
    {
        return Some((*a, "--snat-address".into()));
    }
    let of_family = |i: &&VrrpPlan| i.unicast_src.is_some_and(|s| s.is_ipv4() == vip.is_ipv4());
    let holder = instances
        .iter()
        .filter(of_family)
        .find(|i| i.held.contains(&vip));
    let chosen = holder.or_else(|| {
        let mut srcs = instances.iter().filter(of_family);
        let first = srcs.next()?;
        srcs.all(|i| i.unicast_src == first.unicast_src)
            .then_some(first)
    })?;
    let src = chosen.unicast_src?;
    Some((
        src,
        format!(
            "unicast_src_ip of vrrp_instance {} ({}:{}): this node's address, it differs per node",
            chosen.name, chosen.file, chosen.line
        ),
    ))
}

fn agent(
    instances: &[VrrpPlan],
    stats: Option<Stats>,
    keepalived_given: bool,
    haproxy_file: &str,
    opts: &Options,
    d: &mut Diagnostics,
) -> AgentPlan {
    let mut a = AgentPlan::default();
    if opts.interfaces.is_empty() {
        let mut origins = Vec::new();
        for i in instances {
            if !a.interfaces.contains(&i.interface) {
                a.interfaces.push(i.interface.clone());
                origins.push(format!("{}:{} vrrp_instance {}", i.file, i.line, i.name));
            }
        }
        if a.interfaces.is_empty() {
            let why = if keepalived_given {
                "the keepalived config has no vrrp_instance with an interface"
            } else {
                "HAProxy does not say which interface clients arrive on"
            };
            d.error_global(format!("[agent] interfaces (where the XDP program attaches) is unknown: {why}; pass --interface IF"));
        } else {
            a.notes
                .add("interfaces", format!("from {}", origins.join(", ")));
        }
    } else {
        a.interfaces = opts.interfaces.clone();
        a.notes.add("interfaces", "--interface");
    }
    if let Some(s) = stats {
        if let Some((listen, line)) = s.listen {
            a.api_listen = Some(listen);
            a.notes.add(
                "api_listen",
                format!(
                    "{} bind ({haproxy_file}:{line}): status page, /metrics, /ready, /healthz",
                    s.section
                ),
            );
        }
        if let Some((user, pass, line)) = s.auth {
            a.stats_auth = Some((user, pass));
            a.notes
                .add("stats_auth", format!("stats auth ({haproxy_file}:{line})"));
        }
    }
    a
}
