//! haproxy.cfg read into sections of tokenized lines, as HAProxy splits them:
//! words separated by blanks, `#` starts a comment, "double" and 'single' quotes,
//! backslash escapes. What the directives mean is `proxy.rs`'s business.

use std::time::Duration;

use super::warning::{Diagnostics, Loc};

/// One directive: its line and its words (quotes and escapes resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub words: Vec<String>,
}

impl Line {
    pub fn word(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }

    /// The directive as written (words joined), for messages.
    pub fn text(&self) -> String {
        self.words.join(" ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
    /// userlist, peers, resolvers, mailers, program, cache, ring, ...: never converted.
    Other(String),
}

impl SectionKind {
    fn from_word(w: &str) -> Option<SectionKind> {
        Some(match w {
            "global" => SectionKind::Global,
            "defaults" => SectionKind::Defaults,
            "frontend" => SectionKind::Frontend,
            "backend" => SectionKind::Backend,
            "listen" => SectionKind::Listen,
            "userlist" | "peers" | "resolvers" | "mailers" | "program" | "http-errors" | "ring"
            | "cache" | "crt-store" | "traces" | "log-forward" | "fcgi-app" | "acme"
            | "dynamic-update" => SectionKind::Other(w.to_string()),
            _ => return None,
        })
    }

    pub fn word(&self) -> &str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
            SectionKind::Other(w) => w,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub name: Option<String>,
    /// `defaults` section named by `from NAME`.
    pub from: Option<String>,
    /// The header's line.
    pub line: usize,
    /// The last directive's line (the header's if none).
    pub end_line: usize,
    pub lines: Vec<Line>,
}

impl Section {
    /// "frontend apiserver", "defaults", ...
    pub fn title(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {n}", self.kind.word()),
            None => self.kind.word().to_string(),
        }
    }
}

/// Splits `text` into sections. Problems that make a line unreadable (unterminated
/// quote, an environment variable) are errors; directives outside any section are
/// warned about.
pub fn parse(text: &str, file: &str, d: &mut Diagnostics) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = Loc { file, line: i + 1 };
        let words = match words(raw) {
            Ok(w) => w,
            Err(e) => {
                d.error(at, e);
                continue;
            }
        };
        if let Some(w) = words.iter().find(|w| w.contains("${")) {
            d.error(
                at,
                format!("`{w}` holds an environment variable or unrendered placeholder: import does not expand them; substitute the value first"),
            );
            continue;
        }
        let Some(first) = words.first() else {
            continue;
        };
        if let Some(kind) = SectionKind::from_word(first) {
            let mut name = words.get(1).cloned();
            let mut from = None;
            let mut rest = words.iter().skip(2);
            if name.as_deref() == Some("from") {
                from = words.get(2).cloned();
                name = None;
                rest = words.iter().skip(3);
            }
            let mut header_lines = Vec::new();
            while let Some(w) = rest.next() {
                if w == "from" {
                    from = rest.next().cloned();
                } else {
                    // `listen NAME ADDR:PORT`: the old form of a bind on the header.
                    header_lines.push(Line {
                        number: i + 1,
                        words: vec!["bind".to_string(), w.clone()],
                    });
                }
            }
            sections.push(Section {
                kind,
                name,
                from,
                line: i + 1,
                end_line: i + 1,
                lines: header_lines,
            });
            continue;
        }
        match sections.last_mut() {
            Some(s) => {
                s.end_line = i + 1;
                s.lines.push(Line {
                    number: i + 1,
                    words,
                });
            }
            None => d.warn(
                at,
                format!(
                    "`{}` is outside any section: ignored (HAProxy refuses it too)",
                    words.join(" ")
                ),
            ),
        }
    }
    sections
}

/// HAProxy's word splitting of one line.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' => break,
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {quote} quote")),
                        Some(q) if q == quote => break,
                        Some('\\') if quote == '"' => match chars.next() {
                            Some(e) => cur.push(unescape(e)),
                            None => return Err("unterminated \" quote".to_string()),
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(unescape(e)),
                    None => cur.push('\\'),
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn unescape(c: char) -> char {
    match c {
        'r' => '\r',
        'n' => '\n',
        't' => '\t',
        other => other,
    }
}

/// An HAProxy time: a number with an optional unit (us, ms, s, m, h, d); no unit
/// means milliseconds.
pub fn time(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    Some(match unit {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_haproxy_quoting() {
        assert_eq!(
            words("  server s1 10.0.0.1:80 check   # the first").expect("words"),
            ["server", "s1", "10.0.0.1:80", "check"]
        );
        assert_eq!(
            words(r#"option httpchk GET /healthz HTTP/1.1\r\nHost:\ api.example"#).expect("words"),
            [
                "option",
                "httpchk",
                "GET",
                "/healthz",
                "HTTP/1.1\r\nHost: api.example"
            ]
        );
        assert_eq!(
            words(r#"stats auth "admin:pa ss" 'a#b'"#).expect("words"),
            ["stats", "auth", "admin:pa ss", "a#b"]
        );
        assert!(words("errorfile 503 \"/x").is_err());
    }

    #[test]
    fn sections_keep_their_lines() {
        let mut d = Diagnostics::default();
        let text = "global\n  daemon\n\ndefaults\n  mode tcp\nlisten k8s :6443\n  server a 10.0.0.1:6443\nbackend b from named\n";
        let s = parse(text, "haproxy.cfg", &mut d);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].kind, SectionKind::Global);
        assert_eq!(s[1].lines[0].number, 5);
        assert_eq!(s[2].title(), "listen k8s");
        assert_eq!(s[2].lines[0].words, ["bind", ":6443"]);
        assert_eq!(s[2].end_line, 7);
        assert_eq!(s[3].from.as_deref(), Some("named"));
        assert!(!d.has_errors());
    }

    #[test]
    fn environment_variables_are_errors() {
        let mut d = Diagnostics::default();
        parse("frontend f\n  bind \"*:${PORT}\"\n", "h.cfg", &mut d);
        let (_, errors) = d.split();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("${PORT}"), "{}", errors[0]);
    }

    #[test]
    fn times_default_to_milliseconds() {
        assert_eq!(time("2000"), Some(Duration::from_secs(2)));
        assert_eq!(time("3s"), Some(Duration::from_secs(3)));
        assert_eq!(time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(time("1m"), Some(Duration::from_secs(60)));
        assert_eq!(time("5x"), None);
        assert_eq!(time("s"), None);
    }
}
