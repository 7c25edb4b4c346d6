//! What the import says about its inputs: warnings (something in the input this
//! config does not express) and errors (something that stops the import), each with
//! the input file and line.

use std::{collections::HashMap, fmt};

/// Where in an input a directive is: the file as given on the command line, 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc<'a> {
    pub file: &'a str,
    pub line: usize,
}

impl<'a> Loc<'a> {
    pub fn at(self, line: usize) -> Loc<'a> {
        Loc { line, ..self }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One warning or error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The input file as given; `None` for a problem of the import as a whole (e.g. a
    /// value no input gives and no flag supplied).
    pub file: Option<String>,
    /// 1-based; 0 when `file` is `None`.
    pub line: usize,
    pub message: String,
    /// Further lines with the same directive, grouped into this one warning
    /// (logging and other cosmetic directives).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_lines: Vec<usize>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.file {
            Some(file) => write!(f, "{file}:{}: {severity}: {}", self.line, self.message)?,
            None => write!(f, "{severity}: {}", self.message)?,
        }
        if !self.also_lines.is_empty() {
            let lines: Vec<String> = self.also_lines.iter().map(ToString::to_string).collect();
            write!(f, " (also at line(s) {})", lines.join(", "))?;
        }
        Ok(())
    }
}

/// Collects diagnostics in the order found.
#[derive(Clone, Default, Debug)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// (file, group key) -> index of the warning later lines are added to.
    groups: HashMap<(String, String), usize>,
}

impl Diagnostics {
    fn push(&mut self, severity: Severity, at: Option<Loc<'_>>, message: String) -> usize {
        // The same thing said twice (a vrrp_script tracked by two instances).
        if let Some(i) = self.items.iter().position(|d| {
            d.severity == severity
                && d.file.as_deref() == at.map(|l| l.file)
                && d.line == at.map_or(0, |l| l.line)
                && d.message == message
        }) {
            return i;
        }
        self.items.push(Diagnostic {
            severity,
            file: at.map(|l| l.file.to_string()),
            line: at.map_or(0, |l| l.line),
            message,
            also_lines: Vec::new(),
        });
        self.items.len() - 1
    }

    pub fn warn(&mut self, at: Loc<'_>, message: impl Into<String>) {
        self.push(Severity::Warning, Some(at), message.into());
    }

    pub fn error(&mut self, at: Loc<'_>, message: impl Into<String>) {
        self.push(Severity::Error, Some(at), message.into());
    }

    /// An error of the import as a whole (no input line to point at).
    pub fn error_global(&mut self, message: impl Into<String>) {
        self.push(Severity::Error, None, message.into());
    }

    /// A warning for a cosmetic directive: one per `group` and file, later
    /// occurrences only add their line to it.
    pub fn warn_grouped(&mut self, group: &str, at: Loc<'_>, message: impl Into<String>) {
        let key = (at.file.to_string(), group.to_string());
        if let Some(&i) = self.groups.get(&key) {
            if let Some(d) = self.items.get_mut(i) {
                d.also_lines.push(at.line);
            }
            return;
        }
        let i = self.push(Severity::Warning, Some(at), message.into());
        self.groups.insert(key, i);
    }

    /// Takes in what `other` collected (held back until it was known to apply).
    pub fn absorb(&mut self, other: Diagnostics) {
        let mut groups: Vec<(&(String, String), &usize)> = other.groups.iter().collect();
        groups.sort_by_key(|(_, i)| **i);
        let grouped: HashMap<usize, &str> = groups
            .into_iter()
            .map(|((_, g), i)| (*i, g.as_str()))
            .collect();
        for (i, item) in other.items.iter().enumerate() {
            let Some(file) = item.file.as_deref() else {
                self.push(item.severity, None, item.message.clone());
                continue;
            };
            let at = Loc {
                file,
                line: item.line,
            };
            match grouped.get(&i) {
                Some(group) => {
                    self.warn_grouped(group, at, item.message.clone());
                    for &line in &item.also_lines {
                        self.warn_grouped(group, at.at(line), item.message.clone());
                    }
                }
                None => {
                    self.push(item.severity, Some(at), item.message.clone());
                }
            }
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn warning_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// (warnings, errors), each in the order found.
    pub fn split(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        self.items
            .into_iter()
            .partition(|d| d.severity == Severity::Warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_warnings_collect_their_lines() {
        let mut d = Diagnostics::default();
        let at = Loc {
            file: "haproxy.cfg",
            line: 3,
        };
        d.warn_grouped("log", at, "`log` not converted");
        d.warn(at.at(4), "other");
        d.warn_grouped("log", at.at(9), "`log` not converted");
        d.warn_grouped("log", at.at(12), "`log` not converted");
        let (warnings, errors) = d.split();
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].also_lines, vec![9, 12]);
        assert_eq!(
            warnings[0].to_string(),
            "haproxy.cfg:3: warning: `log` not converted (also at line(s) 9, 12)"
        );
    }

    #[test]
    fn absorbed_warnings_keep_their_groups() {
        let at = Loc {
            file: "haproxy.cfg",
            line: 3,
        };
        let mut d = Diagnostics::default();
        d.warn_grouped("log", at, "`log` not converted");
        let mut held = Diagnostics::default();
        held.warn_grouped("log", at.at(7), "`log` not converted");
        held.warn_grouped("log", at.at(8), "`log` not converted");
        held.warn(at.at(9), "http-request");
        d.absorb(held);
        let (warnings, _) = d.split();
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].also_lines, vec![7, 8]);
        assert_eq!(warnings[1].line, 9);
    }

    #[test]
    fn a_global_error_has_no_location() {
        let mut d = Diagnostics::default();
        d.error_global("pass --interface IF");
        assert!(d.has_errors());
        let (_, errors) = d.split();
        assert_eq!(errors[0].to_string(), "error: pass --interface IF");
    }
}
