//! The OpenAPI 3.1 document served at `/openapi.json`, describing what the Admin API accepts.

use axum::Json;
use serde_json::{json, Map, Value};
use shared::Kind;

fn string() -> Value {
    json!({"type": "string"})
}
fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}
fn int(min: i64, max: i64, default: Option<i64>) -> Value {
    let mut v = json!({"type": "integer", "minimum": min, "maximum": max});
    if let Some(d) = default {
        v["default"] = json!(d);
    }
    v
}
fn boolean(default: bool) -> Value {
    json!({"type": "boolean", "default": default})
}
fn fk() -> Value {
    json!({"oneOf": [{"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "name": string()}, "additionalProperties": false}, {"type": "string"}, {"type": "null"}]})
}

fn entity_schema(kind: Kind) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
    props.insert("tags".into(), strings());
    props.insert(
        "created_at".into(),
        json!({"type": "integer", "readOnly": true}),
    );
    props.insert(
        "updated_at".into(),
        json!({"type": "integer", "readOnly": true}),
    );
    let timeout = int(1, i32::MAX as i64, Some(60_000));
    let required: Vec<&str> = match kind {
        Kind::Service => {
            props.insert(
                "name".into(),
                json!({"type": "string", "pattern": "^[A-Za-z0-9.\\-_~]+$"}),
            );
            props.insert("url".into(), json!({"type": "string", "format": "uri", "writeOnly": true, "description": "shorthand for protocol, host, port and path"}));
            props.insert(
                "protocol".into(),
                json!({"type": "string", "enum": ["http", "https"], "default": "http"}),
            );
            props.insert("host".into(), string());
            props.insert("port".into(), int(0, 65535, Some(80)));
            props.insert("path".into(), json!({"type": "string", "pattern": "^/"}));
            props.insert("retries".into(), int(0, 32767, Some(5)));
            props.insert("connect_timeout".into(), timeout.clone());
            props.insert("write_timeout".into(), timeout.clone());
            props.insert("read_timeout".into(), timeout);
            props.insert("enabled".into(), boolean(true));
            props.insert("tls_verify".into(), json!({"type": ["boolean", "null"]}));
            vec![]
        }
        Kind::Route => {
            props.insert("name".into(), string());
            props.insert(
                "protocols".into(),
                json!({"type": "array", "items": {"enum": ["http", "https"]}}),
            );
            props.insert("methods".into(), strings());
            props.insert("hosts".into(), strings());
            props.insert("paths".into(), json!({"type": "array", "items": {"type": "string", "description": "prefix starting with '/', or a regex starting with '~'"}}));
            props.insert(
                "headers".into(),
                json!({"type": "object", "additionalProperties": strings()}),
            );
            props.insert(
                "regex_priority".into(),
                int(i32::MIN as i64, i32::MAX as i64, Some(0)),
            );
            props.insert("strip_path".into(), boolean(true));
            props.insert("preserve_host".into(), boolean(false));
            props.insert(
                "path_handling".into(),
                json!({"enum": ["v0", "v1"], "default": "v0"}),
            );
            props.insert(
                "https_redirect_status_code".into(),
                json!({"enum": [426, 301, 302, 307, 308], "default": 426}),
            );
            props.insert("request_buffering".into(), boolean(true));
            props.insert("response_buffering".into(), boolean(true));
            props.insert("service".into(), fk());
            vec![]
        }
        Kind::Consumer => {
            props.insert("username".into(), string());
            props.insert("custom_id".into(), string());
            vec![]
        }
        Kind::Plugin => {
            props.insert("name".into(), json!({"type": "string", "enum": shared::plugins::SUPPORTED.iter().map(|(n, _)| *n).collect::<Vec<_>>()}));
            props.insert("instance_name".into(), string());
            props.insert("config".into(), json!({"type": "object", "description": "validated by the plugin's schema; unknown fields are rejected; secrets read back as \"[redacted]\""}));
            props.insert("enabled".into(), boolean(true));
            props.insert("protocols".into(), strings());
            props.insert("service".into(), fk());
            props.insert("route".into(), fk());
            props.insert("consumer".into(), fk());
            vec!["name"]
        }
    };
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn error_responses() -> Value {
    let err = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut m = Map::new();
    for (code, what) in [
        ("400", "invalid input"),
        ("401", "missing or wrong admin token"),
        ("404", "not found"),
        ("409", "unique constraint violation"),
        ("413", "body too large"),
        ("415", "unsupported content type"),
    ] {
        let mut e = err.clone();
        e["description"] = json!(what);
        m.insert(code.into(), e);
    }
    Value::Object(m)
}

fn op(summary: &str, kind: Option<&str>, status: &str, body: bool) -> Value {
    let mut responses = error_responses();
    let content = match kind {
        Some(k) => {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{k}")}}})
        }
        None => json!({"application/json": {"schema": {"type": "object"}}}),
    };
    responses[status] = json!({"description": "success", "content": content});
    let mut v = json!({"summary": summary, "responses": responses});
    if body {
        let schema = match kind {
            Some(k) => json!({"$ref": format!("#/components/schemas/{k}")}),
            None => json!({"type": "object"}),
        };
        v["requestBody"] = json!({"content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema}
        }});
    }
    v
}

fn schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "Service",
        Kind::Route => "Route",
        Kind::Consumer => "Consumer",
        Kind::Plugin => "Plugin",
    }
}

/// Builds the document.
pub fn build() -> Value {
    let mut paths = Map::new();
    let key_param = json!([{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "id or unique name"}]);
    let list_params = json!([
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        {"name": "offset", "in": "query", "schema": {"type": "string"}},
        {"name": "tags", "in": "query", "schema": {"type": "string"}, "description": "a,b: all of; a/b: any of"}
    ]);
    for kind in Kind::ALL {
        let n = schema_name(kind);
        let c = kind.collection();
        paths.insert(format!("/{c}"), json!({
            "get": {"summary": format!("List {c}"), "parameters": list_params, "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}}}}},
            "post": op(&format!("Create a {n}"), Some(n), "201", true),
        }));
        let mut item = json!({
            "parameters": key_param,
            "get": op(&format!("Read a {n}"), Some(n), "200", false),
            "put": op(&format!("Create or replace a {n}"), Some(n), "200", true),
            "patch": op(&format!("Update a {n}"), Some(n), "200", true),
            "delete": {"summary": format!("Delete a {n}"), "responses": {"204": {"description": "deleted (or did not exist)"}}},
        });
        item["delete"]["responses"]["400"] = error_responses()["400"].clone();
        paths.insert(format!("/{c}/{{key}}"), item);
    }
    for (parent, child) in [
        (Kind::Service, Kind::Route),
        (Kind::Service, Kind::Plugin),
        (Kind::Route, Kind::Plugin),
        (Kind::Consumer, Kind::Plugin),
    ] {
        let n = schema_name(child);
        paths.insert(format!("/{}/{{parent}}/{}", parent.collection(), child.collection()), json!({
            "parameters": [{"name": "parent", "in": "path", "required": true, "schema": {"type": "string"}}],
            "get": {"summary": format!("List the {}'s {}", schema_name(parent), child.collection()), "parameters": list_params, "responses": {"200": {"description": "a page"}}},
            "post": op(&format!("Create a {n} scoped to the {}", schema_name(parent)), Some(n), "201", true),
        }));
    }
    paths.insert(
        "/".into(),
        json!({"get": op("Node information", None, "200", false)}),
    );
    paths.insert(
        "/status".into(),
        json!({"get": op("Store health and config version", None, "200", false)}),
    );
    paths.insert("/config".into(), json!({
        "get": {"summary": "Export the configuration (decK format; ?format=yaml for YAML)", "responses": {"200": {"description": "the configuration"}}},
        "post": {"summary": "Replace the whole configuration atomically", "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}, "application/yaml": {"schema": {"type": "string"}}}}, "responses": {"201": {"description": "loaded"}, "400": {"description": "every error found; nothing changed"}}},
    }));
    paths.insert("/clustering/pairing-tokens".into(), json!({
        "get": op("List unexpired pairing tokens (without secrets)", None, "200", false),
        "post": {"summary": "Create a one-time pairing token", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"ttl": {"type": "integer", "minimum": 1, "default": 3600}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}, "additionalProperties": false}}}}, "responses": {"201": {"description": "the token; shown once"}}},
    }));
    paths.insert("/clustering/pairing-tokens/{id}".into(), json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "delete": {"summary": "Revoke a pairing token", "responses": {"204": {"description": "revoked"}}}}));
    paths.insert(
        "/clustering/data-planes".into(),
        json!({"get": op("List data planes and their sync status", None, "200", false)}),
    );
    paths.insert("/clustering/data-planes/{id}".into(), json!({
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "get": op("One data plane", None, "200", false),
        "delete": {"summary": "Revoke a data plane: its stream closes and its certificate is refused", "responses": {"204": {"description": "revoked"}, "404": {"description": "unknown node"}}},
    }));
    paths.insert(
        "/cache/introspection".into(),
        json!({"delete": op("Purge the introspection cache on every node", None, "200", false)}),
    );
    paths.insert("/cache/introspection/{key}".into(), json!({"parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "description": "hex SHA-256 of the token"}], "delete": op("Purge one token from every node's introspection cache", None, "200", false)}));
    paths.insert(
        "/cache".into(),
        json!({"delete": op("Purge every plugin cache on every node", None, "200", false)}),
    );
    let mut schemas = Map::new();
    for kind in Kind::ALL {
        schemas.insert(schema_name(kind).into(), entity_schema(kind));
    }
    schemas.insert("Page".into(), json!({"type": "object", "properties": {"data": {"type": "array"}, "next": {"type": ["string", "null"]}, "offset": {"type": ["string", "null"]}}}));
    schemas.insert("Error".into(), json!({"type": "object", "properties": {"message": string(), "name": string(), "code": {"type": "integer"}, "fields": {"type": "object"}}, "required": ["message"]}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Portcullis Admin API", "version": shared::VERSION},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}, "kongAdminToken": {"type": "apiKey", "in": "header", "name": "Kong-Admin-Token"}}
        },
        "security": [{"adminToken": []}, {"kongAdminToken": []}],
        "paths": paths,
    })
}

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(build())
}
