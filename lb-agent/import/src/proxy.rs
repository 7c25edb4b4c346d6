//! HAProxy sections read into proxies: `defaults` pass their settings to the
//! proxies after them, `frontend`/`listen` give binds and a backend, `backend`/
//! `listen` give servers and checks. A frontend's `acl`s and conditional
//! `use_backend` rules are kept for `routed.rs` (a routed VIP), with the warnings
//! they get if it is not one. Sections in mode http are read with their warnings
//! held: they apply if the section routes by Host (or is a pool of one that does),
//! otherwise the section is skipped whole. A stats listener becomes `[agent]`
//! settings, every other directive is warned about.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use super::{
    check_rules::{self, CheckOption, CheckRules},
    haproxy::{Line, Section, SectionKind, time},
    routing::{self, Acl, Rule},
    server::{self, AddressProblem, Server, ServerOpts},
    stats::{self, Stats},
    warning::{Diagnostics, Loc},
};

/// What a `defaults` section passes on (and a proxy starts from).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `mode` and its line.
    pub mode: Option<(String, usize)>,
    /// `balance` algorithm and its line.
    pub balance: Option<(String, usize)>,
    pub checks: CheckRules,
    pub default_server: ServerOpts,
    /// `timeout check` and its line.
    pub timeout_check: Option<(Duration, usize)>,
    /// `timeout connect` and its line (a check's connect timeout with `timeout check`).
    pub timeout_connect: Option<(Duration, usize)>,
    /// `option allbackups` and its line.
    pub all_backups: Option<usize>,
    /// `default_backend` and its line.
    pub default_backend: Option<(String, usize)>,
    /// `timeout client`, `server`, `tunnel`, `http-request` and their lines (a
    /// routed VIP's idle and inspect timeouts).
    pub timeout_client: Option<(Duration, usize)>,
    pub timeout_server: Option<(Duration, usize)>,
    pub timeout_tunnel: Option<(Duration, usize)>,
    pub timeout_http_request: Option<(Duration, usize)>,
    /// `tcp-request inspect-delay` and its line.
    pub inspect_delay: Option<(Duration, usize)>,
    /// `maxconn` (of a frontend) and its line.
    pub maxconn: Option<(i64, usize)>,
}

/// The address families a wildcard bind listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub const V4: Families = Families {
        v4: true,
        v6: false,
    };
    pub const V6: Families = Families {
        v4: false,
        v6: true,
    };
    pub const BOTH: Families = Families { v4: true, v6: true };
}

/// A listening address of a frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAddr {
    Ip(IpAddr),
    /// Every address of the families: `*:443`, `:443` and `0.0.0.0:443` are IPv4
    /// only; `:::443` is IPv6 and, with Linux's default (`net.ipv6.bindv6only = 0`)
    /// or `v4v6`, IPv4 too; `v6only` makes it IPv6 only.
    Any(Families),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub line: usize,
    /// The address as written, for messages.
    pub text: String,
    pub addr: BindAddr,
    pub port: u16,
}

/// A section in a mode other than tcp (http).
#[derive(Clone, Debug)]
pub struct OtherMode {
    pub mode: String,
    /// The `mode` line.
    pub line: usize,
    pub end_line: usize,
    /// The section's warnings, held until it is known to be converted.
    pub held: Diagnostics,
}

/// A frontend, backend or listen section in mode tcp (or http, see `OtherMode`).
#[derive(Clone, Debug)]
pub struct Proxy {
    pub kind: SectionKind,
    pub name: String,
    pub line: usize,
    pub settings: Settings,
    pub binds: Vec<Bind>,
    /// An unconditional `use_backend` (it wins over default_backend) and its line.
    pub use_backend: Option<(String, usize)>,
    pub servers: Vec<Server>,
    /// Lines of `server` entries dropped for errors (so the section is not
    /// reported as having no servers).
    pub dropped_servers: usize,
    pub acls: Vec<Acl>,
    /// Conditional `use_backend` rules, in order.
    pub rules: Vec<Rule>,
    /// Lines of `tcp-request content accept if` a ClientHello (or HTTP) arrived.
    pub hello_accepts: Vec<usize>,
    /// The warnings of the lines above if the frontend is not a routed VIP.
    pub pending: Vec<(usize, String)>,
    /// Set when the section is in mode http.
    pub other_mode: Option<OtherMode>,
}

impl Proxy {
    pub fn title(&self) -> String {
        format!("{} {}", self.kind.word(), self.name)
    }

    /// The backend its connections go to: use_backend, default_backend, or itself
    /// (a listen with servers).
    pub fn target(&self) -> Option<(String, usize)> {
        self.use_backend
            .clone()
            .or_else(|| self.settings.default_backend.clone())
    }
}

/// Everything read from haproxy.cfg.
#[derive(Debug)]
pub struct Haproxy {
    pub proxies: Vec<Proxy>,
    pub stats: Option<Stats>,
    /// Names of backends/listens skipped (disabled, or in a mode neither tcp nor
    /// http): a frontend using one says so.
    pub skipped: HashMap<String, String>,
    /// `ssl-server-verify` of `global`: whether servers' TLS is verified unless their
    /// `verify` says (HAProxy's default: required).
    pub server_verify: bool,
}

impl Default for Haproxy {
    fn default() -> Self {
        Self {
            proxies: Vec::new(),
            stats: None,
            skipped: HashMap::new(),
            server_verify: true,
        }
    }
}

/// Reads every section.
pub fn read(sections: &[Section], file: &str, d: &mut Diagnostics) -> Haproxy {
    let mut out = Haproxy::default();
    let mut current = Settings::default();
    let mut named: HashMap<String, Settings> = HashMap::new();
    for s in sections {
        let at = Loc { file, line: s.line };
        let base = match &s.from {
            Some(name) => {
                match named.get(name) {
                    Some(b) => b.clone(),
                    None => {
                        d.warn(at, format!("`from {name}`: no defaults section of that name before it; using none"));
                        Settings::default()
                    }
                }
            }
            None => current.clone(),
        };
        match &s.kind {
            SectionKind::Global => {
                stats::global(s, file, d);
                if let Some(l) = s
                    .lines
                    .iter()
                    .rev()
                    .find(|l| l.word(0) == "ssl-server-verify")
                {
                    out.server_verify = l.word(1) != "none";
                }
            }
            SectionKind::Defaults => {
                let mut settings = if s.from.is_some() {
                    base
                } else {
                    Settings::default()
                };
                for l in &s.lines {
                    directive(
                        &mut Role::Defaults(&mut settings),
                        s.line,
                        l,
                        at.at(l.number),
                        d,
                    );
                }
                if let Some(n) = &s.name {
                    named.insert(n.clone(), settings.clone());
                }
                current = settings;
            }
            SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen => {
                proxy(s, base, file, d, &mut out);
            }
            SectionKind::Other(kind) => d.warn(
                at,
                format!(
                    "section `{}` (lines {}-{}) not converted: lb-agent has no {kind} sections",
                    s.title(),
                    s.line,
                    s.end_line
                ),
            ),
        }
    }
    out
}

fn proxy(s: &Section, base: Settings, file: &str, d: &mut Diagnostics, out: &mut Haproxy) {
    let at = Loc { file, line: s.line };
    let name = s.name.clone().unwrap_or_default();
    let own_mode = s
        .lines
        .iter()
        .rev()
        .find(|l| l.word(0) == "mode")
        .map(|l| (l.word(1).to_string(), l.number));
    let mode = own_mode.or_else(|| base.mode.clone());
    let is_stats = s.kind != SectionKind::Backend && s.lines.iter().any(stats::is_stats_directive);
    if is_stats {
        stats::listener(s, file, d, &mut out.stats);
        return;
    }
    if let Some((m, line)) = &mode
        && m != "tcp"
        && m != "http"
    {
        d.warn(
            at,
            format!(
                "{} (lines {}-{}) is in mode {m} (line {line}): skipped whole, L7 (HTTP) routing isn't supported; lb-agent forwards TCP connections (L4) to one set of backends per VIP",
                s.title(),
                s.line,
                s.end_line
            ),
        );
        out.skipped
            .insert(name, format!("it is in mode {m} ({file}:{line})"));
        return;
    }
    if let Some(l) = s.lines.iter().find(|l| l.word(0) == "disabled") {
        d.warn(
            at,
            format!(
                "{} is disabled (line {}): skipped whole",
                s.title(),
                l.number
            ),
        );
        out.skipped
            .insert(name, format!("it is disabled ({file}:{})", l.number));
        return;
    }
    let mut other_mode = mode
        .as_ref()
        .filter(|(m, _)| m == "http")
        .map(|(m, line)| OtherMode {
            mode: m.clone(),
            line: *line,
            end_line: s.end_line,
            held: Diagnostics::default(),
        });
    let mut p = Proxy {
        kind: s.kind.clone(),
        name,
        line: s.line,
        settings: Settings { mode, ..base },
        binds: Vec::new(),
        use_backend: None,
        servers: Vec::new(),
        dropped_servers: 0,
        acls: Vec::new(),
        rules: Vec::new(),
        hello_accepts: Vec::new(),
        pending: Vec::new(),
        other_mode: None,
    };
    let d = match other_mode.as_mut() {
        Some(o) => &mut o.held,
        None => d,
    };
    for l in &s.lines {
        directive(&mut Role::Proxy(&mut p), s.line, l, at.at(l.number), d);
    }
    p.other_mode = other_mode;
    out.proxies.push(p);
}

/// Where a directive lands.
enum Role<'a> {
    Defaults(&'a mut Settings),
    Proxy(&'a mut Proxy),
}

impl Role<'_> {
    fn settings(&mut self) -> &mut Settings {
        match self {
            Role::Defaults(s) => s,
            Role::Proxy(p) => &mut p.settings,
        }
    }

    fn kind(&self) -> SectionKind {
        match self {
            Role::Defaults(_) => SectionKind::Defaults,
            Role::Proxy(p) => p.kind.clone(),
        }
    }

    fn frontend_side(&self) -> bool {
        matches!(
            self.kind(),
            SectionKind::Frontend | SectionKind::Listen | SectionKind::Defaults
        )
    }

    fn backend_side(&self) -> bool {
        matches!(
            self.kind(),
            SectionKind::Backend | SectionKind::Listen | SectionKind::Defaults
        )
    }
}

/// Logging and other cosmetic directives: (group, why), one warning per group.
pub(super) fn cosmetic(l: &Line) -> Option<(String, &'static str)> {
    let log = "lb-agent logs to stderr/journald; per-connection logs have no equivalent (see `lb-agent flows`, /metrics)";
    match (l.word(0), l.word(1)) {
        (
            "log" | "log-format" | "log-format-sd" | "error-log-format" | "log-tag" | "log-steps",
            _,
        ) => Some((l.word(0).to_string(), log)),
        (
            "option" | "no",
            "tcplog"
            | "httplog"
            | "httpslog"
            | "dontlognull"
            | "dontlog-normal"
            | "log-health-checks"
            | "log-separate-errors"
            | "logasap",
        ) => Some((format!("option {}", l.word(1)), log)),
        ("description", _) => Some(("description".into(), "descriptions are not converted")),
        _ => None,
    }
}

fn directive(role: &mut Role<'_>, section: usize, l: &Line, at: Loc<'_>, d: &mut Diagnostics) {
    if let Some((group, why)) = cosmetic(l) {
        d.warn_grouped(&group, at, format!("`{group}` not converted: {why}"));
        return;
    }
    let text = l.text();
    let kind = role.kind();
    let nowhere =
        |d: &mut Diagnostics, what: &str| d.warn(at, format!("`{text}` not converted: {what}"));
    match l.word(0) {
        // Read before the lines, from the section: nothing more to do.
        "mode" => {
            if let Role::Defaults(s) = role {
                s.mode = Some((l.word(1).to_string(), l.number));
            }
        }
        "balance" if role.backend_side() => {
            role.settings().balance = Some((l.words[1..].join(" "), l.number));
            balance(l, at, d);
        }
        "timeout" => {
            let Some(value) = time(l.word(2)) else {
                d.error(at, format!("`{text}`: `{}` is not an HAProxy time (HAProxy refuses it)", l.word(2)));
                return;
            };
            if l.word(1) == "check" && role.backend_side() {
                // 0 means unset in HAProxy: `inter` then.
                role.settings().timeout_check = (!value.is_zero()).then_some((value, l.number));
            } else {
                let set = (!value.is_zero()).then_some((value, l.number));
                let routed = match l.word(1) {
                    "connect" if role.backend_side() => {
                        role.settings().timeout_connect = set;
                        "; a routed VIP's connect_timeout takes it"
                    }
                    side @ ("client" | "server") => {
                        let s = role.settings();
                        *if side == "client" {
                            &mut s.timeout_client
                        } else {
                            &mut s.timeout_server
                        } = set;
                        "; a routed VIP's idle_timeout takes `timeout tunnel`, or else the longer of `timeout client` and `timeout server`"
                    }
                    "tunnel" => {
                        role.settings().timeout_tunnel = set;
                        "; a routed VIP's idle_timeout takes it"
                    }
                    "http-request" => {
                        role.settings().timeout_http_request = set;
                        "; a routed VIP by Host takes it as inspect_timeout"
                    }
                    _ => "",
                };
                d.warn(
                    at,
                    format!("`{text}` not converted for the data plane: lb-agent never closes a connection; its flows' idle lifetimes go by TCP state ([agent.timeouts]: established 3 h, closed 30-120 s){routed}"),
                );
            }
        }
        "option" if role.backend_side() => match l.word(1) {
            "httpchk" => {
                let r = check_rules::option_httpchk(&l.words[2..], at, d);
                let checks = &mut role.settings().checks;
                checks.set_option(CheckOption::HttpChk(r), section, at, d);
            }
            "tcp-check" => {
                let checks = &mut role.settings().checks;
                checks.set_option(CheckOption::TcpCheck, section, at, d);
            }
            "ssl-hello-chk" => {
                let checks = &mut role.settings().checks;
                checks.set_option(CheckOption::SslHello, section, at, d);
            }
            "mysql-check" | "pgsql-check" | "redis-check" | "smtpchk" | "ldap-check"
            | "spop-check" | "external-check" | "lb-agent-chk" => {
                let checks = &mut role.settings().checks;
                check_rules::protocol_check(l.word(1), checks, section, at, d);
            }
            "allbackups" => role.settings().all_backups = Some(l.number),
            _ => option(l, &text, at, d),
        },
        "option" => option(l, &text, at, d),
        "http-check" if role.backend_side() => {
            check_rules::http_check(l, &mut role.settings().checks, at, d);
        }
        "tcp-check" if role.backend_side() => {
            check_rules::tcp_check(l, &mut role.settings().checks, at, d);
        }
        "default-server" if role.backend_side() => {
            let own = server::options(l, 1, at, d);
            let s = role.settings();
            s.default_server = s.default_server.overlaid(&own);
        }
        "server" if matches!(kind, SectionKind::Backend | SectionKind::Listen) => {
            if let Role::Proxy(p) = role {
                server_line(p, l, at, d);
            }
        }
        "server-template" => nowhere(d, "server templates need DNS resolution; list the servers by address"),
        "bind" if matches!(kind, SectionKind::Frontend | SectionKind::Listen) => {
            if let Role::Proxy(p) = role {
                bind(p, l, at, d);
            }
        }
        "default_backend" if role.frontend_side() => {
            role.settings().default_backend = Some((l.word(1).to_string(), l.number));
        }
        "use_backend" if role.frontend_side() => {
            if l.words.len() > 2 {
                let why = if text.contains("ssl_sni") {
                    "SNI routing needs the TLS ClientHello, and the data plane does not read payloads"
                } else {
                    "a condition needs the connection inspected, and the data plane does not"
                };
                let message = format!("`{text}` not converted: {why}; lb-agent sends every connection of a VIP to one backend set (here the default_backend)");
                match role {
                    Role::Proxy(p) if matches!(l.word(2), "if" | "unless") => {
                        p.rules.push(Rule {
                            backend: l.word(1).to_string(),
                            line: l.number,
                            text: text.clone(),
                            unless: l.word(2) == "unless",
                            condition: l.words[3..].to_vec(),
                        });
                        p.pending.push((l.number, message));
                    }
                    _ => d.warn(at, message),
                }
            } else if let Role::Proxy(p) = role {
                if p.use_backend.is_none() {
                    p.use_backend = Some((l.word(1).to_string(), l.number));
                } else {
                    d.warn(at, format!("`{text}`: an earlier unconditional use_backend already takes every connection"));
                }
            } else {
                nowhere(d, "use_backend in defaults");
            }
        }
        "acl" => {
            let message = format!("`{text}` not converted: ACLs: connections are not inspected at L4");
            match role {
                Role::Proxy(p) => {
                    p.acls.push(Acl {
                        name: l.word(1).to_string(),
                        line: l.number,
                        words: l.words.get(2..).unwrap_or_default().to_vec(),
                    });
                    p.pending.push((l.number, message));
                }
                Role::Defaults(_) => d.warn(at, message),
            }
        }
        "tcp-request" => {
            let why = if text.contains("req.ssl_sni") || text.contains("req_ssl_sni") {
                "SNI routing needs the TLS ClientHello; the data plane does not read payloads"
            } else {
                "connections are not inspected or filtered at L4"
            };
            let message = format!("`{text}` not converted: {why}");
            let delay = (l.word(1) == "inspect-delay").then(|| time(l.word(2))).flatten();
            match role {
                Role::Proxy(p) if delay.is_some() => {
                    p.settings.inspect_delay = delay.map(|t| (t, l.number));
                    p.pending.push((l.number, message));
                }
                Role::Proxy(p)
                    if l.word(1) == "content"
                        && l.word(2) == "accept"
                        && l.word(3) == "if"
                        && routing::waits_for_hello(&l.words[4..], &p.acls) =>
                {
                    p.hello_accepts.push(l.number);
                    p.pending.push((l.number, message));
                }
                Role::Defaults(s) if delay.is_some() => {
                    s.inspect_delay = delay.map(|t| (t, l.number));
                    d.warn(at, format!("{message} (a routed VIP's inspect_timeout takes it)"));
                }
                _ => d.warn(at, message),
            }
        }
        "tcp-response" => nowhere(d, "responses are not inspected at L4"),
        "http-request" | "http-response" | "http-after-response" | "redirect" | "errorfile"
        | "errorfiles" | "errorloc" | "errorloc302" | "errorloc303" | "http-error"
        | "compression" | "capture" | "cookie" | "http-reuse" | "unique-id-format"
        | "unique-id-header" | "filter" | "http-send-name-header" | "reqadd" | "rspadd"
        | "monitor" => nowhere(d, "HTTP processing (L7)"),
        "monitor-uri" => d.warn(
            at,
            format!("`{text}` not converted: lb-agent answers /healthz (200 while it runs) and /ready (200 while every VIP has a backend taking new flows) on [agent] api_listen; point the monitor at one of them"),
        ),
        "stick-table" | "stick" | "stick-store-request" | "stick-store-response" | "persist"
        | "force-persist" | "ignore-persist" | "use-server" => nowhere(
            d,
            "stickiness: a client's flow stays on its backend through the flow table, and Maglev keeps most clients on theirs when backends change, but there are no stick tables",
        ),
        "maxconn" if role.frontend_side() => {
            let message = format!("`{text}` not converted: the data plane sets no connection limits");
            let n = l.word(1).parse::<i64>().ok();
            match role {
                Role::Proxy(p) if n.is_some() => {
                    p.settings.maxconn = n.map(|n| (n, l.number));
                    p.pending.push((l.number, message));
                }
                Role::Defaults(s) if n.is_some() => {
                    s.maxconn = n.map(|n| (n, l.number));
                    d.warn(at, format!("{message} (a routed VIP's max_connections takes it)"));
                }
                _ => d.warn(at, message),
            }
        }
        "maxconn" | "fullconn" | "rate-limit" | "backlog" => {
            nowhere(d, "the data plane sets no connection limits");
        }
        "retries" | "dispatch" => nowhere(d, "the data plane does not retry connections (a down backend's flows move to the others)"),
        "hash-type" | "hash-balance-factor" | "hash-preserve-affinity" => {
            nowhere(d, "Maglev hashes the 5-tuple");
        }
        "source" => nowhere(
            d,
            "NAT traffic leaves from snat_address (or the client's address with forwarding = \"dsr\")",
        ),
        "email-alert" => nowhere(d, "no mail alerts (watch /metrics)"),
        "id" | "guid" | "enabled" | "declare" | "grace" => {
            nowhere(d, "an HAProxy proxy setting with no equivalent in lb-agent");
        }
        "stats" => nowhere(
            d,
            "stats in defaults or a backend: the status page is served on [agent] api_listen",
        ),
        _ => nowhere(d, &format!("`{}` is not something lb-agent does in a {} section", l.word(0), kind.word())),
    }
}

fn option(l: &Line, text: &str, at: Loc<'_>, d: &mut Diagnostics) {
    let why = match l.word(1) {
        "forwardfor" | "originalto" => {
            "requests pass unchanged (no X-Forwarded-For); a routed VIP's pool with send_proxy tells the backend the client's address (proxy_protocol on the ingress)"
        }
        "http-server-close"
        | "httpclose"
        | "http-keep-alive"
        | "http-pretend-keepalive"
        | "http-use-htx"
        | "http-buffer-request"
        | "http-no-delay"
        | "http-ignore-probes"
        | "http-use-proxy-header"
        | "accept-invalid-http-request"
        | "accept-invalid-http-response"
        | "h1-case-adjust-bogus-client"
        | "h1-case-adjust-bogus-server"
        | "http-restrict-req-hdr-names"
        | "checkcache"
        | "http_proxy"
        | "httpchk" => "HTTP processing (L7)",
        "redispatch" | "abortonclose" => {
            "the data plane does not retry connections (a down backend's flows move to the others)"
        }
        "tcpka"
        | "clitcpka"
        | "srvtcpka"
        | "splice-auto"
        | "splice-request"
        | "splice-response"
        | "nolinger"
        | "tcp-smart-accept"
        | "tcp-smart-connect"
        | "independent-streams"
        | "socket-stats"
        | "contstats"
        | "prefer-last-server"
        | "idle-close-on-response"
        | "disable-h2-upgrade" => {
            "TCP proxy behaviour; the data plane forwards packets without terminating connections"
        }
        "transparent" => {
            "transparent proxying: use forwarding = \"dsr\" for backends that must see the client"
        }
        "persist" => "no cookie persistence at L4",
        _ => "no equivalent in lb-agent",
    };
    d.warn(at, format!("`{text}` not converted: {why}"));
}

fn balance(l: &Line, at: Loc<'_>, d: &mut Diagnostics) {
    let algo = l.word(1);
    match algo {
        // Comparable spread: kept as a comment in the output.
        "roundrobin" | "static-rr" | "random" => {}
        "leastconn" | "first" => d.warn(
            at,
            format!("`balance {algo}` not converted: lb-agent spreads new connections by weighted Maglev hashing of the 5-tuple (no connection counts)"),
        ),
        _ => d.warn(
            at,
            format!("`{}` not converted: lb-agent picks backends by weighted Maglev hashing of the 5-tuple (client address and port), so one client's connections may go to different backends", l.text()),
        ),
    }
}

fn server_line(p: &mut Proxy, l: &Line, at: Loc<'_>, d: &mut Diagnostics) {
    let (name, addr) = (l.word(1), l.word(2));
    let own = server::options(l, 3, at, d);
    match server::address(addr) {
        Ok((address, port)) => p.servers.push(Server {
            line: l.number,
            name: name.to_string(),
            address,
            port,
            opts: p.settings.default_server.overlaid(&own),
        }),
        Err(AddressProblem::Hostname(host)) => {
            p.dropped_servers += 1;
            d.error(
                at,
                format!("server {name} uses the hostname `{host}`: lb-agent needs addresses (it does not resolve names); replace it with the server's IP address"),
            );
        }
        Err(AddressProblem::Unsupported(why)) => {
            p.dropped_servers += 1;
            d.warn(at, format!("server {name} not converted: {why}"));
        }
    }
}

/// Why a bind address cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum BindProblem {
    /// Not an address lb-agent can serve (a name, a socket, a port range): the
    /// frontend's traffic would be lost.
    Unusable(String),
}

/// One address of a bind line: `ADDR:PORT`, `:PORT`, `*:PORT`, `[v6]:PORT`,
/// `localhost:PORT` (HAProxy resolves it at start; 127.0.0.1 as /etc/hosts has it).
pub(super) fn bind_address(text: &str) -> Result<(BindAddr, u16), BindProblem> {
    let bad = |why: String| Err(BindProblem::Unusable(why));
    let mut s = text;
    let mut family = None;
    // The prefix picks the socket's family; an IPv6 wildcard socket takes IPv4
    // too unless `v6only` (Linux's default, net.ipv6.bindv6only = 0).
    for (prefix, fam) in [
        ("ipv4@", Some(Families::V4)),
        ("ipv6@", Some(Families::BOTH)),
        ("tcp4@", Some(Families::V4)),
        ("tcp6@", Some(Families::BOTH)),
        ("tcp@", None),
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            family = fam;
        }
    }
    if s.starts_with('/') || s.contains('@') {
        return bad(format!(
            "`{text}` is not an IP address and port (a socket or another family)"
        ));
    }
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some(hp) => hp,
            None => return bad(format!("`{text}`: expected [ADDRESS]:PORT")),
        },
        None => match s.rsplit_once(':') {
            Some(hp) => hp,
            None => return bad(format!("`{text}`: a TCP bind needs a port")),
        },
    };
    if port.contains('-') {
        return bad(format!(
            "`{text}`: port ranges are not supported (one [[vip]] per port, or port 0 for every port)"
        ));
    }
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        return bad(format!("`{text}`: `{port}` is not a port"));
    };
    let addr = match host {
        "" | "*" => BindAddr::Any(family.unwrap_or(Families::V4)),
        // HAProxy binds the first address getaddrinfo gives; /etc/hosts usually
        // lists 127.0.0.1 first (the import warns where it matters).
        "localhost" => BindAddr::Ip(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        h => match h.parse::<IpAddr>() {
            Ok(a) if a.is_unspecified() && a.is_ipv6() => {
                BindAddr::Any(family.unwrap_or(Families::BOTH))
            }
            Ok(a) if a.is_unspecified() => BindAddr::Any(Families::V4),
            Ok(a) => BindAddr::Ip(a),
            Err(_) => {
                return bad(format!(
                    "`{text}`: `{h}` is a name; lb-agent needs the address (HAProxy resolved it at start): write the IP address"
                ));
            }
        },
    };
    Ok((addr, port))
}

/// Bind options lb-agent reads (the address families of `:::PORT`).
const FAMILY_OPTIONS: &[&str] = &["v4v6", "v6only"];

fn bind(p: &mut Proxy, l: &Line, at: Loc<'_>, d: &mut Diagnostics) {
    let spec = l.word(1);
    let opts = &l.words[2.min(l.words.len())..];
    let v6only = opts.iter().any(|o| o == "v6only");
    for part in spec.split(',').filter(|s| !s.is_empty()) {
        match bind_address(part) {
            Ok((addr, port)) => {
                let addr = match addr {
                    BindAddr::Any(f) if f.v6 && v6only => BindAddr::Any(Families::V6),
                    BindAddr::Any(f) if f.v6 && opts.iter().any(|o| o == "v4v6") => {
                        BindAddr::Any(Families::BOTH)
                    }
                    a => a,
                };
                if part.contains("localhost") {
                    d.warn(at, format!("bind {part}: HAProxy binds the first address `localhost` resolves to; converted as 127.0.0.1 (if this node's /etc/hosts lists ::1 first, use ::1)"));
                }
                p.binds.push(Bind {
                    line: l.number,
                    text: part.to_string(),
                    addr,
                    port,
                });
            }
            Err(BindProblem::Unusable(why)) => d.error(
                at,
                format!("bind {why}: {} would lose this listener", p.title()),
            ),
        }
    }
    let other: Vec<&String> = opts
        .iter()
        .filter(|o| !FAMILY_OPTIONS.contains(&o.as_str()))
        .collect();
    if !other.is_empty() {
        let joined = other
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let why = if other.iter().any(|o| *o == "ssl") {
            "HAProxy terminated TLS here; lb-agent forwards the encrypted connection as it is, so the backends must terminate TLS themselves"
        } else if other.iter().any(|o| *o == "accept-proxy") {
            "accept-proxy: the data plane does not read PROXY protocol headers"
        } else {
            "bind options have no equivalent (the VIP is an address and port in the data plane)"
        };
        d.warn(at, format!("bind options `{joined}` not converted: {why}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        let v4: IpAddr = "10.0.0.5".parse().expect("ip");
        let any = |f| Ok((BindAddr::Any(f), 6443));
        assert_eq!(bind_address("*:6443"), any(Families::V4), "* is IPv4 only");
        assert_eq!(bind_address(":6443"), any(Families::V4));
        assert_eq!(bind_address("0.0.0.0:6443"), any(Families::V4));
        assert_eq!(
            bind_address(":::6443"),
            any(Families::BOTH),
            "Linux's default"
        );
        assert_eq!(bind_address("[::]:6443"), any(Families::BOTH));
        assert_eq!(
            bind_address("ipv6@:6443"),
            any(Families::BOTH),
            "the prefix picks the socket; v6only alone excludes IPv4"
        );
        assert_eq!(bind_address("10.0.0.5:80"), Ok((BindAddr::Ip(v4), 80)));
        assert_eq!(bind_address("ipv4@10.0.0.5:80"), Ok((BindAddr::Ip(v4), 80)));
        assert_eq!(
            bind_address("localhost:50000"),
            Ok((BindAddr::Ip("127.0.0.1".parse().expect("ip")), 50000))
        );
        let unusable = |t| matches!(bind_address(t), Err(BindProblem::Unusable(_)));
        assert!(unusable("10.0.0.5:8000-8010"));
        assert!(unusable("/run/h.sock"));
        assert!(unusable("10.0.0.5"));
        assert!(unusable("api.example.org:6443"));
    }

    #[test]
    fn v6only_and_v4v6_set_the_families_of_a_wildcard() {
        let text = "frontend a\n  mode tcp\n  bind :::9445 v4v6\n  bind :::9446 v6only\n  bind *:9447\n  default_backend b\nbackend b\n  mode tcp\n  server s 10.0.0.1:6443\n";
        let mut d = Diagnostics::default();
        let sections = super::super::haproxy::parse(text, "h.cfg", &mut d);
        let h = read(&sections, "h.cfg", &mut d);
        let fams: Vec<BindAddr> = h.proxies[0].binds.iter().map(|b| b.addr.clone()).collect();
        assert_eq!(
            fams,
            [
                BindAddr::Any(Families::BOTH),
                BindAddr::Any(Families::V6),
                BindAddr::Any(Families::V4)
            ]
        );
        assert_eq!(d.warning_count(), 0, "{d:?}");
    }

    #[test]
    fn defaults_pass_on_and_http_sections_are_held() {
        let text = "defaults\n  mode tcp\n  timeout client 30s\n  default-server inter 3s fall 2\n  option httpchk GET /ready\n\nfrontend web\n  mode http\n  bind :80\n  acl a path_beg /x\n  http-request deny if a\n  use_backend b if a\n\nlisten api\n  bind 10.0.0.5:6443\n  server s1 10.0.0.11:6443 check\n";
        let mut d = Diagnostics::default();
        let sections = super::super::haproxy::parse(text, "h.cfg", &mut d);
        let h = read(&sections, "h.cfg", &mut d);
        assert_eq!(h.proxies.len(), 2);
        let api = &h.proxies[1];
        assert_eq!(api.servers[0].opts.fall, Some(2));
        assert_eq!(api.servers[0].opts.inter, Some(Duration::from_secs(3)));
        assert_eq!(
            api.settings.checks.request().and_then(|r| r.path),
            Some("/ready".to_string())
        );
        assert_eq!(
            api.settings.timeout_client,
            Some((Duration::from_secs(30), 3))
        );
        // The http section: its acl and rule kept, its warnings held.
        let web = &h.proxies[0];
        assert_eq!((web.acls.len(), web.rules.len()), (1, 1));
        assert_eq!(web.rules[0].condition, ["a"]);
        let held = web.other_mode.clone().expect("mode http").held;
        let (held, _) = held.split();
        let lines: Vec<usize> = held.iter().map(|w| w.line).collect();
        assert_eq!(lines, [11], "{held:#?}");
        let (warnings, errors) = d.split();
        assert!(errors.is_empty());
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [3], "{warnings:#?}");
    }
}
