//! From a key path (`vip[0].backend[1].port`) or a byte offset to a line number, using
//! the spans of a format-preserving parse of the same text.

use toml_edit::{ArrayOfTables, Document, Item, TableLike};

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A key path, printed as `vip[0].backend[1].port`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

impl KeyPath {
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Step::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Step::Index(i));
        p
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Line numbers for a config text.
pub struct Locator<'a> {
    text: &'a str,
    doc: Option<Document<String>>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            doc: Document::parse(text.to_string()).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    /// Line of the deepest part of `path` present in the file (the key itself, else
    /// the table it is missing from); 0 if nothing of it is there.
    pub fn line_of_path(&self, path: &KeyPath) -> usize {
        let Some(doc) = &self.doc else {
            return 0;
        };
        let mut node = Node::Table(doc.as_table());
        let mut best = 0;
        for step in &path.0 {
            let (span, next) = match (step, node) {
                (Step::Key(k), Node::Table(t)) => match t.get_key_value(k) {
                    Some((key, item)) => (key.span().or_else(|| item.span()), Node::of(item)),
                    None => break,
                },
                (Step::Index(n), Node::Tables(a)) => match a.iter().nth(*n) {
                    Some(t) => (t.span(), Node::Table(t)),
                    None => break,
                },
                _ => break,
            };
            if let Some(s) = span {
                best = self.line_of(s.start);
            }
            node = next;
        }
        best
    }
}

impl Locator<'_> {
    /// The key path of the key whose name covers byte `offset` (unknown keys reported
    /// by the parser at a span).
    pub fn path_at(&self, offset: usize) -> Option<KeyPath> {
        let doc = self.doc.as_ref()?;
        find(Node::Table(doc.as_table()), &KeyPath::default(), offset)
    }
}

fn find(node: Node<'_>, at: &KeyPath, offset: usize) -> Option<KeyPath> {
    match node {
        Node::Table(t) => t.iter().find_map(|(k, item)| {
            let here = at.key(k);
            let key_span = t.get_key_value(k).and_then(|(key, _)| key.span());
            if key_span.is_some_and(|s| s.contains(&offset)) {
                return Some(here);
            }
            find(Node::of(item), &here, offset)
        }),
        Node::Tables(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, t)| find(Node::Table(t), &at.index(i), offset)),
        Node::Leaf => None,
    }
}

/// Where a walk down a key path stands.
#[derive(Clone, Copy)]
enum Node<'d> {
    Table(&'d dyn TableLike),
    Tables(&'d ArrayOfTables),
    Leaf,
}

impl<'d> Node<'d> {
    fn of(item: &'d Item) -> Self {
        match item {
            Item::ArrayOfTables(a) => Node::Tables(a),
            other => other.as_table_like().map_or(Node::Leaf, Node::Table),
        }
    }
}
