//! HAProxy `server` and `default-server` lines: the address and the options that
//! matter to health checks and weights. Every other option is warned about.

use std::{net::IpAddr, time::Duration};

use super::{
    haproxy::{Line, time},
    warning::{Diagnostics, Loc},
};

/// Server options (a `default-server` line gives defaults for the ones after it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOpts {
    pub check: Option<bool>,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub weight: Option<i64>,
    pub check_ssl: Option<bool>,
    /// `ssl`: traffic to the server encrypted by HAProxy (checks too, unless told).
    pub ssl: Option<bool>,
    /// `verify none` = false, `verify required` = true.
    pub verify: Option<bool>,
    pub ca_file: Option<String>,
    /// `ca-file @system-ca`: the system's CAs (verification on, no file).
    pub system_ca: Option<bool>,
    pub check_sni: Option<String>,
    /// `port N`: the port checks go to.
    pub check_port: Option<u16>,
    pub disabled: Option<bool>,
    pub backup: Option<bool>,
    /// `send-proxy`, `send-proxy-v2`, ... (`no-send-proxy`: `Off`).
    pub send_proxy: Option<SendProxy>,
}

/// The PROXY protocol header HAProxy sends to a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendProxy {
    Off,
    V1,
    /// `ssl`: `send-proxy-v2-ssl(-cn)`, whose TLS details (TLVs) are not sent.
    V2 {
        ssl: bool,
    },
}

impl SendProxy {
    /// The option as written.
    pub fn option(self) -> &'static str {
        match self {
            SendProxy::Off => "no-send-proxy",
            SendProxy::V1 => "send-proxy",
            SendProxy::V2 { ssl: false } => "send-proxy-v2",
            SendProxy::V2 { ssl: true } => "send-proxy-v2-ssl",
        }
    }

    /// The pool's `send_proxy` value.
    pub fn version(self) -> Option<&'static str> {
        match self {
            SendProxy::Off => None,
            SendProxy::V1 => Some("v1"),
            SendProxy::V2 { .. } => Some("v2"),
        }
    }
}

impl ServerOpts {
    /// `self` with the options `own` sets replacing them.
    pub fn overlaid(&self, own: &ServerOpts) -> ServerOpts {
        fn pick<T: Clone>(own: &Option<T>, base: &Option<T>) -> Option<T> {
            own.clone().or_else(|| base.clone())
        }
        ServerOpts {
            check: pick(&own.check, &self.check),
            inter: pick(&own.inter, &self.inter),
            fastinter: pick(&own.fastinter, &self.fastinter),
            downinter: pick(&own.downinter, &self.downinter),
            rise: pick(&own.rise, &self.rise),
            fall: pick(&own.fall, &self.fall),
            weight: pick(&own.weight, &self.weight),
            check_ssl: pick(&own.check_ssl, &self.check_ssl),
            ssl: pick(&own.ssl, &self.ssl),
            verify: pick(&own.verify, &self.verify),
            ca_file: pick(&own.ca_file, &self.ca_file),
            system_ca: pick(&own.system_ca, &self.system_ca),
            check_sni: pick(&own.check_sni, &self.check_sni),
            check_port: pick(&own.check_port, &self.check_port),
            disabled: pick(&own.disabled, &self.disabled),
            backup: pick(&own.backup, &self.backup),
            send_proxy: pick(&own.send_proxy, &self.send_proxy),
        }
    }

    /// Whether health checks go over TLS: `check-ssl`, or the server's `ssl` when the
    /// check goes to the server's own port (HAProxy checks another `port` in plain).
    pub fn checks_tls(&self) -> bool {
        self.check_ssl.unwrap_or(false) || (self.ssl.unwrap_or(false) && self.check_port.is_none())
    }

    /// Whether HAProxy speaks TLS to the server at all (traffic or checks): then its
    /// certificate is verified unless `verify none`.
    pub fn uses_tls(&self) -> bool {
        self.check_ssl.unwrap_or(false) || self.ssl.unwrap_or(false)
    }

    /// Whether CAs to verify against are given (a file, or the system's).
    pub fn has_ca(&self) -> bool {
        self.ca_file.is_some() || self.system_ca == Some(true)
    }
}

/// One `server` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub line: usize,
    pub name: String,
    pub address: IpAddr,
    /// None: the port the client connected to (the VIP's).
    pub port: Option<u16>,
    /// Its own options over the `default-server` ones.
    pub opts: ServerOpts,
}

/// Options with one argument that are not converted, and why.
const UNSUPPORTED_WITH_ARG: &[(&str, &str)] = &[
    ("maxconn", "no connection limits in the data plane"),
    ("maxqueue", "no queueing in the data plane"),
    ("minconn", "no connection limits in the data plane"),
    (
        "slowstart",
        "a recovered backend takes its full share at once",
    ),
    (
        "on-marked-down",
        "flows on a down backend move to the others anyway",
    ),
    ("on-marked-up", "no equivalent"),
    ("on-error", "checks follow fall/rise only"),
    ("error-limit", "checks follow fall/rise only"),
    ("observe", "only active checks decide health"),
    ("resolvers", "addresses are static"),
    ("resolve-prefer", "addresses are static"),
    ("resolve-net", "addresses are static"),
    ("init-addr", "addresses are static"),
    ("cookie", "no HTTP cookies at L4"),
    ("agent-port", "no agent checks"),
    ("agent-inter", "no agent checks"),
    ("agent-addr", "no agent checks"),
    ("agent-send", "no agent checks"),
    ("track", "each VIP checks its own backends"),
    ("id", "no numeric ids"),
    ("addr", "checks go to the backend's own address"),
    (
        "source",
        "the data plane sources NAT traffic from snat_address",
    ),
    (
        "usesrc",
        "the data plane sources NAT traffic from snat_address",
    ),
    ("crt", "the data plane does not originate TLS"),
    (
        "sni",
        "the data plane does not originate TLS (check-sni sets the check's SNI)",
    ),
    ("alpn", "the data plane does not originate TLS"),
    ("check-alpn", "checks do not negotiate ALPN"),
    ("ciphers", "the data plane does not originate TLS"),
    ("ciphersuites", "the data plane does not originate TLS"),
    ("ssl-min-ver", "the data plane does not originate TLS"),
    ("ssl-max-ver", "the data plane does not originate TLS"),
    ("crl-file", "checks do not read CRLs"),
    ("proto", "no protocol selection at L4"),
    ("pool-max-conn", "no connection pools at L4"),
    ("pool-low-conn", "no connection pools at L4"),
    ("pool-purge-delay", "no connection pools at L4"),
    ("max-reuse", "no connection reuse at L4"),
    (
        "namespace",
        "backends are reached from the agent's namespace",
    ),
    ("redir", "no HTTP redirects at L4"),
    ("check-proto", "checks speak plain HTTP or TLS"),
    (
        "verifyhost",
        "the https check verifies against the system roots or ca_file",
    ),
    ("hash-key", "Maglev hashes the 5-tuple"),
    ("log-proto", "no logging per server"),
    ("guid", "no equivalent"),
    ("ws", "no websocket handling at L4"),
    ("tcp-ut", "no TCP user timeout"),
    ("set-proxy-v2-tlv-fmt", "no PROXY protocol"),
    ("check-via-socks4", "no SOCKS"),
    ("curves", "the data plane does not originate TLS"),
    ("sigalgs", "the data plane does not originate TLS"),
    ("client-sigalgs", "the data plane does not originate TLS"),
];

/// Flags (no argument) that are not converted, and why.
const UNSUPPORTED_FLAGS: &[(&str, &str)] = &[
    (
        "check-send-proxy",
        "checks do not send a PROXY protocol header",
    ),
    (
        "agent-check",
        "no agent checks: only the health check decides",
    ),
    ("non-stick", "no stick tables"),
    ("no-tls-tickets", "the data plane does not originate TLS"),
    ("tls-tickets", "the data plane does not originate TLS"),
    ("force-sslv3", "the data plane does not originate TLS"),
    ("force-tlsv10", "the data plane does not originate TLS"),
    ("force-tlsv11", "the data plane does not originate TLS"),
    ("force-tlsv12", "the data plane does not originate TLS"),
    ("force-tlsv13", "the data plane does not originate TLS"),
    ("no-sslv3", "the data plane does not originate TLS"),
    ("no-tlsv10", "the data plane does not originate TLS"),
    ("no-tlsv11", "the data plane does not originate TLS"),
    ("no-tlsv12", "the data plane does not originate TLS"),
    ("no-tlsv13", "the data plane does not originate TLS"),
    ("allow-0rtt", "the data plane does not originate TLS"),
    ("tfo", "no TCP fast open toward backends"),
    (
        "no-verifyhost",
        "the https check verifies against the system roots or ca_file",
    ),
    ("check-reuse-pool", "no connection pools at L4"),
    ("no-check-ssl", "checks use TLS only with check-ssl/ssl"),
];

/// Reads the options of a `server` (from word `from`) or `default-server` line.
pub fn options(line: &Line, from: usize, at: Loc<'_>, d: &mut Diagnostics) -> ServerOpts {
    let mut o = ServerOpts::default();
    let w = &line.words;
    let mut i = from;
    while i < w.len() {
        let opt = w[i].as_str();
        let arg = w.get(i + 1).map(String::as_str);
        let mut takes_arg = false;
        let mut need = |d: &mut Diagnostics| -> Option<&str> {
            takes_arg = true;
            if arg.is_none() {
                d.error(
                    at,
                    format!("`{opt}` without its value (HAProxy refuses it)"),
                );
            }
            arg
        };
        match opt {
            "check" => o.check = Some(true),
            "no-check" => o.check = Some(false),
            "check-ssl" => o.check_ssl = Some(true),
            "ssl" => {
                o.ssl = Some(true);
                d.warn(at, "`ssl`: HAProxy encrypted traffic to this server; the data plane forwards the client's bytes as they are (the client must speak TLS to the backend itself). Checks use TLS as before");
            }
            "no-ssl" => o.ssl = Some(false),
            "disabled" => o.disabled = Some(true),
            "enabled" => o.disabled = Some(false),
            "backup" => o.backup = Some(true),
            "no-backup" => o.backup = Some(false),
            "send-proxy" => o.send_proxy = Some(SendProxy::V1),
            "send-proxy-v2" => o.send_proxy = Some(SendProxy::V2 { ssl: false }),
            "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
                o.send_proxy = Some(SendProxy::V2 { ssl: true });
            }
            "no-send-proxy"
            | "no-send-proxy-v2"
            | "no-send-proxy-v2-ssl"
            | "no-send-proxy-v2-ssl-cn" => o.send_proxy = Some(SendProxy::Off),
            "inter" | "fastinter" | "downinter" => {
                if let Some(a) = need(d) {
                    match time(a) {
                        Some(t) if !t.is_zero() => match opt {
                            "inter" => o.inter = Some(t),
                            "fastinter" => o.fastinter = Some(t),
                            _ => o.downinter = Some(t),
                        },
                        _ => d.error(
                            at,
                            format!(
                                "`{opt} {a}`: not an HAProxy time above 0 (HAProxy refuses it)"
                            ),
                        ),
                    }
                }
            }
            "rise" | "fall" | "weight" => {
                if let Some(a) = need(d) {
                    // HAProxy's ranges: rise and fall from 1, weight 0..=256.
                    let max = if opt == "weight" {
                        256
                    } else {
                        i64::from(i32::MAX)
                    };
                    let min = if opt == "weight" { 0 } else { 1 };
                    match a.parse::<i64>() {
                        Ok(n) if (min..=max).contains(&n) => match opt {
                            "rise" => o.rise = Some(n),
                            "fall" => o.fall = Some(n),
                            _ => o.weight = Some(n),
                        },
                        _ => d.error(
                            at,
                            format!("`{opt} {a}`: expected a number from {min} to {max} (HAProxy refuses it)"),
                        ),
                    }
                }
            }
            "verify" => {
                if let Some(a) = need(d) {
                    match a {
                        "none" => o.verify = Some(false),
                        "required" => o.verify = Some(true),
                        _ => d.error(
                            at,
                            format!("`verify {a}`: expected none or required (HAProxy refuses it)"),
                        ),
                    }
                }
            }
            "ca-file" => {
                if let Some(a) = need(d) {
                    if a == "@system-ca" {
                        o.system_ca = Some(true);
                    } else if a.starts_with('@') {
                        d.warn(at, format!("`ca-file {a}`: the https check uses the system roots unless ca_file names a PEM file"));
                        o.system_ca = Some(true);
                    } else {
                        o.ca_file = Some(a.to_string());
                    }
                }
            }
            "check-sni" => {
                if let Some(a) = need(d) {
                    o.check_sni = Some(a.to_string());
                }
            }
            "port" => {
                if let Some(a) = need(d) {
                    match a.parse::<u16>() {
                        Ok(p) if p > 0 => o.check_port = Some(p),
                        _ => d.error(at, format!("`port {a}`: not a port (HAProxy refuses it)")),
                    }
                }
            }
            _ => {
                if let Some((_, why)) = UNSUPPORTED_WITH_ARG.iter().find(|(n, _)| *n == opt) {
                    takes_arg = true;
                    d.warn(
                        at,
                        format!("`{opt} {}` not converted: {why}", arg.unwrap_or("")),
                    );
                } else if let Some((_, why)) = UNSUPPORTED_FLAGS.iter().find(|(n, _)| *n == opt) {
                    d.warn(at, format!("`{opt}` not converted: {why}"));
                } else {
                    d.warn(at, format!("unknown server option `{opt}`: not converted"));
                }
            }
        }
        i += if takes_arg { 2 } else { 1 };
    }
    o
}

/// Why a server address cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum AddressProblem {
    /// A name instead of an address.
    Hostname(String),
    /// Something else we cannot express (unix socket, port offset, ...).
    Unsupported(String),
}

/// `10.0.0.1:80`, `10.0.0.1`, `[2001:db8::1]:80`, `ipv6@2001:db8::1`, ...:
/// the address and the port (None: the client's destination port).
pub fn address(text: &str) -> Result<(IpAddr, Option<u16>), AddressProblem> {
    let mut s = text;
    for prefix in ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    if s.starts_with('/') || s.contains('@') {
        return Err(AddressProblem::Unsupported(format!(
            "`{text}` is not an IP address and port (a socket or other address family)"
        )));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, None));
    }
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').unwrap_or(p)),
            None => return Err(AddressProblem::Unsupported(format!("`{text}`: unclosed ["))),
        },
        None => match s.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (s, ""),
        },
    };
    let port = match port {
        "" => None,
        p if p.starts_with('+') || p.starts_with('-') => {
            return Err(AddressProblem::Unsupported(format!(
                "`{text}`: a port offset from the client's port has no equivalent; give the port"
            )));
        }
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(AddressProblem::Unsupported(format!(
                    "`{text}`: `{p}` is not a port"
                )));
            }
        },
    };
    match host.parse::<IpAddr>() {
        Ok(a) => Ok((a, port)),
        Err(_) => Err(AddressProblem::Hostname(host.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Line {
        Line {
            number: 7,
            words: super::super::haproxy::words(s).expect("words"),
        }
    }

    #[test]
    fn addresses_in_haproxy_forms() {
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(address("10.0.0.1:6443"), Ok((v4, Some(6443))));
        assert_eq!(address("10.0.0.1"), Ok((v4, None)));
        assert_eq!(address("10.0.0.1:"), Ok((v4, None)));
        assert_eq!(address("ipv4@10.0.0.1:80"), Ok((v4, Some(80))));
        assert_eq!(address("[2001:db8::1]:443"), Ok((v6, Some(443))));
        assert_eq!(address("2001:db8::1"), Ok((v6, None)));
        assert_eq!(
            address("cp1.example.com:6443"),
            Err(AddressProblem::Hostname("cp1.example.com".into()))
        );
        assert!(matches!(
            address("10.0.0.1:+1000"),
            Err(AddressProblem::Unsupported(_))
        ));
        assert!(matches!(
            address("/run/app.sock"),
            Err(AddressProblem::Unsupported(_))
        ));
    }

    #[test]
    fn options_read_checks_and_warn_about_the_rest() {
        let mut d = Diagnostics::default();
        let at = Loc {
            file: "h.cfg",
            line: 7,
        };
        let l = line(
            "server s1 10.0.0.1:443 check check-ssl verify none inter 3s fall 3 rise 2 weight 50 send-proxy-v2 maxconn 100 backup",
        );
        let o = options(&l, 3, at, &mut d);
        assert_eq!(o.check, Some(true));
        assert!(o.checks_tls());
        assert_eq!(o.verify, Some(false));
        assert_eq!(o.inter, Some(Duration::from_secs(3)));
        assert_eq!((o.fall, o.rise, o.weight), (Some(3), Some(2), Some(50)));
        assert_eq!(o.backup, Some(true));
        assert_eq!(o.send_proxy, Some(SendProxy::V2 { ssl: false }));
        let (warnings, _) = d.split();
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        // send-proxy-v2 is for the service to judge (a routed VIP's pool sends it).
        assert_eq!(warnings.len(), 1, "{text:#?}");
        assert!(text[0].contains("`maxconn 100` not converted"));
    }

    #[test]
    fn own_options_override_default_server() {
        let mut d = Diagnostics::default();
        let at = Loc { file: "h", line: 1 };
        let defaults = options(&line("default-server inter 5s fall 5 check"), 1, at, &mut d);
        let own = options(&line("server a 10.0.0.1 fall 2"), 3, at, &mut d);
        let o = defaults.overlaid(&own);
        assert_eq!(o.fall, Some(2));
        assert_eq!(o.inter, Some(Duration::from_secs(5)));
        assert_eq!(o.check, Some(true));
        let sending = options(&line("default-server send-proxy-v2-ssl-cn"), 1, at, &mut d);
        let off = options(&line("server a 10.0.0.1 no-send-proxy-v2"), 3, at, &mut d);
        assert_eq!(sending.overlaid(&off).send_proxy, Some(SendProxy::Off));
        assert_eq!(
            sending.overlaid(&own).send_proxy,
            Some(SendProxy::V2 { ssl: true })
        );
    }
}
