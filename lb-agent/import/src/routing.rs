//! HAProxy's routing by name read into name patterns: `acl`s on the TLS server
//! name (`req_ssl_sni`, `req.ssl_sni`) or the HTTP Host (`hdr(host)`,
//! `hdr_dom(host)`, `hdr_end(host)`, `req.hdr(host)`), and the conditions of
//! `use_backend ... if` naming them (`a || b`, `{ inline }`). What a pattern of a
//! routed VIP cannot say (prefixes, regexes, paths, `unless`, `!`, two conditions
//! that must both hold, names read from files) is a reason, for a warning.

use lb_config::names::Pattern;

/// What a rule routes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Sni,
    Host,
}

impl By {
    /// The routed VIP's `route_by`.
    pub fn word(self) -> &'static str {
        match self {
            By::Sni => "sni",
            By::Host => "host",
        }
    }

    /// What it tests, for messages.
    pub fn what(self) -> &'static str {
        match self {
            By::Sni => "TLS server name",
            By::Host => "HTTP Host",
        }
    }
}

/// The names a condition matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub by: By,
    /// Patterns as the config writes them (`app.example.org`, `*.example.org`).
    pub names: Vec<String>,
    /// Where HAProxy's match is wider than the patterns, said for a warning.
    pub caveats: Vec<String>,
}

impl Matcher {
    fn join(mut self, other: Matcher) -> Result<Matcher, String> {
        if self.by != other.by {
            return Err(format!(
                "it tests both the {} and the {}: a routed VIP routes by one of them",
                self.by.what(),
                other.by.what()
            ));
        }
        for n in other.names {
            if !self.names.contains(&n) {
                self.names.push(n);
            }
        }
        self.caveats.extend(other.caveats);
        Ok(self)
    }
}

/// One `acl NAME ...` line of a section (several lines of one name are ORed).
#[derive(Clone, Debug)]
pub struct Acl {
    pub name: String,
    pub line: usize,
    /// The words after the name: fetch, flags, values.
    pub words: Vec<String>,
}

/// A `use_backend NAME if|unless CONDITION` line.
#[derive(Clone, Debug)]
pub struct Rule {
    pub backend: String,
    pub line: usize,
    pub text: String,
    pub unless: bool,
    pub condition: Vec<String>,
}

/// How HAProxy compares a sample with the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Str,
    End,
    Dom,
    Other,
}

/// An acl's fetch, flags and values (`req.ssl_sni -i a.lan b.lan`) read into the
/// names it matches.
pub fn matcher(words: &[String]) -> Result<Matcher, String> {
    let Some(fetch) = words.first() else {
        return Err("no fetch".into());
    };
    let (by, mut mode) = fetch_of(fetch)?;
    let mut values = Vec::new();
    let mut i = 1;
    let mut flags = true;
    while i < words.len() {
        let w = words[i].as_str();
        if flags && w.starts_with('-') {
            match w {
                "-i" | "-n" | "-M" => {}
                "--" => flags = false,
                "-m" => {
                    i += 1;
                    mode = match words.get(i).map(String::as_str) {
                        Some("str") => Mode::Str,
                        Some("end") => Mode::End,
                        Some("dom") => Mode::Dom,
                        Some(m) => {
                            return Err(format!(
                                "`-m {m}`: a routed VIP matches whole names and domains (`-m str`, `-m end`, `-m dom`)"
                            ));
                        }
                        None => return Err("`-m` without its method".into()),
                    };
                }
                "-u" => i += 1,
                "-f" => {
                    return Err(format!(
                        "`-f {}`: names read from a file are not converted: list them in the config",
                        words.get(i + 1).map_or("", String::as_str)
                    ));
                }
                other => return Err(format!("the flag `{other}` is not converted")),
            }
        } else {
            values.push(w);
        }
        i += 1;
    }
    if mode == Mode::Other {
        return Err(format!(
            "`{fetch}` matches by prefix, substring or pattern: a routed VIP matches whole names and domains"
        ));
    }
    if values.is_empty() {
        return Err(format!("`{fetch}` with no names to match"));
    }
    let mut m = Matcher {
        by,
        names: Vec::new(),
        caveats: Vec::new(),
    };
    for v in values {
        // A Host may carry a port; routing ignores it.
        let v = match by {
            By::Host => strip_port(v),
            By::Sni => v,
        };
        let bare = v.trim_start_matches('.');
        let forms: Vec<String> = match mode {
            Mode::Str => vec![v.to_string()],
            Mode::End if v.starts_with('.') => vec![format!("*.{bare}")],
            Mode::End => {
                m.caveats.push(format!(
                    "`-m end {v}` also matches names merely ending in \"{v}\" (as \"my{v}\"): converted to {v} and *.{v}"
                ));
                vec![v.to_string(), format!("*.{v}")]
            }
            Mode::Dom | Mode::Other => vec![bare.to_string(), format!("*.{bare}")],
        };
        for f in forms {
            let p = Pattern::parse(&f).map_err(|e| format!("{e}: not a name to route"))?;
            let written = p.to_string();
            if !m.names.contains(&written) {
                m.names.push(written);
            }
        }
    }
    Ok(m)
}

/// `host:port` or `[v6]:port` without the port.
fn strip_port(v: &str) -> &str {
    match v.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => v,
    }
}

/// What a fetch (with its converters) samples, and its match method by default.
fn fetch_of(fetch: &str) -> Result<(By, Mode), String> {
    let mut parts = top_level(fetch, ',').into_iter();
    let base = parts.next().unwrap_or_default();
    for conv in parts {
        let name = conv.split('(').next().unwrap_or_default();
        if !matches!(name, "lower" | "host_only" | "field") {
            return Err(format!(
                "the converter `{conv}` is not converted: a routed VIP compares names as they are, ignoring case and a port"
            ));
        }
    }
    let (name, arg) = match base.split_once('(') {
        Some((n, rest)) => (n, rest.trim_end_matches(')')),
        None => (base, ""),
    };
    match name {
        "req_ssl_sni" | "req.ssl_sni" => return Ok((By::Sni, Mode::Str)),
        "ssl_fc_sni" | "ssl_fc_sni_end" | "ssl_fc_sni_reg" | "ssl_sni" => {
            return Err(format!(
                "`{base}` is the server name of TLS HAProxy terminates (`bind ... ssl crt`); lb-agent does not terminate TLS: route by req.ssl_sni in a mode tcp frontend"
            ));
        }
        _ => {}
    }
    let header = top_level(arg, ',').first().copied().unwrap_or_default();
    let mode = match name {
        "hdr" | "req.hdr" | "req.fhdr" | "hdr_str" => Mode::Str,
        "hdr_end" => Mode::End,
        "hdr_dom" => Mode::Dom,
        "hdr_beg" | "hdr_sub" | "hdr_reg" | "hdr_dir" | "hdr_len" | "hdr_cnt" | "hdr_val"
        | "hdr_found" => Mode::Other,
        "base" | "base_beg" | "base_dom" | "base_end" | "base_reg" | "base_sub" | "path"
        | "path_beg" | "path_dir" | "path_end" | "path_reg" | "path_sub" | "path_len" | "url"
        | "url_beg" | "url_reg" | "url_sub" | "url_param" => {
            return Err(format!(
                "`{base}` routes by the request's path or URL; a routed VIP routes a connection by its Host only"
            ));
        }
        _ => {
            return Err(format!(
                "`{base}` is not a TLS server name or HTTP Host: a routed VIP routes by those only"
            ));
        }
    };
    if !header.eq_ignore_ascii_case("host") {
        return Err(format!(
            "`{base}` tests the {header} header; a routed VIP routes by the Host header only"
        ));
    }
    Ok((By::Host, mode))
}

/// `s` split at `sep` outside parentheses.
fn top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// One term of a condition.
enum Term<'a> {
    Named(&'a str),
    Inline(&'a [String]),
}

/// The names a rule's condition matches, from the section's acls.
pub fn rule_matcher(rule: &Rule, acls: &[Acl]) -> Result<Matcher, String> {
    if rule.unless {
        return Err("`unless` (routing what does not match) is not converted".into());
    }
    let mut alternatives: Vec<Vec<Term<'_>>> = vec![Vec::new()];
    let c = &rule.condition;
    let mut i = 0;
    while i < c.len() {
        match c[i].as_str() {
            "||" | "or" => alternatives.push(Vec::new()),
            "{" => {
                let Some(end) = c[i..].iter().position(|w| w == "}") else {
                    return Err("an inline acl `{` without its `}`".into());
                };
                if let Some(last) = alternatives.last_mut() {
                    last.push(Term::Inline(&c[i + 1..i + end]));
                }
                i += end;
            }
            w if w.starts_with('!') => {
                return Err(format!("`{w}` (what does not match) is not converted"));
            }
            w => {
                if let Some(last) = alternatives.last_mut() {
                    last.push(Term::Named(w));
                }
            }
        }
        i += 1;
    }
    let mut out: Option<Matcher> = None;
    for terms in alternatives {
        let m = match terms.as_slice() {
            [] => return Err("an empty condition".into()),
            [Term::Inline(words)] => matcher(words)?,
            [Term::Named(name)] => named(name, acls)?,
            _ => {
                return Err(
                    "two conditions that must both hold: a routed VIP routes by the name alone"
                        .into(),
                );
            }
        };
        out = Some(match out {
            None => m,
            Some(prev) => prev.join(m)?,
        });
    }
    out.ok_or_else(|| "an empty condition".into())
}

/// The acl lines of `name`, ORed.
fn named(name: &str, acls: &[Acl]) -> Result<Matcher, String> {
    let mut out: Option<Matcher> = None;
    for a in acls.iter().filter(|a| a.name == name) {
        let m = matcher(&a.words).map_err(|e| format!("acl {name} (line {}): {e}", a.line))?;
        out = Some(match out {
            None => m,
            Some(prev) => prev.join(m)?,
        });
    }
    out.ok_or_else(|| format!("no acl {name} in this section"))
}

/// Whether a `tcp-request content accept if ...` condition only waits for a TLS
/// ClientHello or an HTTP request (what a routed VIP waits for anyway).
pub fn waits_for_hello(condition: &[String], acls: &[Acl]) -> bool {
    let hello = |words: &[String]| {
        words.first().is_some_and(|f| {
            matches!(
                f.as_str(),
                "req_ssl_hello_type" | "req.ssl_hello_type" | "HTTP"
            )
        })
    };
    match condition.first().map(String::as_str) {
        Some("{") => hello(&condition[1..]),
        Some("HTTP") => condition.len() == 1,
        Some(name) => {
            let lines: Vec<&Acl> = acls.iter().filter(|a| a.name == name).collect();
            condition.len() == 1 && !lines.is_empty() && lines.iter().all(|a| hello(&a.words))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn names(s: &str) -> Result<(By, Vec<String>), String> {
        matcher(&w(s)).map(|m| (m.by, m.names))
    }

    #[test]
    fn sni_and_host_fetches_read_into_patterns() {
        assert_eq!(
            names("req_ssl_sni -i a.example.org B.example.org"),
            Ok((
                By::Sni,
                vec!["a.example.org".into(), "b.example.org".into()]
            ))
        );
        assert_eq!(
            names("req.ssl_sni,lower -m end .k8s.lan"),
            Ok((By::Sni, vec!["*.k8s.lan".into()]))
        );
        assert_eq!(
            names("req.ssl_sni -m dom example.org"),
            Ok((By::Sni, vec!["example.org".into(), "*.example.org".into()]))
        );
        assert_eq!(
            names("hdr(host) -i app.lan app.lan:8080"),
            Ok((By::Host, vec!["app.lan".into()]))
        );
        assert_eq!(
            names("hdr_dom(Host) -i lan"),
            Ok((By::Host, vec!["lan".into(), "*.lan".into()]))
        );
        assert_eq!(
            names("req.hdr(host),field(1,:) -m end .lan"),
            Ok((By::Host, vec!["*.lan".into()]))
        );
        let m = matcher(&w("hdr_end(host) -i example.org")).expect("end");
        assert_eq!(m.names, ["example.org", "*.example.org"]);
        assert!(m.caveats[0].contains("myexample.org"), "{:?}", m.caveats);
    }

    #[test]
    fn what_a_pattern_cannot_say_is_a_reason() {
        for (acl, why) in [
            ("hdr_beg(host) -i app.", "prefix"),
            ("req.ssl_sni -m reg ^a", "-m reg"),
            ("req.ssl_sni -i -f /etc/haproxy/sni.lst", "from a file"),
            ("path_beg /api", "path or URL"),
            ("hdr(x-tenant) a", "x-tenant header"),
            ("ssl_fc_sni -i a.lan", "does not terminate TLS"),
            ("src 10.0.0.0/8", "not a TLS server name or HTTP Host"),
            ("req.ssl_sni,regsub(a,b) x", "converter"),
            ("req.ssl_sni -i", "no names"),
            ("req.ssl_sni -i bad*name.lan", "not a name to route"),
        ] {
            let e = matcher(&w(acl)).expect_err(acl);
            assert!(e.contains(why), "{acl}: {e}");
        }
    }

    fn rule(cond: &str) -> Rule {
        Rule {
            backend: "b".into(),
            line: 9,
            text: format!("use_backend b if {cond}"),
            unless: false,
            condition: w(cond),
        }
    }

    #[test]
    fn conditions_or_acls_and_inline_terms() {
        let acls = vec![
            Acl {
                name: "is_a".into(),
                line: 3,
                words: w("req.ssl_sni -i a.lan"),
            },
            Acl {
                name: "is_a".into(),
                line: 4,
                words: w("req.ssl_sni -m end .a.lan"),
            },
            Acl {
                name: "is_host".into(),
                line: 5,
                words: w("hdr(host) -i h.lan"),
            },
            Acl {
                name: "bad".into(),
                line: 6,
                words: w("path_beg /x"),
            },
        ];
        let m = rule_matcher(&rule("is_a || { req_ssl_sni -i b.lan }"), &acls).expect("or");
        assert_eq!(m.names, ["a.lan", "*.a.lan", "b.lan"]);
        let m = rule_matcher(&rule("is_a or is_a"), &acls).expect("or");
        assert_eq!(m.names, ["a.lan", "*.a.lan"]);
        for (cond, why) in [
            ("is_a is_host", "both hold"),
            ("!is_a", "does not match"),
            (
                "is_a || is_host",
                "both the TLS server name and the HTTP Host",
            ),
            ("bad", "acl bad (line 6)"),
            ("nope", "no acl nope"),
            ("{ req.ssl_sni -i a", "without its `}`"),
        ] {
            let e = rule_matcher(&rule(cond), &acls).expect_err(cond);
            assert!(e.contains(why), "{cond}: {e}");
        }
        let mut unless = rule("is_a");
        unless.unless = true;
        assert!(rule_matcher(&unless, &acls).is_err());
    }

    #[test]
    fn accept_rules_that_wait_for_a_hello() {
        let acls = vec![Acl {
            name: "tls".into(),
            line: 2,
            words: w("req.ssl_hello_type 1"),
        }];
        assert!(waits_for_hello(&w("{ req_ssl_hello_type 1 }"), &acls));
        assert!(waits_for_hello(&w("tls"), &acls));
        assert!(waits_for_hello(&w("HTTP"), &acls));
        assert!(!waits_for_hello(&w("{ src 10.0.0.0/8 }"), &acls));
        assert!(!waits_for_hello(&w("other"), &acls));
    }
}
