//! Kong's schema endpoints: `GET /schemas/{entity}`, `POST /schemas/{entity}/validate`,
//! `GET /schemas/plugins/{name}`, `POST /schemas/plugins/validate` and the older
//! `GET /plugins/schema/{name}`.
//!
//! An entity's schema is read off the OpenAPI document's request schema (which mirrors the parser) and
//! its defaults off the parser's own answer to a minimal entity; a plugin's config schema comes from
//! `shared::plugins::config_schema`, read off the config parser. Validation runs the same parsers as a
//! write, without storing anything and without looking references up (as Kong's, it checks the entity's
//! own fields only).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shared::schema::parsing_form;
use shared::{Entity, FieldErrors, Kind, ParseCtx, Resolver, Sni, StateError};
use uuid::Uuid;

use super::certificates::take_snis;
use super::entities::{body_object, complete_secrets, parse_entity};
use super::openapi::schemas::{request, UUID_PATTERN};
use super::{AdminCtx, ApiError, ApiResult};

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new()
        .route("/schemas/{entity}", get(entity_schema))
        .route("/schemas/{entity}/validate", post(validate))
        .route("/schemas/plugins/{name}", get(plugin_schema))
        .route(
            "/schemas/plugins/validate",
            post(|h: HeaderMap, b: Body| validate(Path("plugins".to_string()), h, b)),
        )
        .route("/plugins/schema/{name}", get(plugin_config_schema))
}

fn kind_named(name: &str) -> Result<Kind, ApiError> {
    Kind::from_collection(name)
        .filter(|k| k.has_endpoints())
        .ok_or_else(|| {
            ApiError::message(StatusCode::NOT_FOUND, format!("No entity named '{name}'"))
        })
}

async fn entity_schema(Path(name): Path<String>) -> ApiResult {
    let kind = kind_named(&name)?;
    Ok(Json(describe(kind)).into_response())
}

async fn plugin_schema(Path(name): Path<String>) -> ApiResult {
    let config = config_of(&name)?;
    let entity = describe(Kind::Plugin);
    let mut fields: Vec<Value> = entity["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| {
            ["protocols", "consumer", "service", "route"]
                .iter()
                .any(|k| f.get(*k).is_some())
        })
        .cloned()
        .collect();
    fields.push(json!({ "config": config }));
    Ok(Json(json!({ "fields": fields })).into_response())
}

async fn plugin_config_schema(Path(name): Path<String>) -> ApiResult {
    Ok(Json(config_of(&name)?).into_response())
}

fn config_of(name: &str) -> Result<Value, ApiError> {
    shared::plugins::config_schema(name).ok_or_else(|| {
        ApiError::message(StatusCode::NOT_FOUND, format!("No plugin named '{name}'"))
    })
}

/// Accepts every reference: validation checks an entity's own fields, not what exists.
struct AnyReference;

impl Resolver for AnyReference {
    fn resolve(&self, _: Kind, key: &str) -> Option<Uuid> {
        Some(Uuid::parse_str(key).unwrap_or(Uuid::nil()))
    }
}

fn parse_alone(kind: Kind, body: &Value) -> Result<Entity, StateError> {
    let ctx = ParseCtx {
        id: Uuid::new_v4(),
        now: 0,
        created_at: None,
        resolver: &AnyReference,
    };
    // What a write would make for it (a generated session secret) is made here too, so a body that
    // validates is one a write accepts.
    let mut body = body.clone();
    complete_secrets(&mut body, None);
    parse_entity(kind, &body, &ctx)
}

async fn validate(Path(name): Path<String>, h: HeaderMap, b: Body) -> ApiResult {
    let kind = kind_named(&name)?;
    let (mut body, form) = body_object(&h, b).await?;
    let snis = if kind == Kind::Certificate {
        take_snis(&mut body)?
    } else {
        None
    };
    parsing_form(form, || parse_alone(kind, &body))?;
    let mut errors = FieldErrors::new();
    for (i, sni) in snis.iter().flatten().enumerate() {
        let entity = json!({"name": sni, "certificate": {"id": Uuid::nil()}});
        if let Err(StateError::Schema(e)) = Sni::parse(
            &entity,
            &ParseCtx {
                id: Uuid::new_v4(),
                now: 0,
                created_at: None,
                resolver: &AnyReference,
            },
        ) {
            let why = e.get("name").unwrap_or("invalid server name");
            errors.add(format!("snis.{}", i + 1), why);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    Ok(Json(json!({"message": "schema validation successful"})).into_response())
}

/// Fields Kong checks for uniqueness.
fn is_unique(kind: Kind, field: &str) -> bool {
    matches!(
        (kind, field),
        (
            Kind::Service | Kind::Route | Kind::Upstream | Kind::Sni | Kind::ConsumerGroup,
            "name"
        ) | (Kind::Consumer, "username" | "custom_id")
            | (Kind::Plugin, "instance_name")
            | (Kind::CaCertificate, "cert_digest")
    )
}

/// Fields that reference another entity, and its collection.
fn reference(field: &str) -> Option<&'static str> {
    let kind = match field {
        "client_certificate" => Kind::Certificate,
        _ => Kind::ALL.into_iter().find(|k| k.singular() == field)?,
    };
    Some(kind.collection())
}

/// Collections Kong types as sets (no repeated element).
fn is_set(field: &str) -> bool {
    matches!(field, "tags" | "methods" | "protocols" | "snis")
}

/// A minimal valid entity of `kind`, whose parsed form shows the defaults of every field it leaves
/// out; `None` for kinds whose only fields are required (certificates).
fn minimal(kind: Kind) -> Option<Value> {
    let nil = Uuid::nil();
    Some(match kind {
        Kind::Service => json!({"host": "example.test"}),
        Kind::Route => json!({"paths": ["/"]}),
        Kind::Consumer => json!({"username": "sample"}),
        Kind::Plugin => json!({"name": "oauth2-introspection", "config": {
            "introspection_url": "https://idp.example.test/introspect",
            "authorization_value": "Basic c2FtcGxl",
        }}),
        Kind::Upstream => json!({"name": "example.test"}),
        Kind::Target => json!({"target": "192.0.2.1:80", "upstream": {"id": nil}}),
        Kind::Acl => json!({"group": "sample", "consumer": {"id": nil}}),
        Kind::ConsumerGroup => json!({"name": "sample"}),
        Kind::ConsumerGroupMember => {
            json!({"consumer_group": {"id": nil}, "consumer": {"id": nil}})
        }
        Kind::Sni => json!({"name": "example.test", "certificate": {"id": nil}}),
        Kind::Certificate | Kind::CaCertificate => return None,
    })
}

/// Kong's schema of `kind`: name, primary key, every field's type, bounds, choices, whether required or
/// unique and its default, and the checks across fields.
pub fn describe(kind: Kind) -> Value {
    let schema = request(kind);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let sample = minimal(kind);
    let defaults = sample
        .as_ref()
        .and_then(|b| parse_alone(kind, b).ok())
        .map(|e| e.to_json())
        .unwrap_or(Value::Null);
    let mut fields = vec![
        json!({"id": {"type": "string", "uuid": true, "auto": true}}),
        json!({"created_at": {"type": "integer", "timestamp": true, "auto": true}}),
        json!({"updated_at": {"type": "integer", "timestamp": true, "auto": true}}),
    ];
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, property) in &properties {
        if matches!(name.as_str(), "id" | "created_at" | "updated_at" | "url") {
            continue;
        }
        let mut field = kong_field(name, property);
        let is_required =
            required.contains(&name.as_str()) || (kind == Kind::Service && name == "host");
        if is_required {
            field["required"] = json!(true);
        }
        if is_unique(kind, name) {
            field["unique"] = json!(true);
        }
        // Kong's mark of a write-only field: private keys read back redacted.
        if kind == Kind::Certificate && matches!(name.as_str(), "key" | "key_alt") {
            field["encrypted"] = json!(true);
        }
        let given = sample.as_ref().is_some_and(|b| b.get(name).is_some());
        // An unset collection reads back as null (`to_public_json`), so it has no default either.
        let default = defaults.get(name).filter(|d| {
            !(d.is_null()
                || d.as_array().is_some_and(Vec::is_empty)
                || d.as_object().is_some_and(Map::is_empty))
        });
        if let (false, false, Some(d)) = (is_required, given, default) {
            field["default"] = d.clone();
        }
        fields.push(json!({ name: field }));
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(kind.collection()));
    out.insert("primary_key".into(), json!(["id"]));
    out.insert("fields".into(), json!(fields));
    out.insert("entity_checks".into(), json!(entity_checks(kind)));
    Value::Object(out)
}

fn entity_checks(kind: Kind) -> Vec<Value> {
    let one_of = |fields: &[&str]| json!({ "at_least_one_of": fields });
    match kind {
        Kind::Service => vec![one_of(&["host", "url"])],
        Kind::Route => vec![one_of(&["methods", "hosts", "headers", "paths"])],
        Kind::Consumer => vec![one_of(&["custom_id", "username"])],
        _ => Vec::new(),
    }
}

/// The JSON Schema of one property, without its `null` and Kong's `{}`-for-empty alternatives.
fn unwrap_nullable(schema: &Value) -> &Value {
    let Some(alternatives) = schema["anyOf"].as_array() else {
        return schema;
    };
    let real: Vec<&Value> = alternatives
        .iter()
        .filter(|a| a["type"] != "null" && a["maxProperties"] != 0)
        .collect();
    match real.as_slice() {
        [one] => unwrap_nullable(one),
        _ => schema,
    }
}

/// One field in Kong's terms, from its JSON Schema.
fn kong_field(name: &str, schema: &Value) -> Value {
    if let Some(collection) = reference(name) {
        return json!({"type": "foreign", "reference": collection});
    }
    let s = unwrap_nullable(schema);
    let ty = match &s["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    let mut field = Map::new();
    match ty.as_str() {
        Some("string") => {
            field.insert("type".into(), json!("string"));
            if s["pattern"] == UUID_PATTERN {
                field.insert("uuid".into(), json!(true));
            }
        }
        Some("integer") => {
            field.insert("type".into(), json!("integer"));
            if let (Some(min), Some(max)) = (s["minimum"].as_i64(), s["maximum"].as_i64()) {
                field.insert("between".into(), json!([min, max]));
            }
        }
        Some("boolean") => {
            field.insert("type".into(), json!("boolean"));
        }
        Some("array") => {
            let kind = if is_set(name) { "set" } else { "array" };
            field.insert("type".into(), json!(kind));
            field.insert("elements".into(), kong_field("", &s["items"]));
        }
        Some("object") if name == "headers" => {
            field.insert("type".into(), json!("map"));
            field.insert("keys".into(), json!({"type": "string"}));
            field.insert(
                "values".into(),
                json!({"type": "array", "elements": {"type": "string"}}),
            );
        }
        Some("object") => {
            field.insert("type".into(), json!("record"));
        }
        // A choice between shapes (a reference by id or by object): Kong's closest is a string.
        _ => {
            field.insert("type".into(), json!("string"));
        }
    }
    if let Some(choices) = s["enum"].as_array() {
        field.insert("one_of".into(), json!(choices));
    }
    Value::Object(field)
}
