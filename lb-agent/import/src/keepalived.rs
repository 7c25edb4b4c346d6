//! keepalived.conf read into a tree of statements: words separated by blanks,
//! `#` and `!` start comments, "double quotes" group words, `{ }` nest blocks
//! (on the same line or the next). keepalived's own `$NAME=value` definitions are
//! expanded; `include` and `@host` conditionals are reported, not followed.

use std::collections::HashMap;

use super::warning::{Diagnostics, Loc};

/// A statement: its words and, for `name { ... }`, the block's statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub line: usize,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn word(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }

    pub fn text(&self) -> String {
        self.words.join(" ")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    End,
}

/// Splits one line into words and braces; `None` for a comment-only line.
fn line_tokens(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let flush = |out: &mut Vec<Tok>, cur: &mut String, in_word: &mut bool| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => flush(&mut out, &mut cur, &mut in_word),
            '#' | '!' if !in_word => break,
            '{' => {
                flush(&mut out, &mut cur, &mut in_word);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut out, &mut cur, &mut in_word);
                out.push(Tok::Close);
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated \" quote".to_string()),
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(e) = chars.next() {
                                cur.push(e);
                            }
                        }
                        Some(x) => cur.push(x),
                    }
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut out, &mut cur, &mut in_word);
    Ok(out)
}

/// Expands `$NAME` and `${NAME}` from keepalived definitions; `Err(name)` if one
/// is not defined.
fn expand(line: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed, braced) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2, true),
                None => return Err(after.to_string()),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end, false)
            }
        };
        match vars.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            // `${NAME}` undefined: an unrendered placeholder (envsubst style).
            _ if braced => return Err(name.to_string()),
            // `$x` undefined: kept as written (e.g. in a script string).
            _ => {
                out.push('$');
                rest = after;
                continue;
            }
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the whole file into statements.
pub fn parse(text: &str, file: &str, d: &mut Diagnostics) -> Vec<Node> {
    let mut toks: Vec<(usize, Tok)> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let at = Loc { file, line: i + 1 };
        let trimmed = raw.trim_start();
        if let Some(def) = trimmed.strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && !name.contains(char::is_whitespace)
        {
            vars.insert(name.to_string(), value.trim().to_string());
            continue;
        }
        let line = match expand(raw, &vars) {
            Ok(l) => l,
            Err(name) => {
                d.error(
                    at,
                    format!("`${{{name}}}` is not defined: an unrendered placeholder? Render the template (or define it with ${name}=...) first"),
                );
                continue;
            }
        };
        let words = match line_tokens(&line) {
            Ok(w) => w,
            Err(e) => {
                d.error(at, e);
                continue;
            }
        };
        let first = match words.first() {
            Some(Tok::Word(w)) => w.clone(),
            _ => String::new(),
        };
        if matches!(
            first.as_str(),
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
        ) {
            let name = match words.get(1) {
                Some(Tok::Word(w)) => w.clone(),
                _ => String::new(),
            };
            d.error(
                at,
                format!("`{first} {name}`: included files are not read; concatenate them into one file (or render the templated config first) and import that"),
            );
            continue;
        }
        if first.starts_with('@') {
            d.warn(
                at,
                format!("`{}`: a host-conditional line (@host) is not evaluated: skipped; import the config as rendered for this host", line.trim()),
            );
            continue;
        }
        toks.extend(words.into_iter().map(|t| (i + 1, t)));
        toks.push((i + 1, Tok::End));
    }
    let mut pos = 0;
    block(&toks, &mut pos, None, file, d)
}

/// Statements until the `}` closing the block opened at `opened` (or the end).
fn block(
    toks: &[(usize, Tok)],
    pos: &mut usize,
    opened: Option<usize>,
    file: &str,
    d: &mut Diagnostics,
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut cur: Option<Node> = None;
    while let Some((line, tok)) = toks.get(*pos) {
        *pos += 1;
        match tok {
            Tok::Word(w) => cur
                .get_or_insert_with(|| Node {
                    line: *line,
                    words: Vec::new(),
                    block: None,
                })
                .words
                .push(w.clone()),
            Tok::End => nodes.extend(cur.take()),
            Tok::Open => {
                // `name {` or `name` then `{` on the next line.
                let owner = match cur.take() {
                    Some(n) => Some(n),
                    None => match nodes.last() {
                        Some(last) if last.block.is_none() => nodes.pop(),
                        _ => None,
                    },
                };
                let children = block(toks, pos, Some(*line), file, d);
                match owner {
                    Some(mut n) => {
                        n.block = Some(children);
                        nodes.push(n);
                    }
                    None => d.warn(
                        Loc { file, line: *line },
                        "a `{` block with no keyword before it: skipped",
                    ),
                }
            }
            Tok::Close => {
                nodes.extend(cur.take());
                if opened.is_some() {
                    return nodes;
                }
                d.warn(
                    Loc { file, line: *line },
                    "`}` without a block to close: ignored",
                );
            }
        }
    }
    nodes.extend(cur.take());
    if let Some(line) = opened {
        d.error(
            Loc { file, line },
            "this block is never closed (a `}` is missing)",
        );
    }
    nodes
}

/// A keepalived script string split into argv as keepalived does (blanks separate,
/// 'single quotes' group); `None` if it needs a shell (pipes, redirections, ...).
pub fn script_argv(script: &str) -> Option<Vec<String>> {
    if script.contains(['|', '&', ';', '<', '>', '`', '$', '(', ')', '*', '?', '"']) {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in script.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        out.push(cur);
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_nest_with_comments_and_braces_anywhere() {
        let text = "! Configuration File for keepalived\nglobal_defs {\n  router_id LVS_1   # this node\n}\nvrrp_instance VI_1\n{\n  virtual_ipaddress { 10.0.0.5/24 dev eth0 }\n  unicast_peer {\n    10.0.0.2\n  }\n}\n";
        let mut d = Diagnostics::default();
        let nodes = parse(text, "k.conf", &mut d);
        assert!(!d.has_errors(), "{d:?}");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].children()[0].words, ["router_id", "LVS_1"]);
        assert_eq!(nodes[1].line, 5);
        let vi = nodes[1].children();
        assert_eq!(vi[0].children()[0].words, ["10.0.0.5/24", "dev", "eth0"]);
        assert_eq!(vi[1].children()[0].line, 9);
    }

    #[test]
    fn definitions_expand_and_includes_are_errors() {
        let text = "$VIP=10.0.0.5\nvrrp_instance A {\n  virtual_ipaddress {\n    ${VIP}/24\n  }\n}\ninclude /etc/keepalived/conf.d/*.conf\nvrrp_instance B {\n  priority ${PRIO}\n  notify \"/bin/x $y\"\n";
        let mut d = Diagnostics::default();
        let nodes = parse(text, "k.conf", &mut d);
        assert_eq!(nodes[0].children()[0].children()[0].word(0), "10.0.0.5/24");
        let (_, errors) = d.split();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [7, 9, 8], "{errors:#?}");
        assert_eq!(nodes[1].children()[0].words, ["notify", "/bin/x $y"]);
        assert!(errors[0].message.contains("include"));
    }

    #[test]
    fn scripts_split_like_keepalived() {
        assert_eq!(
            script_argv("/etc/keepalived/check.sh 'a b' c"),
            Some(vec![
                "/etc/keepalived/check.sh".into(),
                "a b".into(),
                "c".into()
            ])
        );
        assert_eq!(script_argv("killall -0 haproxy").map(|v| v.len()), Some(3));
        assert_eq!(script_argv("curl -sf http://x/ | grep ok"), None);
        assert_eq!(script_argv("</dev/tcp/127.0.0.1/80"), None);
    }
}
