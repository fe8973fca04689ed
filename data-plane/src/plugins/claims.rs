//! Claims as request fields: the values of a claim at a path, values of a token's claims made into
//! header values, and a token's fingerprint for logs.

use http::HeaderValue;
use serde_json::Value;

/// Hex SHA-256 prefix of a token, safe to log for correlation.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..6])
}

/// [`claim_header_value`] as a header value (`None` when it cannot be one). Strings and integers, the
/// usual claims, are turned into one without an intermediate string.
pub fn claim_header(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::String(s) => HeaderValue::from_str(s).ok(),
        Value::Number(n) if n.is_i64() => {
            HeaderValue::from_str(itoa::Buffer::new().format(n.as_i64()?)).ok()
        }
        Value::Number(n) if n.is_u64() => {
            HeaderValue::from_str(itoa::Buffer::new().format(n.as_u64()?)).ok()
        }
        _ => HeaderValue::from_str(&claim_header_value(v)?).ok(),
    }
}

/// A claim value as a header value: strings as they are, arrays joined by commas, others as JSON.
pub fn claim_header_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(claim_header_value)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some(v.to_string()),
    }
}

/// Values of a claim at a path (`["realm_access", "roles"]`), as strings; strings are split on spaces.
pub fn claim_values(claims: &Value, path: &[String]) -> Vec<String> {
    let mut cur = claims;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return Vec::new(),
        }
    }
    match cur {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}
