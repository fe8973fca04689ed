//! Entity forms generated from the Admin API's `/schemas` answers: each field's input chosen by its type,
//! the submitted form turned back into the JSON body the Admin API takes, and the API's `fields` errors
//! placed beside the inputs they name.
//!
//! Secret fields (`encrypted` in the schema) are write-only: their inputs are never filled, an empty one
//! leaves the stored value as it is, and a value typed into one is never rendered back, not even after a
//! validation error.

use std::collections::{BTreeMap, HashMap};

use maud::{html, Markup};
use serde_json::{Map, Value};

use super::form::Form;

/// One field of an entity, typed from its schema.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    pub required: bool,
    pub default: Option<Value>,
    /// Write-only (a client secret, a private key).
    pub secret: bool,
    /// The values the field may take, when the schema lists them.
    pub one_of: Vec<String>,
}

/// How a field is entered.
#[derive(Debug, Clone)]
pub enum FieldKind {
    Text,
    /// A PEM block or other long text.
    LongText,
    Integer,
    Number,
    Boolean,
    /// Scalars, one per line.
    List(Box<FieldKind>),
    /// The id of an entity of this collection.
    Foreign(String),
    Record(Vec<FieldSpec>),
    /// Anything else, entered as JSON.
    Json,
}

/// Entities of the referenced collections a form may pick from: collection → (id, label).
pub type References = HashMap<String, Vec<(String, String)>>;

/// Field errors by dotted path.
pub type Errors = BTreeMap<String, String>;

/// The fields of a Kong schema (`{"fields": [{"name": {...}}, …]}`), without the ones the Admin API
/// makes itself (`id`, timestamps) and without `skip`.
pub fn parse_fields(schema: &Value, skip: &[&str]) -> Vec<FieldSpec> {
    let mut fields: Vec<FieldSpec> = schema["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|f| f.iter().next())
        .filter(|(name, spec)| spec["auto"] != true && !skip.contains(&name.as_str()))
        .map(|(name, spec)| field(name, spec))
        .collect();
    // What names the entity first, then what must be given, then the rest in the schema's order.
    fields.sort_by_key(|f| match f.name.as_str() {
        "name" | "username" => 0,
        _ if f.required => 1,
        _ => 2,
    });
    fields
}

fn field(name: &str, spec: &Value) -> FieldSpec {
    FieldSpec {
        name: name.to_string(),
        kind: kind_of(name, spec),
        required: spec["required"] == true,
        default: spec.get("default").filter(|d| !d.is_null()).cloned(),
        secret: spec["encrypted"] == true,
        one_of: spec["one_of"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
    }
}

fn kind_of(name: &str, spec: &Value) -> FieldKind {
    match spec["type"].as_str().unwrap_or_default() {
        "string" if matches!(name, "cert" | "key" | "cert_alt" | "key_alt") => FieldKind::LongText,
        "string" => FieldKind::Text,
        "integer" => FieldKind::Integer,
        "number" => FieldKind::Number,
        "boolean" => FieldKind::Boolean,
        "foreign" => FieldKind::Foreign(spec["reference"].as_str().unwrap_or_default().into()),
        "record" if spec["fields"].is_array() => FieldKind::Record(parse_fields(spec, &[])),
        "array" | "set" => match kind_of("", &spec["elements"]) {
            k @ (FieldKind::Text | FieldKind::Integer | FieldKind::Number) => {
                FieldKind::List(Box::new(k))
            }
            _ => FieldKind::Json,
        },
        _ => FieldKind::Json,
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn input_id(path: &str) -> String {
    format!("f-{}", path.replace(['.', '@'], "-"))
}

/// The inputs of `fields`, filled from `values` (what is stored, or what was just submitted).
pub fn inputs(
    fields: &[FieldSpec],
    prefix: &str,
    values: &Value,
    errors: &Errors,
    refs: &References,
) -> Markup {
    html! {
        @for f in fields {
            (input(f, &join(prefix, &f.name), &values[&f.name], errors, refs))
        }
    }
}

fn input(f: &FieldSpec, path: &str, value: &Value, errors: &Errors, refs: &References) -> Markup {
    let id = input_id(path);
    let error = errors.get(path);
    let error_id = format!("{id}-error");
    let described = error.map(|_| error_id.clone());
    if let FieldKind::Record(sub) = &f.kind {
        return html! {
            fieldset #(id) {
                legend { (f.name) }
                @if let Some(e) = error { p.field-error id=(error_id) { (e) } }
                (inputs(sub, path, value, errors, refs))
            }
        };
    }
    let placeholder = if f.secret {
        Some("write-only: leave empty to keep what is stored".to_string())
    } else {
        f.default
            .as_ref()
            .map(|d| display(d, &f.kind))
            .filter(|d| !d.is_empty())
            .map(|d| format!("default: {d}"))
    };
    let shown = if f.secret {
        String::new()
    } else {
        display(value, &f.kind)
    };
    let class = match (&f.kind, error) {
        (FieldKind::Boolean, Some(_)) if f.default.is_some() => "field checkbox invalid",
        (FieldKind::Boolean, None) if f.default.is_some() => "field checkbox",
        (_, Some(_)) => "field invalid",
        _ => "field",
    };
    html! {
        div class=(class) {
            @match &f.kind {
                FieldKind::Boolean if f.default.is_some() => {
                    @let checked = match value { Value::Bool(b) => *b, _ => f.default == Some(Value::Bool(true)) };
                    input #(id) type="checkbox" name=(path) value="true" checked[checked] aria-describedby=[described.as_deref()];
                    " " label for=(id) { (f.name) }
                }
                _ => {
                    label for=(id) { (f.name) @if f.required { " (required)" } }
                    @match &f.kind {
                        FieldKind::Foreign(collection) => {
                            @let current = value["id"].as_str().unwrap_or_default();
                            select #(id) name=(path) aria-describedby=[described.as_deref()] {
                                option value="" { "(none)" }
                                @for (ref_id, label) in refs.get(collection).into_iter().flatten() {
                                    option value=(ref_id) selected[ref_id == current] { (label) }
                                }
                            }
                        }
                        FieldKind::Boolean => {
                            select #(id) name=(path) aria-describedby=[described.as_deref()] {
                                option value="" { "(not set)" }
                                option value="true" selected[*value == Value::Bool(true)] { "true" }
                                option value="false" selected[*value == Value::Bool(false)] { "false" }
                            }
                        }
                        _ if !f.one_of.is_empty() => {
                            select #(id) name=(path) aria-describedby=[described.as_deref()] {
                                option value="" { @if let Some(p) = &placeholder { "(" (p) ")" } @else { "(none)" } }
                                @for choice in &f.one_of {
                                    option value=(choice) selected[*choice == shown] { (choice) }
                                }
                            }
                        }
                        FieldKind::List(_) | FieldKind::Json | FieldKind::LongText => {
                            textarea #(id) name=(path) placeholder=[placeholder.as_deref()] aria-describedby=[described.as_deref()] spellcheck="false" { (shown) }
                        }
                        _ => {
                            input #(id) type=(if f.secret { "password" } else { "text" }) name=(path) value=(shown)
                                placeholder=[placeholder.as_deref()] autocomplete=(if f.secret { "new-password" } else { "off" })
                                inputmode=[matches!(f.kind, FieldKind::Integer | FieldKind::Number).then_some("numeric")]
                                aria-describedby=[described.as_deref()];
                        }
                    }
                    @match &f.kind {
                        FieldKind::List(_) => { p.hint { "One per line." } }
                        FieldKind::Json => { p.hint { "JSON." } }
                        _ => {}
                    }
                }
            }
            @if let Some(e) = error { p.field-error id=(error_id) { (e) } }
        }
    }
}

/// A value as its input shows it.
fn display(value: &Value, kind: &FieldKind) -> String {
    match (value, kind) {
        (Value::Null, _) => String::new(),
        (Value::String(s), _) => s.clone(),
        (Value::Array(items), FieldKind::List(_)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n"),
        (v, FieldKind::Json) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (v, _) => v.to_string(),
    }
}

/// Whether a form creates an entity (empty inputs are left out, so defaults apply) or edits one (an
/// empty input clears the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Edit,
}

/// The JSON body a submitted form stands for, and the errors found before the Admin API is asked (text
/// that is not JSON where JSON is expected).
pub fn body(fields: &[FieldSpec], form: &Form, purpose: Purpose) -> (Map<String, Value>, Errors) {
    let mut errors = Errors::new();
    let out = collect(fields, "", form, purpose, &mut errors);
    (out, errors)
}

fn collect(
    fields: &[FieldSpec],
    prefix: &str,
    form: &Form,
    purpose: Purpose,
    errors: &mut Errors,
) -> Map<String, Value> {
    let mut out = Map::new();
    for f in fields {
        let path = join(prefix, &f.name);
        let value = match &f.kind {
            FieldKind::Record(sub) => {
                let inner = collect(sub, &path, form, purpose, errors);
                (purpose == Purpose::Edit || !inner.is_empty()).then_some(Value::Object(inner))
            }
            // A checkbox sends nothing when unchecked; a field without a default is a choice instead.
            FieldKind::Boolean if f.default.is_some() => {
                Some(Value::Bool(form.get(&path).is_some()))
            }
            kind => match form.get(&path).map(str::trim).filter(|v| !v.is_empty()) {
                None if f.secret => None,
                None => (purpose == Purpose::Edit).then_some(Value::Null),
                Some(text) => match convert(kind, text) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        errors.insert(path.clone(), why);
                        None
                    }
                },
            },
        };
        if let Some(v) = value {
            out.insert(f.name.clone(), v);
        }
    }
    out
}

fn convert(kind: &FieldKind, text: &str) -> Result<Value, String> {
    Ok(match kind {
        // A number that does not parse goes to the Admin API as text, which names what it expects.
        FieldKind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        FieldKind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.into())),
        FieldKind::Foreign(_) => serde_json::json!({ "id": text }),
        FieldKind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.into()),
        },
        FieldKind::List(element) => Value::Array(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| convert(element, l))
                .collect::<Result<_, _>>()?,
        ),
        FieldKind::Json => serde_json::from_str(text).map_err(|e| format!("expected JSON: {e}"))?,
        _ => Value::String(text.into()),
    })
}

/// The values of a form as the inputs should show them again after a refusal, secrets left out.
pub fn without_secrets(fields: &[FieldSpec], body: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for f in fields {
        match (&f.kind, body.get(&f.name)) {
            (_, None) => {}
            _ if f.secret => {}
            (FieldKind::Record(sub), Some(Value::Object(inner))) => {
                out.insert(f.name.clone(), without_secrets(sub, inner));
            }
            (_, Some(v)) => {
                out.insert(f.name.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The Admin API's `fields` answer as messages by dotted path; a message about an element of a list is
/// put on the list, naming the element's position.
pub fn api_errors(fields: &Value) -> Errors {
    let mut out = Errors::new();
    flatten("", fields, &mut out);
    out
}

fn flatten(path: &str, v: &Value, out: &mut Errors) {
    match v {
        Value::String(message) => add(out, path, message.clone()),
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&join(path, k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(m) => add(out, path, format!("element {}: {m}", i + 1)),
                    Value::Null => {}
                    other => flatten(path, other, out),
                }
            }
        }
        _ => {}
    }
}

fn add(out: &mut Errors, path: &str, message: String) {
    out.entry(path.to_string())
        .and_modify(|m| {
            m.push_str("; ");
            m.push_str(&message);
        })
        .or_insert(message);
}

#[cfg(test)]
mod tests;
