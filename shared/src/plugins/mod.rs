//! Plugin config schemas. The control plane validates plugin configs with this code and the data plane
//! accepts them with the very same code, so both always agree on what a valid config is.

pub mod acl;
pub mod cors;
mod describe;
pub mod oauth2_introspection;
pub mod openid_connect;
pub mod rate_limiting;
pub mod redis;

pub use describe::config_schema;

use serde_json::Value;

use crate::entity::Resolver;
use crate::schema::{FieldErrors, Fields};

/// What a secret field reads as through the Admin API. Writing it back keeps the stored secret.
pub const REDACTED: &str = "[redacted]";

/// Every plugin this release knows, with its version, in execution order (higher priority first).
pub const SUPPORTED: &[(&str, &str)] = &[
    (cors::NAME, cors::VERSION),
    (oauth2_introspection::NAME, oauth2_introspection::VERSION),
    (openid_connect::NAME, openid_connect::VERSION),
    (acl::NAME, acl::VERSION),
    (rate_limiting::NAME, rate_limiting::VERSION),
];

/// False for plugins that may not be scoped to a Consumer (Kong's `no_consumer`): `cors` runs before any
/// Consumer is known, and `acl` decides about the Consumer rather than applying to one.
pub fn takes_consumer(name: &str) -> bool {
    name != cors::NAME && name != acl::NAME
}

/// True when `name` is a plugin this release knows.
pub fn is_supported(name: &str) -> bool {
    SUPPORTED.iter().any(|(n, _)| *n == name)
}

/// Validates `config` for plugin `name` and returns it with every default filled in.
pub fn validate_config(
    name: &str,
    config: &Value,
    resolver: &dyn Resolver,
) -> Result<Value, FieldErrors> {
    match name {
        oauth2_introspection::NAME => oauth2_introspection::Config::parse(config, resolver)
            .map(|c| serde_json::to_value(c).expect("config serialises")),
        openid_connect::NAME => openid_connect::Config::parse(config, resolver)
            .map(|c| serde_json::to_value(c).expect("config serialises")),
        rate_limiting::NAME => rate_limiting::Config::parse(config, resolver)
            .map(|c| serde_json::to_value(c).expect("config serialises")),
        cors::NAME => cors::Config::parse(config, resolver)
            .map(|c| serde_json::to_value(c).expect("config serialises")),
        acl::NAME => acl::Config::parse(config, resolver)
            .map(|c| serde_json::to_value(c).expect("config serialises")),
        other => {
            let mut e = FieldErrors::new();
            e.add("name", not_enabled(other));
            Err(e)
        }
    }
}

/// Kong's answer for a plugin name this release does not run (`/plugins/enabled` lists those it does).
pub fn not_enabled(name: &str) -> String {
    format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property")
}

/// The config fields of plugin `name` that hold secrets, as dotted paths (`redis.password`).
pub fn secret_fields(name: &str) -> &'static [&'static str] {
    match name {
        oauth2_introspection::NAME => oauth2_introspection::SECRET_FIELDS,
        openid_connect::NAME => openid_connect::SECRET_FIELDS,
        rate_limiting::NAME => rate_limiting::SECRET_FIELDS,
        cors::NAME => cors::SECRET_FIELDS,
        acl::NAME => acl::SECRET_FIELDS,
        _ => &[],
    }
}

/// The value at dotted `path` inside `config`.
fn at_path<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(config, |v, key| v.get(key))
}

fn at_path_mut<'a>(config: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(config, |v, key| v.get_mut(key))
}

/// Replaces the secret fields of a validated config with [`REDACTED`].
pub fn redact(name: &str, config: &mut Value) {
    for field in secret_fields(name) {
        if let Some(v) = at_path_mut(config, field) {
            redact_value(v);
        }
    }
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(m) => m.values_mut().for_each(redact_value),
        other => *other = Value::String(REDACTED.to_string()),
    }
}

/// Where `new` holds [`REDACTED`], puts back the value `old` has at the same place, so an exported and
/// re-imported config keeps its secrets.
pub fn restore_redacted(new: &mut Value, old: &Value) {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            for (k, v) in n.iter_mut() {
                if let Some(ov) = o.get(k) {
                    restore_redacted(v, ov);
                }
            }
        }
        (Value::Array(n), Value::Array(o)) => {
            for (v, ov) in n.iter_mut().zip(o.iter()) {
                restore_redacted(v, ov);
            }
        }
        (n @ Value::String(_), o) if n.as_str() == Some(REDACTED) => *n = o.clone(),
        _ => {}
    }
}

/// The secret fields of a validated config that still hold [`REDACTED`] (no stored value was restored).
pub fn redacted_fields(name: &str, config: &Value) -> Vec<String> {
    secret_fields(name)
        .iter()
        .filter(|f| at_path(config, f).is_some_and(holds_redacted))
        .map(|f| f.to_string())
        .collect()
}

fn holds_redacted(v: &Value) -> bool {
    match v {
        Value::String(s) => s == REDACTED,
        Value::Array(items) => items.iter().any(holds_redacted),
        Value::Object(m) => m.values().any(holds_redacted),
        _ => false,
    }
}

/// Reads an `http`/`https` URL field ([`crate::http_syntax::URL_PATTERN`]).
pub(crate) fn url_field(f: &mut Fields<'_>, name: &str, required: bool) -> Option<String> {
    let v = if required {
        f.string(name)
    } else {
        f.opt_string(name)
    }?;
    if crate::http_syntax::is_url(&v) {
        Some(v)
    } else {
        f.error(name, crate::http_syntax::INVALID_URL);
        None
    }
}

/// Reads the `anonymous` field and checks that the Consumer exists.
pub(crate) fn anonymous_field(f: &mut Fields<'_>, resolver: &dyn Resolver) -> Option<String> {
    let anonymous = f.opt_string("anonymous").filter(|s| !s.is_empty())?;
    if resolver
        .resolve(crate::entity::Kind::Consumer, &anonymous)
        .is_none()
    {
        f.error(
            "anonymous",
            format!("no consumer with id or username '{anonymous}' exists"),
        );
    }
    Some(anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_then_restore_round_trips() {
        let old = json!({"client_secret": ["s1", "s2"], "client_id": ["a"]});
        let mut shown = old.clone();
        redact(openid_connect::NAME, &mut shown);
        assert_eq!(shown["client_secret"], json!([REDACTED, REDACTED]));
        assert_eq!(shown["client_id"], json!(["a"]));
        restore_redacted(&mut shown, &old);
        assert_eq!(shown, old);
    }

    #[test]
    fn a_secret_inside_a_record_is_redacted_alone() {
        let old = json!({"minute": 5, "redis": {"host": "r", "password": "pw"}});
        let mut shown = old.clone();
        redact(rate_limiting::NAME, &mut shown);
        assert_eq!(shown["redis"], json!({"host": "r", "password": REDACTED}));
        assert_eq!(
            redacted_fields(rate_limiting::NAME, &shown),
            ["redis.password"]
        );
        restore_redacted(&mut shown, &old);
        assert_eq!(shown, old);
    }
}
