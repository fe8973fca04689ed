//! A small field-by-field reader over JSON objects that collects Kong-style, per-field errors.
//!
//! Every entity and plugin config is parsed through [`Fields`], so a bad input always names the field
//! and the reason (`{"port": "expected an integer"}`), and unknown fields are rejected.

mod errors;

use crate::keyword::Keyword;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

pub use errors::{FieldErrors, ENTITY, MAX_ERROR_DEPTH, MAX_ERROR_INDEX, MAX_FIELD_ERRORS};

thread_local! {
    static FORM_BODY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `parse` with the coercions a form body needs when `form` is true: every form value is a string,
/// so `"5"` reads as an integer, `"true"` as a boolean and a lone value as a one-element array. JSON and
/// YAML bodies get none of these: a value of the wrong type is an error, as in Kong.
pub fn parsing_form<T>(form: bool, parse: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORM_BODY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORM_BODY.with(|c| c.replace(form)));
    parse()
}

fn form_body() -> bool {
    FORM_BODY.with(|c| c.get())
}

thread_local! {
    static SHAPES: std::cell::RefCell<Option<Vec<(String, Value)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `parse` and returns, beside its result, the shape of every top-level field it read, in Kong's
/// schema terms (`{"type": "integer", "between": [1, 10]}`, `"one_of"`, `"required"`), in reading
/// order. The shapes come from the reads themselves, so they always say what the parser accepts.
pub fn describing<T>(parse: impl FnOnce() -> T) -> (T, Vec<(String, Value)>) {
    struct Restore(Option<Vec<(String, Value)>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SHAPES.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let restore = Restore(SHAPES.with(|s| s.replace(Some(Vec::new()))));
    let out = parse();
    let shapes = SHAPES.with(|s| s.replace(None)).unwrap_or_default();
    drop(restore);
    (out, shapes)
}

/// Reads typed fields out of one JSON object, recording errors under `prefix`.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    seen: BTreeSet<String>,
    prefix: String,
    /// Errors found so far.
    pub errors: FieldErrors,
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, which must be an object; otherwise the error is recorded at `prefix`.
    pub fn new(value: &'a Value, prefix: &str) -> Result<Self, FieldErrors> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                seen: BTreeSet::new(),
                prefix: prefix.to_string(),
                errors: FieldErrors::new(),
            }),
            _ => {
                let mut errors = FieldErrors::new();
                let path = if prefix.is_empty() { ENTITY } else { prefix };
                errors.add(path, "expected a record");
                Err(errors)
            }
        }
    }

    /// The full dotted path of a field.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// Records an error on field `name`.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let path = self.path(name);
        self.errors.add(path, message);
    }

    /// Records the shape of top-level field `name` while [`describing`]; a later shape of the same field
    /// (a wrapper's, which knows more) replaces an earlier one.
    pub fn shape(&self, name: &str, shape: impl FnOnce() -> Value) {
        if !self.prefix.is_empty() {
            return;
        }
        SHAPES.with(|s| {
            if let Some(shapes) = s.borrow_mut().as_mut() {
                let shape = shape();
                match shapes.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = shape,
                    None => shapes.push((name.to_string(), shape)),
                }
            }
        });
    }

    /// The raw value of a field; JSON `null` counts as absent.
    pub fn raw(&mut self, name: &str) -> Option<&'a Value> {
        self.seen.insert(name.to_string());
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// True when the object has the field at all, even as `null` (without marking it read).
    pub fn present(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// True when the object has the field with a non-null value (without marking it read).
    pub fn has(&self, name: &str) -> bool {
        !matches!(self.map.get(name), None | Some(Value::Null))
    }

    /// An optional string.
    pub fn opt_string(&mut self, name: &str) -> Option<String> {
        self.shape(name, || serde_json::json!({"type": "string"}));
        match self.raw(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(name, "expected a string");
                None
            }
        }
    }

    /// A required string.
    pub fn string(&mut self, name: &str) -> Option<String> {
        let v = self.opt_string(name);
        self.shape(
            name,
            || serde_json::json!({"type": "string", "required": true}),
        );
        if v.is_none() && !self.errors.contains(&self.path(name)) {
            self.error(name, "required field missing");
        }
        v
    }

    /// An optional integer within `[min, max]`; numeric strings only in form bodies ([`parsing_form`]).
    pub fn opt_int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        self.shape(
            name,
            || serde_json::json!({"type": "integer", "between": [min, max]}),
        );
        let v = self.raw(name)?;
        let n = match v {
            // JSON has one number type: 5.0 is the integer 5, as JSON Schema reads it.
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Value::String(s) if form_body() => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n < min || n > max => {
                self.error(name, format!("value should be between {min} and {max}"));
                None
            }
            Some(n) => Some(n),
            None => {
                self.error(name, "expected an integer");
                None
            }
        }
    }

    /// An integer with a default.
    pub fn int_or(&mut self, name: &str, min: i64, max: i64, default: i64) -> i64 {
        self.opt_int(name, min, max).unwrap_or(default)
    }

    /// An optional boolean; "true"/"false" strings only in form bodies ([`parsing_form`]).
    pub fn opt_bool(&mut self, name: &str) -> Option<bool> {
        self.shape(name, || serde_json::json!({"type": "boolean"}));
        match self.raw(name)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if form_body() && s == "true" => Some(true),
            Value::String(s) if form_body() && s == "false" => Some(false),
            _ => {
                self.error(name, "expected a boolean");
                None
            }
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&mut self, name: &str, default: bool) -> bool {
        self.opt_bool(name).unwrap_or(default)
    }

    /// An optional array of strings; a single string is one element only in form bodies ([`parsing_form`]).
    pub fn opt_strings(&mut self, name: &str) -> Option<Vec<String>> {
        self.shape(
            name,
            || serde_json::json!({"type": "array", "elements": {"type": "string"}}),
        );
        match self.raw(name)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ => {
                            let path = format!("{}.{}", self.path(name), i + 1);
                            self.errors.add(path, "expected a string");
                        }
                    }
                }
                Some(out)
            }
            Value::String(s) if form_body() => Some(vec![s.clone()]),
            // An empty object is an empty array, as Kong reads `{}` (Lua's JSON has one type for both).
            Value::Object(m) if m.is_empty() => Some(Vec::new()),
            _ => {
                self.error(name, "expected an array");
                None
            }
        }
    }

    /// An array of strings, empty by default.
    pub fn strings(&mut self, name: &str) -> Vec<String> {
        self.opt_strings(name).unwrap_or_default()
    }

    /// An optional map of string to string.
    pub fn opt_string_map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        self.shape(name, || serde_json::json!({"type": "map", "keys": {"type": "string"}, "values": {"type": "string"}}));
        match self.raw(name)? {
            Value::Object(m) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        _ => {
                            let path = format!("{}.{}", self.path(name), k);
                            self.errors.add(path, "expected a string");
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.error(name, "expected a map");
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub fn opt_one_of(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let v = self.opt_string(name);
        self.shape(
            name,
            || serde_json::json!({"type": "string", "one_of": allowed}),
        );
        let v = v?;
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.error(name, format!("expected one of: {}", allowed.join(", ")));
            None
        }
    }

    /// An array whose every element must be one of `allowed`.
    pub fn opt_many_of(&mut self, name: &str, allowed: &[&str]) -> Option<Vec<String>> {
        let v = self.opt_strings(name);
        self.shape(name, || {
            serde_json::json!({"type": "array", "elements": {"type": "string", "one_of": allowed}})
        });
        let v = v?;
        for (i, item) in v.iter().enumerate() {
            if !allowed.contains(&item.as_str()) {
                let path = format!("{}.{}", self.path(name), i + 1);
                self.errors
                    .add(path, format!("expected one of: {}", allowed.join(", ")));
            }
        }
        Some(v)
    }

    /// An optional keyword of `K`.
    pub fn opt_keyword<K: Keyword>(&mut self, name: &str) -> Option<K> {
        self.opt_one_of(name, &K::names())
            .and_then(|v| K::parse(&v))
    }

    /// An optional array of keywords of `K` (an invalid element is an error on `name.N`).
    pub fn opt_keywords<K: Keyword>(&mut self, name: &str) -> Option<Vec<K>> {
        self.opt_many_of(name, &K::names())
            .map(|v| v.iter().filter_map(|s| K::parse(s)).collect())
    }

    /// Records `message` on field `name` unless `ok(value)`.
    pub fn check(&mut self, name: &str, value: &str, ok: fn(&str) -> bool, message: &str) {
        if !ok(value) {
            self.error(name, message);
        }
    }

    /// Records `message` on `name.N` for every element of `values` that is not `ok`.
    pub fn check_each(
        &mut self,
        name: &str,
        values: &[String],
        ok: fn(&str) -> bool,
        message: &str,
    ) {
        for (i, v) in values.iter().enumerate() {
            self.check(&format!("{name}.{}", i + 1), v, ok, message);
        }
    }

    /// Marks a field as known without reading it.
    pub fn ignore(&mut self, name: &str) {
        self.seen.insert(name.to_string());
    }

    /// Records "unknown field" for every field that was not read, and returns the errors.
    pub fn finish(mut self) -> FieldErrors {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.seen.contains(*k))
            .cloned()
            .collect();
        for k in unknown {
            self.error(&k, "unknown field");
        }
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_past_the_bound_are_counted_not_kept() {
        let mut e = FieldErrors::new();
        for i in 0..MAX_FIELD_ERRORS + 250 {
            e.add(format!("services.{i}.host"), "required field missing");
        }
        assert_eq!((e.iter().count(), e.omitted()), (MAX_FIELD_ERRORS, 250));
        assert!(e.summary().ends_with("; and 250 more errors"));
        let mut outer = FieldErrors::new();
        outer.merge_under("x", e);
        assert_eq!(outer.omitted(), 250);
        assert!(!outer.is_empty());
    }

    #[test]
    fn error_rendering_is_bounded_for_hostile_field_names() {
        let name = "a.".repeat(20_000) + "b";
        let body = json!({ name.clone(): 1 });
        let mut f = Fields::new(&body, "config").unwrap();
        f.ignore("other");
        let errors = f.finish();
        // Rendering and serialising happen on a small stack, as on a runtime worker thread.
        let rendered = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || serde_json::to_string(&errors.to_json()).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let v: Value = serde_json::from_str(&rendered).unwrap();
        let mut depth = 0;
        let mut cur = &v;
        while let Value::Object(m) = cur {
            cur = m.values().next().unwrap();
            depth += 1;
        }
        assert_eq!(depth, MAX_ERROR_DEPTH);
        assert_eq!(cur, "unknown field");
    }

    #[test]
    fn collects_typed_and_unknown_field_errors() {
        let v = json!({"port": "abc", "name": 3, "extra": true, "tags": ["a", 1]});
        let mut f = Fields::new(&v, "").unwrap();
        assert_eq!(f.opt_int("port", 0, 65535), None);
        assert_eq!(f.opt_string("name"), None);
        f.strings("tags");
        let errors = f.finish();
        assert_eq!(errors["port"], "expected an integer");
        assert_eq!(errors["name"], "expected a string");
        assert_eq!(errors["extra"], "unknown field");
        assert_eq!(errors["tags.2"], "expected a string");
    }

    #[test]
    fn renders_nested_paths() {
        let mut e = FieldErrors::new();
        e.add("config.ttl", "expected an integer");
        e.add("name", "bad");
        assert_eq!(
            e.to_json(),
            json!({"config": {"ttl": "expected an integer"}, "name": "bad"})
        );
    }

    #[test]
    fn renders_positions_as_arrays_and_entity_errors_as_a_list() {
        let mut e = FieldErrors::new();
        e.add("paths.2", "should start with: /");
        e.add("services.1.routes.3.hosts.1", "invalid");
        e.add(ENTITY, "must set one of 'paths', 'hosts'");
        e.add("consumers.1.@entity", "needs a username");
        e.add("odd.1001", "kept as a key past the bound");
        e.add("zero.0", "position 0 is no position");
        assert_eq!(
            e.to_json(),
            json!({
                "paths": [null, "should start with: /"],
                "services": [{"routes": [null, null, {"hosts": ["invalid"]}]}],
                "@entity": ["must set one of 'paths', 'hosts'"],
                "consumers": [{"@entity": ["needs a username"]}],
                "odd": {"1001": "kept as a key past the bound"},
                "zero": {"0": "position 0 is no position"},
            })
        );
        assert_eq!(
            e.kong_message("schema violation", "schema violations"),
            "6 schema violations (must set one of 'paths', 'hosts'; consumers.1.@entity: needs a username; \
             odd.1001: kept as a key past the bound; paths.2: should start with: /; \
             services.1.routes.3.hosts.1: invalid; zero.0: position 0 is no position)"
        );
        let mut one = FieldErrors::new();
        one.add("port", "expected an integer");
        assert_eq!(
            one.kong_message("schema violation", "schema violations"),
            "schema violation (port: expected an integer)"
        );
    }

    #[test]
    fn range_is_checked() {
        let v = json!({"port": 70000});
        let mut f = Fields::new(&v, "").unwrap();
        assert_eq!(f.opt_int("port", 0, 65535), None);
        assert!(f.finish()["port"].contains("between 0 and 65535"));
    }
}
