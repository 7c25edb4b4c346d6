//! HAProxy's `global` section (nothing of it is converted: each directive is
//! warned about once) and its stats listener, which becomes `[agent] api_listen`
//! and `[agent.stats_auth]`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    haproxy::{Line, Section},
    proxy::{BindAddr, BindProblem, bind_address, cosmetic},
    warning::{Diagnostics, Loc},
};

/// The stats listener: where it listens and its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// "listen stats", for comments.
    pub section: String,
    pub line: usize,
    /// api_listen and the bind's line.
    pub listen: Option<(SocketAddr, usize)>,
    /// user, password and the line.
    pub auth: Option<(String, String, usize)>,
}

/// A `stats` directive that makes a frontend or listen a stats page.
pub fn is_stats_directive(l: &Line) -> bool {
    l.word(0) == "stats" && !matches!(l.word(1), "socket" | "timeout" | "maxconn" | "bind-process")
}

pub fn listener(s: &Section, file: &str, d: &mut Diagnostics, out: &mut Option<Stats>) {
    let at = Loc { file, line: s.line };
    if let Some(first) = out {
        d.warn(
            at,
            format!(
                "a second stats listener, {} (lines {}-{}): not converted, lb-agent serves one status page (the one of {} at line {})",
                s.title(),
                s.line,
                s.end_line,
                first.section,
                first.line
            ),
        );
        return;
    }
    let mut stats = Stats {
        section: s.title(),
        line: s.line,
        listen: None,
        auth: None,
    };
    for l in &s.lines {
        let at = at.at(l.number);
        let text = l.text();
        if let Some((group, why)) = cosmetic(l) {
            d.warn_grouped(&group, at, format!("`{group}` not converted: {why}"));
            continue;
        }
        match (l.word(0), l.word(1)) {
            ("mode", _) | ("stats", "enable") => {}
            ("bind", spec) => {
                if stats.listen.is_some() {
                    d.warn(at, format!("`{text}` not converted: api_listen is one address (the first bind's)"));
                    continue;
                }
                match bind_address(spec.split(',').next().unwrap_or("")) {
                    Ok((addr, port)) => {
                        let ip = match addr {
                            BindAddr::Ip(ip) => ip,
                            BindAddr::Any(f) if f.v6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                            BindAddr::Any(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        };
                        stats.listen = Some((SocketAddr::new(ip, port), l.number));
                    }
                    Err(BindProblem::Unusable(why)) => {
                        d.warn(at, format!("stats bind {why}: not converted, api_listen keeps its default"));
                    }
                }
                let extra: Vec<&String> = l.words[2.min(l.words.len())..]
                    .iter()
                    .filter(|o| !matches!(o.as_str(), "v4v6" | "v6only"))
                    .collect();
                if spec.contains(',') || !extra.is_empty() {
                    d.warn(at, format!("`{text}`: only the first address is converted, bind options are not"));
                }
            }
            ("stats", "uri") => {
                if l.word(2) != "/stats" {
                    d.warn(
                        at,
                        format!("`{text}`: lb-agent's status page is at /stats (with /stats.json, /metrics, /ready and /healthz) on api_listen; update bookmarks and scrapers"),
                    );
                }
            }
            ("stats", "auth") => match l.word(2).split_once(':') {
                Some((user, pass)) if stats.auth.is_none() => {
                    stats.auth = Some((user.to_string(), pass.to_string(), l.number));
                }
                Some((user, _)) => d.warn(
                    at,
                    format!("`stats auth {user}:...` not converted: [agent.stats_auth] holds one user (the first)"),
                ),
                None => d.warn(at, "`stats auth` without user:password: not converted"),
            },
            ("stats", "refresh") => d.warn(at, format!("`{text}` not converted: the status page refreshes itself every 2 s")),
            ("stats", "admin") => d.warn(
                at,
                format!("`{text}` not converted: the status page is read-only; use `lb-agent drain` / `enable`"),
            ),
            ("stats", _) => d.warn(at, format!("`{text}` not converted: the status page has no such setting")),
            ("http-request", _) if text.contains("prometheus-exporter") => d.warn(
                at,
                format!("`{text}` not converted: lb-agent serves Prometheus metrics at /metrics on api_listen"),
            ),
            _ => d.warn(at, format!("`{text}` not converted: a stats listener setting with no equivalent")),
        }
    }
    if stats.listen.is_none() {
        d.warn(
            at,
            format!(
                "{} has no usable bind: api_listen keeps its default",
                s.title()
            ),
        );
    }
    *out = Some(stats);
}

/// Why a `global` directive is not converted.
fn global_reason(keyword: &str) -> &'static str {
    match keyword {
        "log" | "log-tag" | "log-send-hostname" | "log-format" => {
            "lb-agent logs to stderr/journald"
        }
        "stats" => {
            "HAProxy's runtime API: use the lb-agent subcommands (they talk to control_socket)"
        }
        "maxconn" | "maxconnrate" | "maxsessrate" | "maxsslconn" | "maxsslrate" | "maxpipes"
        | "maxzlibmem" | "ulimit-n" => "the data plane sets no connection limits",
        "spread-checks" | "max-spread-checks" => "checks run on their own interval per backend",
        k if k.starts_with("ssl-")
            || k == "ca-base"
            || k == "crt-base"
            || k.starts_with("tune.ssl") =>
        {
            "TLS settings: lb-agent does not terminate TLS (connections pass through at L4)"
        }
        k if k.starts_with("tune.") => "HAProxy tuning: not applicable to the XDP data plane",
        "daemon"
        | "master-worker"
        | "user"
        | "group"
        | "uid"
        | "gid"
        | "chroot"
        | "pidfile"
        | "nbthread"
        | "nbproc"
        | "cpu-map"
        | "thread-groups"
        | "node"
        | "description"
        | "hard-stop-after"
        | "grace"
        | "setenv"
        | "presetenv"
        | "resetenv"
        | "unsetenv"
        | "lua-load"
        | "lua-prepend-path"
        | "localpeer"
        | "set-dumpable"
        | "quiet"
        | "zero-warning"
        | "expose-experimental-directives"
        | "insecure-fork-wanted"
        | "mworker-max-reloads"
        | "default-path"
        | "numa-cpu-mapping"
        | "busy-polling" => {
            "HAProxy process setting: not applicable (lb-agent runs as one service, forwarding is in the kernel)"
        }
        _ => "HAProxy global setting with no equivalent",
    }
}

/// `global`: one warning per directive kind, with every line it is on
/// (`ssl-server-verify` is read: the servers' default `verify`).
pub fn global(s: &Section, file: &str, d: &mut Diagnostics) {
    for l in s.lines.iter().filter(|l| l.word(0) != "ssl-server-verify") {
        let at = Loc {
            file,
            line: l.number,
        };
        let keyword = if l.word(0) == "stats" {
            format!("stats {}", l.word(1))
        } else {
            l.word(0).to_string()
        };
        let why = global_reason(l.word(0));
        d.warn_grouped(
            &format!("global {keyword}"),
            at,
            format!("global `{keyword}` not converted: {why}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy;

    #[test]
    fn a_stats_listener_becomes_api_listen_and_auth() {
        let text = "listen stats\n  bind *:8404\n  mode http\n  stats enable\n  stats uri /haproxy?stats\n  stats refresh 10s\n  stats auth admin:s3cret\n  stats auth ops:other\n";
        let mut d = Diagnostics::default();
        let sections = haproxy::parse(text, "h.cfg", &mut d);
        let mut out = None;
        listener(&sections[0], "h.cfg", &mut d, &mut out);
        let s = out.expect("stats");
        assert_eq!(s.listen, Some(("0.0.0.0:8404".parse().expect("addr"), 2)));
        assert_eq!(s.auth, Some(("admin".into(), "s3cret".into(), 7)));
        let (warnings, _) = d.split();
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [5, 6, 8], "{warnings:#?}");
    }

    #[test]
    fn global_directives_are_warned_once_per_kind() {
        let text = "global\n  log /dev/log local0\n  log /dev/log local1 notice\n  daemon\n  maxconn 4000\n";
        let mut d = Diagnostics::default();
        let sections = haproxy::parse(text, "h.cfg", &mut d);
        global(&sections[0], "h.cfg", &mut d);
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 3);
        assert_eq!(warnings[0].also_lines, [3]);
        assert!(warnings[2].message.contains("maxconn"));
    }
}
