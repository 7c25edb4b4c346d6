//! Server names in routing rules: a pattern is an exact name (`app.example.org`) or a
//! wildcard (`*.example.org`: any name ending in `.example.org`, not the bare domain),
//! case insensitive. The agent's proxy (`proxy/names.rs`) looks names up in them.

/// One name pattern of a routing rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    Exact(String),
    /// The suffix with its leading dot (`.example.org` for `*.example.org`).
    Suffix(String),
}

impl Pattern {
    /// Reads `name` or `*.domain`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (wild, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if name.contains('*') {
            return Err(format!(
                "{s:?}: a wildcard is only allowed as the whole first label (\"*.example.org\")"
            ));
        }
        match host_name(name.as_bytes()) {
            Some(n) if !n.is_empty() && !n.starts_with('.') && !n.contains("..") => Ok(if wild {
                Pattern::Suffix(format!(".{n}"))
            } else {
                Pattern::Exact(n)
            }),
            _ => Err(format!("{s:?} is not a host name")),
        }
    }

    /// Whether `name` (lowercase, as the parsers give it) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(n) => n == name,
            Pattern::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// A DNS host name as ASCII letters, digits, hyphens, underscores and dots,
/// lowercased, without a trailing dot; `None` for anything else.
pub fn host_name(raw: &[u8]) -> Option<String> {
    if raw.len() > 253 + 1 {
        return None;
    }
    let ok = raw
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?.to_ascii_lowercase();
    Some(s.strip_suffix('.').unwrap_or(&s).to_string())
}
