//! Which pool a server name goes to: exact names (`app.example.org`) and wildcards
//! (`*.example.org`: any name ending in `.example.org`, not the bare domain), case
//! insensitive. An exact name wins over a wildcard, a longer wildcard over a
//! shorter one, whatever the order of the rules.

use std::collections::HashMap;

pub use lb_config::names::Pattern;

/// Name patterns to a value (a pool), looked up by name.
#[derive(Clone, Debug, Default)]
pub struct Routes<T> {
    exact: HashMap<String, T>,
    /// Longest suffix first.
    suffixes: Vec<(String, T)>,
}

impl<T: Clone> Routes<T> {
    /// The table of `rules`; a pattern given twice is an error naming it.
    pub fn new(rules: impl IntoIterator<Item = (Pattern, T)>) -> Result<Self, String> {
        let mut out = Self {
            exact: HashMap::new(),
            suffixes: Vec::new(),
        };
        for (p, v) in rules {
            let dup = match &p {
                Pattern::Exact(n) => out.exact.insert(n.clone(), v).is_some(),
                Pattern::Suffix(s) => {
                    let dup = out.suffixes.iter().any(|(x, _)| x == s);
                    out.suffixes.push((s.clone(), v));
                    dup
                }
            };
            if dup {
                return Err(format!("{p} is routed twice"));
            }
        }
        out.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(out)
    }

    /// The value for `name`, if a rule matches.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.exact.get(name).or_else(|| {
            self.suffixes
                .iter()
                .find(|(s, _)| name.len() > s.len() && name.ends_with(s.as_str()))
                .map(|(_, v)| v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_and_match() {
        let w = Pattern::parse("*.Example.org").expect("wildcard");
        assert_eq!(w, Pattern::Suffix(".example.org".into()));
        assert!(w.matches("a.example.org") && w.matches("a.b.example.org"));
        assert!(!w.matches("example.org") && !w.matches("aexample.org"));
        assert_eq!(w.to_string(), "*.example.org");
        assert_eq!(
            Pattern::parse("App.lan."),
            Ok(Pattern::Exact("app.lan".into()))
        );
        for bad in ["*", "a.*.org", "*example.org", "a b", "", "*.", "a..b"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_beats_wildcard_and_longer_beats_shorter() {
        let p = |s| Pattern::parse(s).expect("pattern");
        let r = Routes::new([
            (p("*.example.org"), "wide"),
            (p("*.k8s.example.org"), "narrow"),
            (p("api.k8s.example.org"), "exact"),
        ])
        .expect("routes");
        assert_eq!(r.get("api.k8s.example.org"), Some(&"exact"));
        assert_eq!(r.get("web.k8s.example.org"), Some(&"narrow"));
        assert_eq!(r.get("www.example.org"), Some(&"wide"));
        assert_eq!(r.get("example.org"), None);
        let dup = Routes::new([(p("a.lan"), 1), (p("A.lan"), 2)]).expect_err("duplicate");
        assert!(dup.contains("a.lan is routed twice"), "{dup}");
    }
}
