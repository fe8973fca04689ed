//! Kong's description of a plugin's config (`/schemas/plugins/{name}`), read off the config parser
//! itself: the shape of every field from the reads [`crate::schema::describing`] records, and every
//! default from the validated config of a sample that sets only the required fields.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{is_supported, secret_fields, validate_config};
use crate::entity::{Kind, Resolver};
use crate::schema::describing;

/// Resolves nothing: a described config names no Consumer (and tests of configs that name none).
pub(crate) struct NoEntities;

impl Resolver for NoEntities {
    fn resolve(&self, _: Kind, _: &str) -> Option<Uuid> {
        None
    }
}

/// What a required field holds in the sample whose defaults are read: a value every required field of
/// the known plugins accepts (an `https` URL is also a valid header value).
const SAMPLE: &str = "https://idp.example.test/";

/// Kong's `config` record of plugin `name`: `{"type": "record", "required": true, "fields": [{name:
/// {type, required, default, between, one_of, elements, encrypted}}, …]}`; `None` for an unknown plugin.
pub fn config_schema(name: &str) -> Option<Value> {
    if !is_supported(name) {
        return None;
    }
    let (_, shapes) = describing(|| validate_config(name, &json!({}), &NoEntities));
    let (sample, defaults) = defaults(name, &shapes)?;
    let secrets = secret_fields(name);
    let fields: Vec<Value> = shapes
        .into_iter()
        .map(|(field, mut shape)| {
            let default = defaults.get(&field).filter(|d| !d.is_null());
            if let (false, Some(d)) = (sample.contains_key(&field), default) {
                shape["default"] = d.clone();
            }
            if secrets.contains(&field.as_str()) {
                shape["encrypted"] = json!(true);
            }
            json!({ field: shape })
        })
        .collect();
    Some(json!({"type": "record", "required": true, "fields": fields}))
}

/// What a plugin's rule across fields asks for beyond its required fields: `rate-limiting` needs at
/// least one limit, `acl` one list of groups.
fn seed(name: &str) -> Map<String, Value> {
    match name {
        super::rate_limiting::NAME => Map::from_iter([("second".to_string(), json!(1))]),
        super::acl::NAME => Map::from_iter([("allow".to_string(), json!(["group"]))]),
        _ => Map::new(),
    }
}

fn is_required(shape: &Value) -> bool {
    shape["required"] == json!(true)
}

/// A sample config that validates, and its validated form, whose fields hold the defaults of every field
/// the sample does not set. The sample sets the required fields, then whatever a rule across fields
/// asks for (`client_id` when the default `auth_methods` need one), a few rounds at most.
fn defaults(name: &str, shapes: &[(String, Value)]) -> Option<(Map<String, Value>, Value)> {
    let sample_of = |field: &str| {
        let shape = shapes.iter().find(|(f, _)| f == field).map(|(_, s)| s);
        match shape.map(|s| &s["type"]) {
            Some(t) if t == "array" => json!([SAMPLE]),
            _ => json!(SAMPLE),
        }
    };
    let mut sample: Map<String, Value> = shapes
        .iter()
        .filter(|(_, shape)| is_required(shape))
        .map(|(field, _)| (field.clone(), sample_of(field)))
        .collect();
    sample.extend(seed(name));
    for _ in 0..3 {
        match validate_config(name, &Value::Object(sample.clone()), &NoEntities) {
            Ok(config) => return Some((sample, config)),
            Err(errors) => {
                for (path, _) in errors.iter() {
                    let field = path.split('.').next().unwrap_or(path);
                    sample.insert(field.to_string(), sample_of(field));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{oauth2_introspection, openid_connect, SUPPORTED};

    fn field<'a>(schema: &'a Value, name: &str) -> &'a Value {
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|f| f.get(name))
            .unwrap_or_else(|| panic!("{name} is not described"))
    }

    #[test]
    fn every_field_of_every_plugin_is_described_with_its_default() {
        for (name, _) in SUPPORTED {
            let schema = config_schema(name).unwrap();
            let described: Vec<&str> = schema["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_object().unwrap().keys().next().unwrap().as_str())
                .collect();
            // Every field of a validated config is one the description lists, and only those.
            let (_, shapes) = describing(|| validate_config(name, &json!({}), &NoEntities));
            let (_, config) = defaults(name, &shapes).unwrap();
            let mut validated: Vec<&str> = config
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut listed = described.clone();
            validated.sort_unstable();
            listed.sort_unstable();
            assert_eq!(validated, listed, "{name}");
            for f in described {
                assert!(
                    field(&schema, f)["type"].is_string(),
                    "{name}.{f} has no type"
                );
            }
        }
    }

    #[test]
    fn shapes_and_defaults_are_those_the_parser_applies() {
        let s = config_schema(oauth2_introspection::NAME).unwrap();
        assert_eq!(
            field(&s, "introspection_url"),
            &json!({"type": "string", "required": true})
        );
        assert_eq!(
            field(&s, "ttl"),
            &json!({"type": "integer", "between": [0, i32::MAX], "default": 30})
        );
        assert_eq!(field(&s, "consumer_by")["default"], "username");
        assert_eq!(
            field(&s, "consumer_by")["one_of"],
            json!(["username", "client_id"])
        );
        assert_eq!(field(&s, "authorization_value")["encrypted"], true);
        let o = config_schema(openid_connect::NAME).unwrap();
        assert_eq!(field(&o, "scopes")["default"], json!(["openid"]));
        assert_eq!(field(&o, "auth_methods")["type"], "array");
        assert!(config_schema("key-auth").is_none());
    }
}
