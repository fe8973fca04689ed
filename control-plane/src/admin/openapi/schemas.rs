//! JSON Schemas of the entities, written to accept exactly what `shared`'s parsers accept from a JSON
//! body: the same patterns (shared as constants where the parser uses a regular expression), ranges,
//! enums, `null` for "not set", and Kong's `{}` for an empty array. Responses have their own, looser
//! shapes (every optional field may be `null`).

use serde_json::{json, Map, Value};
use shared::http_syntax::{SERVICE_PATH_PATTERN, SERVICE_URL_PATTERN};
use shared::keyword::Keyword;
use shared::protocol::Protocol;
use shared::Kind;

/// Entity names and `instance_name`.
pub use shared::entity::NAME_PATTERN;
/// Service hosts (DNS name, IPv4, or bracketed IPv6).
pub const HOST_PATTERN: &str = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?)$";
/// SNI names: a host name with at most one leading or trailing `*` label, no port.
pub const SNI_PATTERN: &str = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*(\.\*)?\.?$";
/// Ids: hyphenated UUIDs.
pub const UUID_PATTERN: &str =
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$";

/// `schema` or `null` (a JSON `null` reads as "not set").
pub fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// An array of `items`, or Kong's `{}` for an empty one, or `null`.
pub fn array_of(items: Value) -> Value {
    json!({"anyOf": [
        {"type": "array", "items": items},
        {"type": "object", "maxProperties": 0},
        {"type": "null"},
    ]})
}

pub fn string() -> Value {
    json!({"type": "string"})
}

pub fn pattern(p: &str) -> Value {
    json!({"type": "string", "pattern": p})
}

pub fn int(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

pub fn boolean() -> Value {
    json!({"type": "boolean"})
}

pub fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A reference to another entity: its id or name, bare or as `{"id": …}`.
fn reference() -> Value {
    nullable(json!({"anyOf": [
        string(),
        {"type": "object", "properties": {"id": string()}, "required": ["id"]},
        {"type": "object", "properties": {"name": string()}, "required": ["name"]},
        {"type": "object", "properties": {"username": string()}, "required": ["username"]},
    ]}))
}

fn common(props: &mut Map<String, Value>) {
    props.insert("id".into(), nullable(pattern(UUID_PATTERN)));
    props.insert(
        "tags".into(),
        array_of(json!({"type": "string", "pattern": "^[^,/]+$"})),
    );
    props.insert("created_at".into(), nullable(int(0, i64::MAX)));
    props.insert(
        "updated_at".into(),
        json!({"description": "set by the server; ignored"}),
    );
}

/// What a create or replace request may carry.
pub fn request(kind: Kind) -> Value {
    let mut p = Map::new();
    common(&mut p);
    let timeout = nullable(int(1, i32::MAX as i64));
    let mut schema = json!({"type": "object", "additionalProperties": false});
    match kind {
        Kind::Service => {
            p.insert("name".into(), nullable(pattern(NAME_PATTERN)));
            p.insert("url".into(), nullable(json!({"type": "string", "pattern": SERVICE_URL_PATTERN, "not": {"pattern": r"\?"}, "description": "shorthand for protocol, host, port and path; no query"})));
            p.insert("protocol".into(), nullable(one_of(&Protocol::names())));
            p.insert("host".into(), nullable(pattern(HOST_PATTERN)));
            p.insert("port".into(), nullable(int(0, 65535)));
            p.insert("path".into(), nullable(pattern(SERVICE_PATH_PATTERN)));
            p.insert("retries".into(), nullable(int(0, 32767)));
            p.insert("connect_timeout".into(), timeout.clone());
            p.insert("write_timeout".into(), timeout.clone());
            p.insert("read_timeout".into(), timeout);
            p.insert("enabled".into(), nullable(boolean()));
            p.insert("tls_verify".into(), nullable(boolean()));
            p.insert("tls_verify_depth".into(), nullable(int(0, 64)));
            p.insert("client_certificate".into(), nullable(json!({"description": "the Certificate presented to the upstream, by id", "anyOf": [
                pattern(UUID_PATTERN),
                {"type": "object", "properties": {"id": pattern(UUID_PATTERN)}, "required": ["id"]},
            ]})));
            p.insert("ca_certificates".into(), array_of(pattern(UUID_PATTERN)));
            schema["anyOf"] = json!([
                {"required": ["host"], "properties": {"host": string()}},
                {"required": ["url"], "properties": {"url": string()}},
            ]);
        }
        Kind::Route => {
            p.insert("name".into(), nullable(pattern(NAME_PATTERN)));
            for field in shared::entity::route_unmatched() {
                p.insert((*field).into(), json!({"type": ["array", "null"], "maxItems": 0, "description": "Kong's; routes here do not match on it, so only empty"}));
            }
            p.insert(
                "protocols".into(),
                nullable(
                    json!({"type": "array", "minItems": 1, "items": one_of(&Protocol::names()), "description": "http and https, or grpc and grpcs (not both families); a gRPC Route takes no methods and never strips its path"}),
                ),
            );
            p.insert("methods".into(), array_of(pattern("^[A-Z]+$")));
            p.insert("hosts".into(), array_of(json!({"type": "string", "description": "host name, optionally with one leading or trailing '*' label and a port"})));
            p.insert("paths".into(), array_of(json!({"type": "string", "description": "a prefix starting with '/' (no empty segments, spaces or control characters), or '~' and a regular expression"})));
            p.insert("headers".into(), nullable(json!({"type": "object", "additionalProperties": {"anyOf": [string(), {"type": "array", "minItems": 1, "items": string()}]}})));
            p.insert(
                "regex_priority".into(),
                nullable(int(i32::MIN as i64, i32::MAX as i64)),
            );
            p.insert("strip_path".into(), nullable(boolean()));
            p.insert("preserve_host".into(), nullable(boolean()));
            p.insert("path_handling".into(), nullable(one_of(&["v0", "v1"])));
            p.insert(
                "https_redirect_status_code".into(),
                nullable(json!({"type": "integer", "enum": [426, 301, 302, 307, 308]})),
            );
            p.insert("request_buffering".into(), nullable(boolean()));
            p.insert("response_buffering".into(), nullable(boolean()));
            p.insert("service".into(), reference());
            schema["description"] = json!("needs at least one of methods, hosts, headers, paths");
        }
        Kind::Consumer => {
            p.insert("username".into(), nullable(string()));
            p.insert("custom_id".into(), nullable(string()));
            schema["anyOf"] = json!([
                {"required": ["username"], "properties": {"username": {"type": "string", "minLength": 1}}},
                {"required": ["custom_id"], "properties": {"custom_id": {"type": "string", "minLength": 1}}},
            ]);
        }
        Kind::Plugin => {
            p.insert(
                "name".into(),
                one_of(
                    &shared::plugins::SUPPORTED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>(),
                ),
            );
            p.insert("instance_name".into(), nullable(pattern(NAME_PATTERN)));
            p.insert("config".into(), json!({"type": ["object", "null"], "description": "validated by the plugin's schema (/schemas/plugins/{name}); unknown fields are rejected; secrets read back as \"[redacted]\""}));
            p.insert("enabled".into(), nullable(boolean()));
            p.insert("protocols".into(), array_of(one_of(&Protocol::names())));
            p.insert("service".into(), reference());
            p.insert("route".into(), reference());
            p.insert("consumer".into(), reference());
            schema["required"] = json!(["name"]);
        }
        Kind::Certificate => {
            let pem = |what: &str| json!({"type": "string", "description": format!("PEM: {what}")});
            p.insert(
                "cert".into(),
                pem("the certificate chain, leaf first; not expired"),
            );
            p.insert("key".into(), pem("the leaf's private key (PKCS#8, PKCS#1 or SEC1); reads back as \"[redacted]\", which a write may echo to keep the stored key"));
            p.insert(
                "cert_alt".into(),
                nullable(pem(
                    "a second chain whose key has another type (RSA and ECDSA, say)",
                )),
            );
            p.insert(
                "key_alt".into(),
                nullable(pem("the second chain's private key; redacted like `key`")),
            );
            p.insert("snis".into(), array_of(pattern(SNI_PATTERN)));
            schema["required"] = json!(["cert", "key"]);
            schema["description"] =
                json!("`snis` sets the certificate's SNI entities to exactly these names");
        }
        Kind::CaCertificate => {
            p.insert("cert".into(), json!({"type": "string", "description": "PEM: one CA certificate (basic constraints CA:TRUE), not expired"}));
            p.insert("cert_digest".into(), nullable(json!({"type": "string", "description": "hex SHA-256 of the certificate's DER; computed when absent"})));
            schema["required"] = json!(["cert"]);
        }
        Kind::Upstream => {
            p.insert("name".into(), pattern(HOST_PATTERN));
            p.insert(
                "algorithm".into(),
                nullable(one_of(&[
                    "round-robin",
                    "consistent-hashing",
                    "least-connections",
                ])),
            );
            for f in ["hash_on", "hash_fallback"] {
                p.insert(
                    f.into(),
                    nullable(one_of(&["none", "consumer", "ip", "header", "cookie"])),
                );
            }
            for f in ["hash_on_header", "hash_fallback_header", "hash_on_cookie"] {
                p.insert(f.into(), nullable(string()));
            }
            p.insert(
                "hash_on_cookie_path".into(),
                nullable(pattern(SERVICE_PATH_PATTERN)),
            );
            p.insert("slots".into(), nullable(int(10, 65536)));
            p.insert("healthchecks".into(), json!({"type": ["object", "null"], "description": "Kong's shape: active {type, http_path, timeout, concurrency, https_verify_certificate, https_sni, healthy {interval, successes, http_statuses}, unhealthy {interval, http_failures, tcp_failures, timeouts, http_statuses}}, passive {type, healthy, unhealthy (no interval)}, threshold; unset fields keep Kong's defaults"}));
            p.insert("host_header".into(), nullable(pattern(HOST_PATTERN)));
            schema["required"] = json!(["name"]);
        }
        Kind::Target => {
            p.insert("target".into(), json!({"type": "string", "description": "host:port (port 8000 when left out); the host must resolve"}));
            p.insert("weight".into(), nullable(int(0, 65535)));
            p.insert("upstream".into(), reference());
            schema["required"] = json!(["target"]);
        }
        Kind::ConsumerGroup => {
            p.insert("name".into(), pattern(NAME_PATTERN));
            schema["required"] = json!(["name"]);
        }
        Kind::ConsumerGroupMember => {
            p.insert("consumer_group".into(), reference());
            p.insert("consumer".into(), reference());
        }
        Kind::Acl => {
            p.insert("group".into(), json!({"type": "string", "minLength": 1, "description": "a group the Consumer belongs to, once per Consumer"}));
            p.insert("consumer".into(), reference());
            schema["required"] = json!(["group"]);
        }
        Kind::Sni => {
            p.insert("name".into(), pattern(SNI_PATTERN));
            p.insert("certificate".into(), json!({"description": "the Certificate, by id (given by the path on the nested endpoint)", "anyOf": [
                pattern(UUID_PATTERN),
                {"type": "object", "properties": {"id": pattern(UUID_PATTERN)}, "required": ["id"]},
            ]}));
            schema["required"] = json!(["name"]);
            schema["description"] =
                json!("names a Certificate; the name must not be an IP address");
        }
    }
    schema["properties"] = Value::Object(p);
    schema
}

/// What a PATCH may carry: any field of the entity but `id`, merged into the stored one.
pub fn patch(kind: Kind) -> Value {
    let mut schema = request(kind);
    let obj = schema.as_object_mut().expect("an object schema");
    obj.remove("anyOf");
    obj.remove("required");
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.remove("id");
    }
    schema
}

/// What a PUT may carry: a whole entity whose id comes from the path (a body may repeat that id).
pub fn put(kind: Kind) -> Value {
    let mut schema = request(kind);
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.remove("id");
    }
    schema
}

/// What the server answers for an entity.
pub fn response(kind: Kind) -> Value {
    let fields: &[&str] = match kind {
        Kind::Service => &[
            "name",
            "protocol",
            "host",
            "port",
            "path",
            "retries",
            "connect_timeout",
            "write_timeout",
            "read_timeout",
            "enabled",
            "tls_verify",
            "tls_verify_depth",
            "client_certificate",
            "ca_certificates",
        ],
        Kind::Route => &[
            "name",
            "protocols",
            "methods",
            "hosts",
            "paths",
            "headers",
            "regex_priority",
            "strip_path",
            "preserve_host",
            "path_handling",
            "https_redirect_status_code",
            "request_buffering",
            "response_buffering",
            "service",
            "snis",
            "sources",
            "destinations",
        ],
        Kind::Consumer => &["username", "custom_id"],
        Kind::Certificate => &["cert", "key", "cert_alt", "key_alt", "snis"],
        Kind::Sni => &["name", "certificate"],
        Kind::CaCertificate => &["cert", "cert_digest"],
        Kind::Upstream => &[
            "name",
            "algorithm",
            "hash_on",
            "hash_fallback",
            "hash_on_header",
            "hash_fallback_header",
            "hash_on_cookie",
            "hash_on_cookie_path",
            "slots",
            "healthchecks",
            "host_header",
        ],
        Kind::Target => &["target", "weight", "upstream"],
        Kind::Acl => &["group", "consumer"],
        Kind::ConsumerGroup => &["name"],
        Kind::ConsumerGroupMember => &["consumer_group", "consumer"],
        Kind::Plugin => &[
            "name",
            "instance_name",
            "config",
            "enabled",
            "protocols",
            "service",
            "route",
            "consumer",
        ],
    };
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
    props.insert(
        "tags".into(),
        nullable(json!({"type": "array", "items": string()})),
    );
    props.insert("created_at".into(), json!({"type": "integer"}));
    // An ACL has no `updated_at`, as in Kong.
    let mut required = vec!["id", "created_at"];
    if kind != Kind::Acl {
        props.insert("updated_at".into(), json!({"type": "integer"}));
        required.push("updated_at");
    }
    for f in fields {
        props.insert(f.to_string(), json!({}));
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}
