//! HAProxy's health-check directives: `option httpchk` (every form, including the
//! old `HTTP/1.1\r\nHost:\ x` trick), `http-check send|expect|connect`,
//! `option tcp-check` and `tcp-check`, and the protocol checks we cannot run.

use super::{
    haproxy::Line,
    warning::{Diagnostics, Loc},
};

/// What to send: `option httpchk` and `http-check send`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub line: usize,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
}

/// `http-check connect` / `tcp-check connect`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connect {
    pub line: usize,
    pub port: Option<u16>,
    pub ssl: bool,
    pub sni: Option<String>,
}

/// A check option: what kind of check a backend runs. HAProxy keeps only the last
/// one a section (or its defaults) gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOption {
    /// `option httpchk`: what it asks.
    HttpChk(HttpRequest),
    /// `option tcp-check`.
    TcpCheck,
    /// `option ssl-hello-chk`: a TLS hello, answered by a server hello.
    SslHello,
    /// `option mysql-check`, `pgsql-check`, ...: the option's name.
    Protocol(String),
}

impl CheckOption {
    /// The option as written (`option httpchk`).
    pub fn name(&self) -> String {
        match self {
            CheckOption::HttpChk(_) => "option httpchk".into(),
            CheckOption::TcpCheck => "option tcp-check".into(),
            CheckOption::SslHello => "option ssl-hello-chk".into(),
            CheckOption::Protocol(p) => format!("option {p}"),
        }
    }
}

/// The check rules of a proxy (inherited from `defaults`, replaced one by one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckRules {
    /// The check option in force and its line.
    pub option: Option<(CheckOption, usize)>,
    /// `http-check send` (over what `option httpchk` said).
    pub send: Option<HttpRequest>,
    /// `http-check expect status`: codes and line.
    pub expect: Option<(Vec<u16>, usize)>,
    pub connect: Option<Connect>,
}

impl CheckRules {
    /// The request an http check sends: method, path, Host (HAProxy's defaults:
    /// OPTIONS /). None unless `option httpchk` is the option in force.
    pub fn request(&self) -> Option<HttpRequest> {
        let Some((CheckOption::HttpChk(base), _)) = &self.option else {
            return None;
        };
        let mut r = base.clone();
        if let Some(s) = &self.send {
            r.method = s.method.clone().or(r.method);
            r.path = s.path.clone().or(r.path);
            r.host = s.host.clone().or(r.host);
        }
        Some(r)
    }

    /// Sets the check option at `at`. One replacing an option of the same section
    /// (a line after `section_line`) is warned about: the last one wins in HAProxy,
    /// and configs that list two (the kubeadm guide's `option httpchk` then
    /// `option ssl-hello-chk`) are read as if the first one counted.
    pub fn set_option(
        &mut self,
        option: CheckOption,
        section_line: usize,
        at: Loc<'_>,
        d: &mut Diagnostics,
    ) {
        if let Some((old, line)) = &self.option
            && *line > section_line
            && std::mem::discriminant(old) != std::mem::discriminant(&option)
        {
            let rules: Vec<String> = [
                self.send.as_ref().map(|s| s.line),
                self.expect.as_ref().map(|e| e.1),
            ]
            .into_iter()
            .flatten()
            .map(|l| l.to_string())
            .collect();
            let dropped = if matches!(old, CheckOption::HttpChk(_)) && !rules.is_empty() {
                format!(
                    ", and its http-check rules (line(s) {}) do nothing",
                    rules.join(", ")
                )
            } else {
                String::new()
            };
            d.warn(
                at,
                format!(
                    "`{}` replaces `{}` (line {line}): HAProxy keeps only the last check option, so the servers get {}{dropped}; converted as HAProxy runs it",
                    option.name(),
                    old.name(),
                    match &option {
                        CheckOption::HttpChk(_) => "an HTTP check",
                        CheckOption::SslHello => "a TLS hello check",
                        CheckOption::TcpCheck => "a tcp-check",
                        CheckOption::Protocol(_) => "that protocol's check",
                    }
                ),
            );
        }
        self.option = Some((option, at.line));
    }
}

/// Headers in a version word: `HTTP/1.1\r\nHost: x` (the pre-2.2 way to send them).
fn headers_in_version(version: &str, req: &mut HttpRequest, at: Loc<'_>, d: &mut Diagnostics) {
    for header in version.split("\r\n").skip(1).filter(|h| !h.is_empty()) {
        match header.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("host") => {
                req.host = Some(value.trim().to_string());
            }
            _ => d.warn(
                at,
                format!("check header `{header}` not converted: the http check sends Host only"),
            ),
        }
    }
}

/// `option httpchk [METHOD] [URI] [VERSION]`: `args` are the words after `httpchk`.
pub fn option_httpchk(args: &[String], at: Loc<'_>, d: &mut Diagnostics) -> HttpRequest {
    let mut r = HttpRequest {
        line: at.line,
        ..HttpRequest::default()
    };
    match args {
        [] => {}
        [uri] => r.path = Some(uri.clone()),
        [method, uri, rest @ ..] => {
            r.method = Some(method.clone());
            r.path = Some(uri.clone());
            if let Some(version) = rest.first() {
                headers_in_version(version, &mut r, at, d);
            }
            if rest.len() > 1 {
                d.warn(
                    at,
                    format!("`{}` after the version not converted", rest[1..].join(" ")),
                );
            }
        }
    }
    r
}

/// Checks a method the http check does not send (it sends GET).
pub fn warn_method(r: &HttpRequest, at: Loc<'_>, d: &mut Diagnostics) {
    let method = r.method.as_deref().unwrap_or("OPTIONS");
    if !method.eq_ignore_ascii_case("GET") {
        let default = if r.method.is_none() {
            " (HAProxy's default)"
        } else {
            ""
        };
        d.warn(
            at,
            format!("the check method {method}{default} becomes GET: lb-agent's http/https checks send GET"),
        );
    }
}

/// Status codes: `200`, `200,204`, `200-299`.
pub fn status_codes(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse::<u16>().ok()?),
        }
    }
    Some(out)
}

/// `http-check ...` (words from 1).
pub fn http_check(line: &Line, rules: &mut CheckRules, at: Loc<'_>, d: &mut Diagnostics) {
    let args = &line.words[2.min(line.words.len())..];
    match line.word(1) {
        "send" => rules.send = Some(send(args, at, d)),
        "expect" => expect(args, rules, at, d),
        "connect" => rules.connect = Some(connect(args, at, d)),
        "disable-on-404" => d.warn(
            at,
            "`http-check disable-on-404` not converted: a 404 is a failed check unless listed in expect_status; drain with `lb-agent drain`",
        ),
        "send-state" => d.warn(at, "`http-check send-state` not converted: the check sends no state header"),
        "comment" => d.warn_grouped("http-check comment", at, "`http-check comment` not converted (cosmetic)"),
        other => d.warn(
            at,
            format!("`http-check {other}` not converted: the http check is one GET and one status test"),
        ),
    }
}

fn send(args: &[String], at: Loc<'_>, d: &mut Diagnostics) -> HttpRequest {
    let mut r = HttpRequest {
        line: at.line,
        ..HttpRequest::default()
    };
    let mut i = 0;
    while i < args.len() {
        let val = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        match args[i].as_str() {
            "meth" => r.method = Some(val(1)),
            "uri" => r.path = Some(val(1)),
            "ver" => {
                let v = val(1);
                headers_in_version(&v, &mut r, at, d);
            }
            "hdr" => {
                let (name, value) = (val(1), val(2));
                if name.eq_ignore_ascii_case("host") {
                    r.host = Some(value);
                } else {
                    d.warn(
                        at,
                        format!("check header `{name}: {value}` not converted: the http check sends Host only"),
                    );
                }
                i += 3;
                continue;
            }
            "uri-lf" | "body" | "body-lf" => d.warn(
                at,
                format!(
                    "`{} {}` not converted: the http check sends a fixed GET without a body",
                    args[i],
                    val(1)
                ),
            ),
            "comment" => {}
            other => {
                d.warn(
                    at,
                    format!("`http-check send {other}` not understood: ignored"),
                );
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    r
}

fn expect(args: &[String], rules: &mut CheckRules, at: Loc<'_>, d: &mut Diagnostics) {
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "min-recv" | "comment" | "ok-status" | "error-status" | "tout-status"
            | "on-success" | "on-error" | "status-code" => {
                if args[i] != "comment" {
                    d.warn(
                        at,
                        format!(
                            "`{} {}` of http-check expect not converted",
                            args[i],
                            args.get(i + 1).map_or("", String::as_str)
                        ),
                    );
                }
                i += 2;
            }
            _ => break,
        }
    }
    let rest = &args[i.min(args.len())..];
    let (negated, rest) = match rest.split_first() {
        Some((bang, r)) if bang == "!" => (true, r),
        _ => (false, rest),
    };
    let (kind, pattern) = match rest {
        [k, p, ..] => (k.as_str(), p.as_str()),
        [k] => (k.as_str(), ""),
        [] => ("", ""),
    };
    if rules.expect.is_some() && kind == "status" {
        d.warn(
            at,
            "a second `http-check expect status`: only one status test is converted (this one replaces the earlier)",
        );
    }
    match (kind, negated) {
        ("status", false) => match status_codes(pattern) {
            Some(codes) => rules.expect = Some((codes, at.line)),
            None => d.warn(at, format!("`{pattern}` is not a list of status codes: not converted")),
        },
        ("status", true) => d.warn(
            at,
            "`http-check expect ! status` not converted: expect_status lists the accepted codes; list them instead",
        ),
        ("rstatus", _) => d.warn(
            at,
            format!("`http-check expect rstatus {pattern}` not converted: expect_status lists exact codes; list them instead"),
        ),
        _ => d.warn(
            at,
            format!("`http-check expect {}` not converted: the http check tests the status code only", rest.join(" ")),
        ),
    }
}

/// `http-check connect` / `tcp-check connect` options.
fn connect(args: &[String], at: Loc<'_>, d: &mut Diagnostics) -> Connect {
    let mut c = Connect {
        line: at.line,
        ..Connect::default()
    };
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).map_or("", String::as_str);
        match args[i].as_str() {
            "default" | "linger" => {
                i += 1;
                continue;
            }
            "ssl" => {
                c.ssl = true;
                i += 1;
                continue;
            }
            "port" => match val.parse::<u16>() {
                Ok(p) if p > 0 => c.port = Some(p),
                _ => d.warn(at, format!("check `port {val}` is not a port: ignored")),
            },
            "sni" => c.sni = Some(val.to_string()),
            "comment" => {}
            "send-proxy" | "via-socks4" => {
                d.warn(at, format!("check connect `{}` not converted", args[i]));
                i += 1;
                continue;
            }
            other => d.warn(at, format!("check connect `{other} {val}` not converted")),
        }
        i += 2;
    }
    c
}

/// `tcp-check ...`: connect is kept, the rest warned about.
pub fn tcp_check(line: &Line, rules: &mut CheckRules, at: Loc<'_>, d: &mut Diagnostics) {
    let args = &line.words[2.min(line.words.len())..];
    match line.word(1) {
        "connect" => rules.connect = Some(connect(args, at, d)),
        "comment" => d.warn_grouped("tcp-check comment", at, "`tcp-check comment` not converted (cosmetic)"),
        other => d.warn(
            at,
            format!("`tcp-check {other}` not converted: only connect is checked (a connection opened, with `ssl` a TLS handshake, and closed)"),
        ),
    }
}

/// `option X` checks of other protocols: the tcp check is the nearest.
pub fn protocol_check(
    option: &str,
    rules: &mut CheckRules,
    section_line: usize,
    at: Loc<'_>,
    d: &mut Diagnostics,
) {
    rules.set_option(
        CheckOption::Protocol(option.to_string()),
        section_line,
        at,
        d,
    );
    d.warn(
        at,
        format!("`option {option}` becomes a tcp check: lb-agent checks tcp (connect), tls (handshake), http or https, not this protocol"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Line {
        Line {
            number: 4,
            words: super::super::haproxy::words(s).expect("words"),
        }
    }

    const AT: Loc<'static> = Loc {
        file: "h.cfg",
        line: 4,
    };

    #[test]
    fn option_httpchk_forms() {
        let mut d = Diagnostics::default();
        let r = option_httpchk(&[], AT, &mut d);
        assert_eq!((r.method, r.path), (None, None));
        let l = line(r"option httpchk GET /healthz HTTP/1.1\r\nHost:\ api.example");
        let r = option_httpchk(&l.words[2..], AT, &mut d);
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/healthz"));
        assert_eq!(r.host.as_deref(), Some("api.example"));
        assert_eq!(d.warning_count(), 0);
    }

    #[test]
    fn http_check_send_expect_connect() {
        let mut d = Diagnostics::default();
        let mut rules = CheckRules {
            option: Some((CheckOption::HttpChk(option_httpchk(&[], AT, &mut d)), 4)),
            ..CheckRules::default()
        };
        http_check(
            &line("http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host k8s.local hdr X-A b"),
            &mut rules,
            AT,
            &mut d,
        );
        http_check(
            &line("http-check expect status 200-204,301"),
            &mut rules,
            AT,
            &mut d,
        );
        http_check(
            &line("http-check connect port 6443 ssl sni api"),
            &mut rules,
            AT,
            &mut d,
        );
        let r = rules.request().expect("request");
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/readyz"));
        assert_eq!(r.host.as_deref(), Some("k8s.local"));
        assert_eq!(
            rules.expect.as_ref().map(|e| e.0.clone()),
            Some(vec![200, 201, 202, 203, 204, 301])
        );
        let c = rules.connect.expect("connect");
        assert_eq!(
            (c.port, c.ssl, c.sni.as_deref()),
            (Some(6443), true, Some("api"))
        );
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("X-A: b"));
    }

    #[test]
    fn unsupported_expectations_warn() {
        let mut d = Diagnostics::default();
        let mut rules = CheckRules::default();
        http_check(&line("http-check expect string ok"), &mut rules, AT, &mut d);
        http_check(
            &line("http-check expect rstatus ^2"),
            &mut rules,
            AT,
            &mut d,
        );
        tcp_check(&line("tcp-check send PING\\r\\n"), &mut rules, AT, &mut d);
        assert_eq!(rules.expect, None);
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 3);
        assert!(warnings[2].message.contains("only connect is checked"));
    }

    #[test]
    fn the_last_check_option_wins_and_says_so() {
        let mut d = Diagnostics::default();
        let mut rules = CheckRules::default();
        let at = |line| Loc {
            file: "h.cfg",
            line,
        };
        let req = option_httpchk(&["GET".into(), "/healthz".into()], at(36), &mut d);
        rules.set_option(CheckOption::HttpChk(req), 35, at(36), &mut d);
        http_check(
            &line("http-check expect status 200"),
            &mut rules,
            at(37),
            &mut d,
        );
        rules.set_option(CheckOption::SslHello, 35, at(39), &mut d);
        assert_eq!(rules.request(), None, "no http check any more");
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].to_string(),
            "h.cfg:39: warning: `option ssl-hello-chk` replaces `option httpchk` (line 36): HAProxy keeps only the last check option, so the servers get a TLS hello check, and its http-check rules (line(s) 37) do nothing; converted as HAProxy runs it"
        );
        // From defaults (a line before the section's): replaced silently.
        let mut d = Diagnostics::default();
        rules.set_option(CheckOption::TcpCheck, 50, at(52), &mut d);
        assert_eq!(d.warning_count(), 0);
    }

    #[test]
    fn status_lists() {
        assert_eq!(status_codes("200"), Some(vec![200]));
        assert_eq!(status_codes("200,302"), Some(vec![200, 302]));
        assert_eq!(status_codes("2xx"), None);
        assert_eq!(status_codes("300-200"), None);
    }
}
