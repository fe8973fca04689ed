//! Field errors: collected by path, bounded, and rendered in Kong's shapes (nested objects, element
//! positions as arrays, `@entity` as a list) and messages.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How many field errors one validation keeps; later ones are only counted, so a huge invalid document
/// costs memory in proportion to this bound, not to its size.
pub const MAX_FIELD_ERRORS: usize = 100;

/// Validation errors keyed by a dotted field path (`config.introspection_url`): the first
/// [`MAX_FIELD_ERRORS`] kept, the rest counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors {
    errors: BTreeMap<String, String>,
    omitted: usize,
}

impl FieldErrors {
    /// An empty set of errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error for `path`; the first error for a path wins. Past [`MAX_FIELD_ERRORS`] paths the
    /// error is only counted.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self.errors.contains_key(&path) {
            return;
        }
        if self.errors.len() >= MAX_FIELD_ERRORS {
            self.omitted += 1;
            return;
        }
        self.errors.insert(path, message.into());
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.omitted == 0
    }

    /// The message recorded for `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.errors.get(path).map(String::as_str)
    }

    /// True when an error is recorded for `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.errors.contains_key(path)
    }

    /// The recorded errors, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.errors.iter().map(|(p, m)| (p.as_str(), m.as_str()))
    }

    /// How many errors were found beyond the ones kept.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// Moves every error of `other` below `prefix`.
    pub fn merge_under(&mut self, prefix: &str, other: FieldErrors) {
        for (path, message) in other.errors {
            let full = if prefix.is_empty() {
                path
            } else {
                format!("{prefix}.{path}")
            };
            self.add(full, message);
        }
        self.omitted += other.omitted;
    }

    /// `Ok(value)` when no error was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Renders the errors as Kong does: dotted paths as nested objects (`{"config":{"ttl":"…"}}`), an
    /// element's position as an array index (`paths.2` is `{"paths":[null,"…"]}`), and `@entity` as an
    /// array of messages. Paths are nested at most [`MAX_ERROR_DEPTH`] levels; the rest of a longer path
    /// (a client's field name full of dots) stays one key, so a hostile name cannot build a value deep
    /// enough to exhaust the stack. Positions past [`MAX_ERROR_INDEX`] stay object keys.
    pub fn to_json(&self) -> Value {
        let mut root = Value::Object(Map::new());
        for (path, message) in &self.errors {
            let parts: Vec<&str> = path.splitn(MAX_ERROR_DEPTH, '.').collect();
            insert_nested(&mut root, &parts, message);
        }
        root
    }

    /// Kong's message for these errors: `schema violation (name: …)` for one, `2 schema violations (a:
    /// …; b: …)` for several (with `one` and `many` as the names), entity-wide errors first and without a
    /// field name.
    pub fn kong_message(&self, one: &str, many: &str) -> String {
        let entity = self.errors.get(ENTITY).cloned();
        let fields = self
            .errors
            .iter()
            .filter(|(p, _)| p.as_str() != ENTITY)
            .map(|(p, m)| format!("{p}: {m}"));
        let parts: Vec<String> = entity.into_iter().chain(fields).collect();
        let total = parts.len() + self.omitted;
        let mut listed = parts.join("; ");
        if self.omitted > 0 {
            listed.push_str(&format!("; and {} more", self.omitted));
        }
        if total == 1 {
            format!("{one} ({listed})")
        } else {
            format!("{total} {many} ({listed})")
        }
    }

    /// One line naming every field, for log lines and NACK reasons.
    pub fn summary(&self) -> String {
        let mut out = self
            .errors
            .iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        if self.omitted > 0 {
            out.push_str(&format!("; and {} more errors", self.omitted));
        }
        out
    }
}

/// The path of errors about a whole entity rather than one field (Kong's name).
pub const ENTITY: &str = "@entity";

/// How many levels [`FieldErrors::to_json`] nests; entity and plugin fields need far fewer.
pub const MAX_ERROR_DEPTH: usize = 8;

/// The largest element position [`FieldErrors::to_json`] renders as an array index.
pub const MAX_ERROR_INDEX: usize = 1000;

/// An element position (`1` for the first) when `part` is one within [`MAX_ERROR_INDEX`].
fn position(part: &str) -> Option<usize> {
    let n: usize = part
        .parse()
        .ok()
        .filter(|_| part.bytes().all(|b| b.is_ascii_digit()))?;
    // `then`, not `then_some`: `n - 1` must not be computed for 0.
    (1..=MAX_ERROR_INDEX).contains(&n).then(|| n - 1)
}

/// The slot `part` names in `container` (an object key, or an array position), created as `Null`.
/// `None` when a message already stands there or the part does not fit the container's kind: the first
/// error for a path wins.
fn slot<'v>(container: &'v mut Value, part: &str) -> Option<&'v mut Value> {
    match container {
        Value::Object(map) => Some(map.entry(part.to_string()).or_insert(Value::Null)),
        Value::Array(items) => {
            let i = position(part)?;
            if items.len() <= i {
                items.resize(i + 1, Value::Null);
            }
            Some(&mut items[i])
        }
        _ => None,
    }
}

fn insert_nested(mut container: &mut Value, parts: &[&str], message: &str) {
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    for (i, part) in parents.iter().enumerate() {
        let Some(child) = slot(container, part) else {
            return;
        };
        if child.is_null() {
            let next = parts[i + 1];
            *child = if position(next).is_some() {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            };
        }
        if !(child.is_object() || child.is_array()) {
            return;
        }
        container = child;
    }
    if let Some(leaf) = slot(container, last) {
        if leaf.is_null() {
            let text = Value::String(message.to_string());
            *leaf = if *last == ENTITY {
                Value::Array(vec![text])
            } else {
                text
            };
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::error::Error for FieldErrors {}

impl std::ops::Index<&str> for FieldErrors {
    type Output = String;

    /// The message for `path`; panics when there is none (for tests and known paths).
    fn index(&self, path: &str) -> &String {
        self.errors
            .get(path)
            .unwrap_or_else(|| panic!("no error recorded for {path}"))
    }
}
