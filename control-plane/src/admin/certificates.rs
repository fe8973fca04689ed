//! What the Admin API adds to Certificates beyond CRUD: the `snis` shorthand (a Certificate written with
//! `snis: ["a.example.com", …]` gets exactly those SNI entities, and reads list them), and private keys
//! that read back redacted and are kept when a client echoes the redaction placeholder.

use serde_json::{json, Value};
use shared::plugins::REDACTED;
use shared::{Change, ConfigState, Entity, FieldErrors, Kind, ParseCtx, Sni, StateError};
use uuid::Uuid;

/// Takes the `snis` shorthand out of a Certificate body: `None` when the body does not mention it.
pub fn take_snis(body: &mut Value) -> Result<Option<Vec<String>>, StateError> {
    let Some(raw) = body.as_object_mut().and_then(|o| o.remove("snis")) else {
        return Ok(None);
    };
    let names = match raw {
        Value::Null => Vec::new(),
        // Kong writes an empty array as `{}` in some clients.
        Value::Object(m) if m.is_empty() => Vec::new(),
        Value::Array(items) => {
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) => names.push(s),
                    _ => return Err(schema(&format!("snis.{}", i + 1), "expected a string")),
                }
            }
            names
        }
        _ => return Err(schema("snis", "expected an array of server names")),
    };
    Ok(Some(names))
}

fn schema(field: &str, message: &str) -> StateError {
    StateError::Schema(shared::entity::field_error(field, message))
}

/// Makes the SNIs of certificate `cert` exactly `names`: keeps those it has, creates the missing ones and
/// removes the others. A name another Certificate holds is refused.
pub fn put_snis(
    state: &mut ConfigState,
    cert: Uuid,
    names: &[String],
    now: i64,
) -> Result<Vec<Change>, StateError> {
    let mut errors = FieldErrors::new();
    let mut wanted = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = format!("snis.{}", i + 1);
        let body = json!({"name": name, "certificate": {"id": cert}});
        let ctx = ParseCtx {
            id: Uuid::new_v4(),
            now,
            created_at: None,
            resolver: &*state,
        };
        match Sni::parse(&body, &ctx) {
            Ok(sni) => {
                if let Some(other) = state
                    .snis
                    .values()
                    .find(|s| s.name == sni.name && s.certificate.id != cert)
                {
                    errors.add(
                        field,
                        format!(
                            "'{}' already belongs to certificate {}",
                            sni.name, other.certificate.id
                        ),
                    );
                } else if wanted.iter().any(|w: &Sni| w.name == sni.name) {
                    errors.add(field, format!("'{}' is listed twice", sni.name));
                } else {
                    wanted.push(sni);
                }
            }
            Err(StateError::Schema(e)) => errors.add(
                field,
                e.get("name").unwrap_or("invalid server name").to_string(),
            ),
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(StateError::Schema(errors));
    }
    let held: Vec<Sni> = state
        .snis
        .values()
        .filter(|s| s.certificate.id == cert)
        .cloned()
        .collect();
    let mut changes = Vec::new();
    for old in held
        .iter()
        .filter(|o| !wanted.iter().any(|w| w.name == o.name))
    {
        changes.extend(state.delete(Kind::Sni, &old.id)?);
    }
    for sni in wanted {
        if !held.iter().any(|o| o.name == sni.name) {
            changes.extend(state.put(Entity::Sni(sni))?);
        }
    }
    Ok(changes)
}

/// An entity as the Admin API shows it: secrets redacted, and a Certificate with its SNIs' names.
pub fn public_json(state: &ConfigState, e: &Entity) -> Value {
    let mut v = e.to_public_json();
    if let Entity::Certificate(c) = e {
        let mut names: Vec<&str> = state
            .snis
            .values()
            .filter(|s| s.certificate.id == c.id)
            .map(|s| s.name.as_str())
            .collect();
        names.sort_unstable();
        v["snis"] = json!(names);
    }
    v
}

/// Puts back the private keys a client echoed as [`REDACTED`] from the stored Certificate.
pub fn restore_keys(body: &mut Value, existing: Option<&Entity>) {
    let Some(Entity::Certificate(old)) = existing else {
        return;
    };
    for (field, stored) in [("key", Some(&old.key)), ("key_alt", old.key_alt.as_ref())] {
        if body.get(field).and_then(Value::as_str) == Some(REDACTED) {
            if let Some(stored) = stored {
                body[field] = Value::String(stored.clone());
            }
        }
    }
}

/// The key fields of a Certificate body that still hold [`REDACTED`] after [`restore_keys`]: there was no
/// stored key to keep.
pub fn redacted_keys(body: &Value) -> Vec<&'static str> {
    ["key", "key_alt"]
        .into_iter()
        .filter(|f| body.get(*f).and_then(Value::as_str) == Some(REDACTED))
        .collect()
}
