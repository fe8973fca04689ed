//! Form bodies (`application/x-www-form-urlencoded`, and `multipart/form-data` fields) as Kong reads
//! them: `paths[]=/a`, `config.ttl=5`, repeated keys, `name=` for null. Keys and values are decoded
//! strictly: a percent-escape that does not make UTF-8 is refused with the field it is in, never stored
//! with replacement characters.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ApiError;

/// The key-value pairs of a URL-encoded form, `+` as a space and percent-escapes decoded.
pub fn pairs(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            let key = decode(key).map_err(|_| {
                ApiError::bad_request("Cannot parse form body: a field name is not valid UTF-8")
            })?;
            let value = utf8(&key, decoded_bytes(value))?;
            Ok((key, value))
        })
        .collect()
}

/// A form value as text; the error names the field.
pub fn utf8(field: &str, bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|_| {
        let mut errors = shared::FieldErrors::new();
        let name = field.split('[').next().unwrap_or(field);
        errors.add(name, "invalid value: not valid UTF-8");
        ApiError::schema(errors)
    })
}

fn decoded_bytes(raw: &[u8]) -> Vec<u8> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space).collect()
}

fn decode(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(decoded_bytes(raw))
}

/// How many dot-separated levels a form key may have (`config.ttl` has two). Entities nest a few levels;
/// the bound keeps a hostile key from building a value deep enough to exhaust the stack.
pub const MAX_FORM_KEY_DEPTH: usize = 16;

/// Turns Kong-style form fields (`paths[]=/a`, `config.ttl=5`, repeated keys, `name=` for null) into
/// JSON.
pub fn form_to_json(pairs: Vec<(String, String)>) -> Result<Value, ApiError> {
    let mut root = Map::new();
    let mut arrays: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        if k.split('.').nth(MAX_FORM_KEY_DEPTH).is_some() {
            let shown: String = k.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "form key '{shown}…' is nested deeper than {MAX_FORM_KEY_DEPTH} levels"
            )));
        }
        let (key, is_array) = match k.find('[') {
            Some(i) if k.ends_with(']') => (k[..i].to_string(), true),
            _ => (k, false),
        };
        if is_array {
            arrays.entry(key).or_default().push(v);
        } else if let Some(existing) = arrays.get_mut(&key) {
            existing.push(v);
        } else if let Some(prev) =
            get_path(&root, &key).and_then(|p| p.as_str().map(str::to_string))
        {
            arrays.insert(key.clone(), vec![prev, v]);
        } else if v.is_empty() {
            // An empty form value sets the field to null, as in Kong (`name=` clears the name).
            set_path(&mut root, &key, Value::Null);
        } else {
            set_path(&mut root, &key, Value::String(v));
        }
    }
    for (k, vals) in arrays {
        set_path(
            &mut root,
            &k,
            Value::Array(vals.into_iter().map(Value::String).collect()),
        );
    }
    Ok(Value::Object(root))
}

fn get_path<'a>(root: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn set_path(root: &mut Map<String, Value>, key: &str, value: Value) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = entry.as_object_mut().expect("made an object above");
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    #[test]
    fn form_fields_become_json() {
        let v = form_to_json(vec![
            ("name".into(), "svc".into()),
            ("paths[]".into(), "/a".into()),
            ("paths[]".into(), "/b".into()),
            ("config.ttl".into(), "5".into()),
            ("methods".into(), "GET".into()),
            ("methods".into(), "POST".into()),
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"name": "svc", "paths": ["/a", "/b"], "config": {"ttl": "5"}, "methods": ["GET", "POST"]})
        );
    }

    #[test]
    fn deeply_nested_form_keys_are_refused() {
        let deep = "a.".repeat(20_000) + "b";
        let err = form_to_json(vec![(deep, "x".into())]).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.body["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper"));
        let ok = "a.".repeat(MAX_FORM_KEY_DEPTH - 1) + "b";
        assert!(form_to_json(vec![(ok, "x".into())]).is_ok());
    }

    #[test]
    fn form_bodies_are_decoded_strictly() {
        let got = pairs(b"name=a+b%21&paths[]=%2Fx&&flag&empty=").unwrap();
        assert_eq!(
            got,
            [
                ("name".into(), "a b!".into()),
                ("paths[]".into(), "/x".into()),
                ("flag".into(), String::new()),
                ("empty".into(), String::new()),
            ]
        );
        assert_eq!(pairs("tags[]=%C3%A9".as_bytes()).unwrap()[0].1, "é");
        let err = pairs(b"host=h&name=%FF%FE").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body["fields"]["name"], "invalid value: not valid UTF-8",
            "{}",
            err.body
        );
        let err = pairs(b"tags[]=%C3").unwrap_err();
        assert!(err.body["fields"]["tags"].is_string(), "{}", err.body);
        assert_eq!(pairs(b"%FF=1").unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
