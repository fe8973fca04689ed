//! The OpenAPI 3.1 document served at `/openapi.json`: every endpoint, what it accepts (`schemas.rs`
//! mirrors the parsers) and every status it can answer.

pub mod schemas;

use axum::Json;
use serde_json::{json, Map, Value};
use shared::Kind;

use schemas::{int, nullable, one_of, pattern, string, NAME_PATTERN};

/// Statuses any Admin API operation may answer besides its success: bad input, a missing or wrong admin
/// token, an unknown entity or parent, a unique or reference conflict, an oversized or unreadable body.
fn errors(out: &mut Map<String, Value>) {
    for (code, what) in [
        ("400", "invalid input; `fields` names each field and why"),
        ("401", "missing or wrong admin token"),
        ("404", "not found"),
        ("405", "method not allowed"),
        ("409", "unique constraint violation"),
        ("413", "body too large"),
        ("415", "unsupported content type"),
    ] {
        out.insert(code.into(), json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
    }
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// An operation answering `status` with `schema` (or nothing for 204), taking `body` as JSON.
fn op(summary: &str, status: &str, schema: Option<Value>, body: Option<Value>) -> Value {
    let mut responses = Map::new();
    errors(&mut responses);
    let ok = match schema {
        Some(s) => json!({"description": "success", "content": json_content(s)}),
        None => json!({"description": "success"}),
    };
    responses.insert(status.into(), ok);
    let mut v = json!({"summary": summary, "responses": responses});
    if let Some(b) = body {
        v["requestBody"] = json!({
            "required": true,
            "description": "JSON; Kong-style form bodies (`paths[]=/a`, `config.ttl=5`) are read too",
            "content": json_content(b),
        });
    }
    v
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "Service",
        Kind::Route => "Route",
        Kind::Consumer => "Consumer",
        Kind::Plugin => "Plugin",
        Kind::Certificate => "Certificate",
        Kind::Sni => "Sni",
        Kind::CaCertificate => "CaCertificate",
        Kind::Upstream => "Upstream",
        Kind::Target => "Target",
        Kind::Acl => "Acl",
        Kind::ConsumerGroup => "ConsumerGroup",
        Kind::ConsumerGroupMember => "ConsumerGroupMember",
    }
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description})
}

fn list_params() -> Value {
    json!([
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        {"name": "offset", "in": "query", "schema": pattern(r"^[A-Za-z0-9_-]{21}[AQgw]$"), "description": "the `offset` of the previous page"},
        {"name": "tags", "in": "query", "schema": pattern(TAG_FILTER_PATTERN), "description": "a,b: all of; a/b: any of; at most 5 tags"}
    ])
}

/// A tag filter: up to 5 tags joined by `,` (all of) or by `/` (any of), maybe with a trailing separator.
const TAG_FILTER_PATTERN: &str = r"^[^,/\x00-\x1f\x7f-\x9f]+((,[^,/\x00-\x1f\x7f-\x9f]+){0,4},?|(/[^,/\x00-\x1f\x7f-\x9f]+){0,4}/?)$";

fn entity_paths(paths: &mut Map<String, Value>) {
    for kind in Kind::ALL.into_iter().filter(|k| k.has_endpoints()) {
        let n = schema_name(kind);
        let c = kind.collection();
        let page = json!({"type": "object", "properties": {"data": {"type": "array", "items": schema_ref(n)}, "next": {"type": ["string", "null"]}, "offset": {"type": ["string", "null"]}}, "required": ["data", "next"]});
        let mut list = op(&format!("List {c}"), "200", Some(page.clone()), None);
        list["parameters"] = list_params();
        if kind == Kind::Consumer {
            if let Some(params) = list["parameters"].as_array_mut() {
                params.push(json!({"name": "custom_id", "in": "query", "schema": {"type": "string", "minLength": 1}, "description": "the one Consumer with this custom_id (unpaged)"}));
            }
        }
        paths.insert(format!("/{c}"), json!({
            "get": list,
            "post": op(&format!("Create a {n}"), "201", Some(schema_ref(n)), Some(schema_ref(&format!("{n}Request")))),
        }));
        let key = path_param("key", string(), "id or unique name");
        let mut put = op(
            &format!("Create or replace a {n}"),
            "200",
            Some(schema_ref(n)),
            Some(schema_ref(&format!("{n}Put"))),
        );
        // A key that names nothing becomes the new entity's name (`username` for a Consumer).
        let put_key = match kind {
            Kind::Consumer => string(),
            Kind::Certificate | Kind::CaCertificate | Kind::Target | Kind::Acl => {
                pattern(schemas::UUID_PATTERN)
            }
            Kind::Upstream => pattern(schemas::HOST_PATTERN),
            Kind::Sni => pattern(schemas::SNI_PATTERN),
            _ => pattern(NAME_PATTERN),
        };
        put["parameters"] = json!([path_param(
            "key",
            put_key,
            "id, or the name the entity gets"
        )]);
        paths.insert(format!("/{c}/{{key}}"), json!({
            "get": {"parameters": [key], "summary": format!("Read a {n}"), "responses": op("", "200", Some(read_schema(kind)), None)["responses"]},
            "put": put,
            "patch": {"parameters": [key], "summary": format!("Update a {n}"), "responses": op("", "200", Some(schema_ref(n)), None)["responses"], "requestBody": {"content": json_content(schema_ref(&format!("{n}Patch")))}},
            "delete": {"parameters": [key], "summary": format!("Delete a {n} (204 also when it does not exist)"), "responses": op("", "204", None, None)["responses"]},
        }));
    }
    for (parent, child) in super::nested::NESTED {
        let n = schema_name(child);
        let page = json!({"type": "object", "properties": {"data": {"type": "array", "items": schema_ref(n)}, "next": {"type": ["string", "null"]}, "offset": {"type": ["string", "null"]}}, "required": ["data", "next"]});
        let mut list = op(
            &format!("List the {}'s {}", schema_name(parent), child.collection()),
            "200",
            Some(page),
            None,
        );
        list["parameters"] = list_params();
        paths.insert(format!("/{}/{{parent}}/{}", parent.collection(), child.collection()), json!({
            "parameters": [path_param("parent", string(), "id or unique name of the parent")],
            "get": list,
            "post": op(&format!("Create a {n} scoped to the {}", schema_name(parent)), "201", Some(schema_ref(n)), Some(schema_ref(&format!("{n}Request")))),
        }));
        let p = schema_name(parent);
        paths.insert(format!("/{}/{{parent}}/{}/{{key}}", parent.collection(), child.collection()), json!({
            "parameters": [
                path_param("parent", string(), "id or unique name of the parent"),
                path_param("key", string(), "id or unique name (for PUT: the name the entity gets)"),
            ],
            "get": op(&format!("Read a {n} of the {p} (404 when it is not the {p}'s)"), "200", Some(schema_ref(n)), None),
            "put": op(&format!("Create or replace a {n} of the {p}"), "200", Some(schema_ref(n)), Some(schema_ref(&format!("{n}Put")))),
            "patch": op(&format!("Update a {n} of the {p}"), "200", Some(schema_ref(n)), Some(schema_ref(&format!("{n}Patch")))),
            "delete": op(&format!("Delete a {n} of the {p}"), "204", None, None),
        }));
    }
    consumer_group_paths(paths);
    paths.insert("/routes/{key}/service".into(), json!({
        "parameters": [path_param("key", string(), "id or name of the Route")],
        "get": op("Read the Route's Service (404 when it has none)", "200", Some(schema_ref("Service")), None),
        "put": op("Replace the Route's Service (a Route without one gets a new Service)", "200", Some(schema_ref("Service")), Some(schema_ref("ServicePut"))),
        "patch": op("Update the Route's Service", "200", Some(schema_ref("Service")), Some(schema_ref("ServicePatch"))),
        "delete": op("Not allowed, as in Kong (405); a Service is deleted at /services/{key}", "405", None, None),
    }));
}

fn cluster_paths(paths: &mut Map<String, Value>) {
    let token_body = json!({"type": "object", "additionalProperties": false, "properties": {
        "ttl": nullable(int(1, 365 * 86_400)),
        "max_uses": nullable(int(1, super::clustering::MAX_TOKEN_USES)),
        "labels": nullable(json!({"type": "object", "additionalProperties": string()})),
    }});
    let object = json!({"type": "object"});
    let list = json!({"type": "object", "properties": {"data": {"type": "array"}, "next": {"type": ["string", "null"]}}, "required": ["data"]});
    paths.insert("/clustering/pairing-tokens".into(), json!({
        "get": op("List unexpired pairing tokens (without secrets)", "200", Some(list.clone()), None),
        "post": op("Create a pairing (enrollment) token for max_uses nodes; the token is shown once", "201", Some(object.clone()), Some(token_body)),
    }));
    // Every field of a pairing token has a default, so the body may be left out.
    paths["/clustering/pairing-tokens"]["post"]["requestBody"]["required"] = json!(false);
    let id = path_param("id", string(), "token id");
    paths.insert(
        "/clustering/pairing-tokens/{id}".into(),
        json!({"parameters": [id], "delete": op("Revoke a pairing token", "204", None, None)}),
    );
    paths.insert("/clustering/data-planes".into(), json!({"get": {
        "summary": "List data planes and their sync status: every one, or a page with size (and offset)",
        "parameters": [
            {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::paging::MAX_OFFSET}}
        ],
        "responses": op("", "200", Some(list.clone()), None)["responses"]}}));
    let health = json!({"type": "object", "properties": {
        "total": {"type": "integer"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "target": string(),
            "weight": {"type": "integer"},
            "health": one_of(&["HEALTHY", "UNHEALTHY", "HEALTHCHECKS_OFF"]),
            "nodes": {"type": "object", "description": "reporting, healthy, and the ids of the nodes it is unhealthy on"},
        }}},
        "node_id": {"type": "null"},
    }, "required": ["data", "total"]});
    paths.insert("/upstreams/{key}/health".into(), json!({
        "parameters": [path_param("key", string(), "id or name of the Upstream")],
        "get": op("Each Target's health, from the connected nodes' reports", "200", Some(health), None),
    }));
    let node = path_param("id", string(), "node id");
    paths.insert("/clustering/data-planes/{id}".into(), json!({
        "parameters": [node],
        "get": op("One data plane", "200", Some(object.clone()), None),
        "delete": op("Revoke a data plane: its stream closes and its certificate is refused", "204", None, None),
    }));
    paths.insert("/cache/introspection".into(), json!({"delete": op("Purge the introspection cache on every node", "200", Some(object.clone()), None)}));
    let token_hash = path_param(
        "key",
        pattern("^[0-9a-fA-F]{64}$"),
        "hex SHA-256 of the token, never the token",
    );
    paths.insert("/cache/introspection/{key}".into(), json!({"parameters": [token_hash], "delete": op("Purge one token from every node's introspection cache", "200", Some(object.clone()), None)}));
    paths.insert("/cache".into(), json!({"delete": op("Purge every plugin cache on every node", "200", Some(object.clone()), None)}));
    paths.insert("/clustering/config-versions".into(), json!({"get": op("List the newest configuration versions the change log keeps, with what each changed", "200", Some(list.clone()), None)}));
    paths.insert("/clustering/session-revocations".into(), json!({"get": op("List the session revocations (back-channel logout) kept and sent to every node", "200", Some(list.clone()), None)}));
    paths.insert("/openid-connect/issuers".into(), json!({
        "get": {"summary": "Discovery documents and keys of every configured issuer", "parameters": [
            {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": super::oidc::MAX_OFFSET}}
        ], "responses": op("", "200", Some(list), None)["responses"]},
        "delete": op("Forget every issuer here and on every node", "204", None, None),
    }));
    let issuer = path_param("key", string(), "issuer URL or its id");
    paths.insert(
        "/openid-connect/issuers/{key}".into(),
        json!({
            "parameters": [issuer],
            "get": op("One issuer", "200", Some(object), None),
            "delete": op("Forget one issuer here and on every node", "204", None, None),
        }),
    );
}

/// `/schemas/…` and `/plugins/schema/{name}`: Kong's schemas of entities and plugin configs, and
/// validation without storing.
fn schema_paths(paths: &mut Map<String, Value>) {
    let collections: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| k.has_endpoints())
        .map(|k| k.collection())
        .collect();
    let plugins: Vec<&str> = shared::plugins::SUPPORTED.iter().map(|(n, _)| *n).collect();
    let entity_param = path_param("entity", one_of(&collections), "an entity collection");
    let plugin_param = path_param(
        "name",
        string(),
        &format!("a plugin name (known: {})", plugins.join(", ")),
    );
    let kong_schema = json!({"type": "object", "properties": {
        "fields": {"type": "array", "items": {"type": "object", "minProperties": 1, "maxProperties": 1}},
        "entity_checks": {"type": "array"},
    }, "required": ["fields"]});
    let record = json!({"type": "object", "properties": {
        "type": {"const": "record"},
        "fields": {"type": "array", "items": {"type": "object", "minProperties": 1, "maxProperties": 1}},
    }, "required": ["type", "fields"]});
    let success = json!({"type": "object", "properties": {"message": {"const": "schema validation successful"}}, "required": ["message"]});
    let any_entity = json!({"type": "object", "description": "an entity as a create would send it; references are not looked up"});
    paths.insert(
        "/schemas/{entity}".into(),
        json!({"parameters": [entity_param.clone()], "get": op("Kong's schema of an entity: fields with type, bounds, choices, required, unique and default", "200", Some(kong_schema.clone()), None)}),
    );
    paths.insert(
        "/schemas/{entity}/validate".into(),
        json!({"parameters": [entity_param], "post": op("Validates an entity without storing it", "200", Some(success.clone()), Some(any_entity.clone()))}),
    );
    paths.insert(
        "/schemas/plugins/{name}".into(),
        json!({"parameters": [plugin_param.clone()], "get": op("Kong's schema of a plugin: protocols, scope and the config record", "200", Some(kong_schema), None)}),
    );
    paths.insert(
        "/schemas/plugins/validate".into(),
        json!({"post": op("Validates a plugin without storing it", "200", Some(success), Some(any_entity))}),
    );
    paths.insert(
        "/plugins/schema/{name}".into(),
        json!({"parameters": [plugin_param], "get": op("The config record of a plugin's schema (Kong's older path)", "200", Some(record), None)}),
    );
}

/// Builds the document.
/// What `GET /{collection}/{key}` answers: the entity, or for a consumer group the group with its
/// Consumers (Kong's shape).
fn read_schema(kind: Kind) -> Value {
    match kind {
        Kind::ConsumerGroup => json!({"type": "object", "properties": {
            "consumer_group": schema_ref("ConsumerGroup"),
            "consumers": {"type": "array", "items": schema_ref("Consumer")},
        }, "required": ["consumer_group"], "additionalProperties": false}),
        _ => schema_ref(schema_name(kind)),
    }
}

/// Consumer-group memberships, from either side.
fn consumer_group_paths(paths: &mut Map<String, Value>) {
    let names = |field: &str| {
        json!({"type": "object", "properties": {field: {"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": string(), "minItems": 1},
    ]}}, "required": [field]})
    };
    let list_of = |field: &str, item: &str| json!({"type": "object", "properties": {field: {"type": "array", "items": schema_ref(item)}}, "required": [field]});
    let group = path_param("group", string(), "id or name of the consumer group");
    let consumer = path_param("consumer", string(), "id or username of the Consumer");
    let added = |one: &str, many: &str, one_item: &str, many_item: &str| {
        json!({"type": "object", "properties": {
        one: schema_ref(one_item), many: {"type": "array", "items": schema_ref(many_item)},
    }, "required": [one, many]})
    };
    paths.insert("/consumer_groups/{group}/consumers".into(), json!({
        "parameters": [group.clone()],
        "get": op("The group's Consumers, first joined first (by username within a second)", "200", Some(list_of("consumers", "Consumer")), None),
        "post": op("Consumers join the group (a username or id, or a list; all or none; 409 for a member)", "201", Some(added("consumer_group", "consumers", "ConsumerGroup", "Consumer")), Some(names("consumer"))),
        "delete": op("Every Consumer leaves the group (404 when it has none)", "204", None, None),
    }));
    paths.insert("/consumers/{consumer}/consumer_groups".into(), json!({
        "parameters": [consumer.clone()],
        "get": op("The Consumer's groups, first joined first (by name within a second)", "200", Some(list_of("consumer_groups", "ConsumerGroup")), None),
        "post": op("The Consumer joins groups (a name or id, or a list; all or none; 409 for a member)", "201", Some(added("consumer", "consumer_groups", "Consumer", "ConsumerGroup")), Some(names("group"))),
        "delete": op("The Consumer leaves every group (404 when it is in none)", "204", None, None),
    }));
    let one = |field: &str, item: &str| json!({"type": "object", "properties": {field: schema_ref(item)}, "required": [field]});
    paths.insert("/consumer_groups/{group}/consumers/{consumer}".into(), json!({
        "parameters": [group.clone(), consumer.clone()],
        "get": op("The Consumer, when it is in the group", "200", Some(one("consumer", "Consumer")), None),
        "delete": op("The Consumer leaves the group", "204", None, None),
    }));
    paths.insert("/consumers/{consumer}/consumer_groups/{group}".into(), json!({
        "parameters": [consumer, group],
        "get": op("The group, when the Consumer is in it", "200", Some(one("consumer_group", "ConsumerGroup")), None),
        "delete": op("The Consumer leaves the group", "204", None, None),
    }));
}

pub fn build() -> Value {
    let mut paths = Map::new();
    entity_paths(&mut paths);
    cluster_paths(&mut paths);
    let object = json!({"type": "object"});
    paths.insert(
        "/".into(),
        json!({"get": op("Node information", "200", Some(object.clone()), None)}),
    );
    let mut metrics = op(
        "The control plane and its nodes in Prometheus's text format",
        "200",
        None,
        None,
    );
    metrics["responses"]["200"]["content"] = json!({"text/plain": {"schema": string()}});
    metrics["parameters"] = json!([{"name": "per_node", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}, "description": "false leaves out the series of each node"}]);
    paths.insert("/metrics".into(), json!({ "get": metrics }));
    paths.insert(
        "/plugins/enabled".into(),
        json!({"get": op("The plugins this control plane accepts", "200", Some(json!({"type": "object", "properties": {"enabled_plugins": {"type": "array", "items": string()}}, "required": ["enabled_plugins"]})), None)}),
    );
    paths.insert(
        "/endpoints".into(),
        json!({"get": op("Every path of this document", "200", Some(json!({"type": "object", "properties": {"data": {"type": "array", "items": string()}}, "required": ["data"]})), None)}),
    );
    let tag_page = json!({"type": "object", "properties": {
        "data": {"type": "array", "items": {"type": "object", "properties": {"tag": string(), "entity_name": string(), "entity_id": string()}, "required": ["tag", "entity_name", "entity_id"]}},
        "next": {"type": ["string", "null"]}, "offset": {"type": ["string", "null"]},
    }, "required": ["data", "next"]});
    let tag_params = json!([
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        {"name": "offset", "in": "query", "schema": pattern("^[0-9]{1,9}$"), "description": "the `offset` of the previous page"},
    ]);
    let mut all_tags = op(
        "Every tag of every entity, paged",
        "200",
        Some(tag_page.clone()),
        None,
    );
    all_tags["parameters"] = tag_params.clone();
    let mut one_tag = op(
        "The entities with this tag, paged",
        "200",
        Some(tag_page),
        None,
    );
    one_tag["parameters"] = tag_params;
    paths.insert("/tags".into(), json!({"get": all_tags}));
    paths.insert(
        "/tags/{tag}".into(),
        json!({"parameters": [path_param("tag", string(), "a tag")], "get": one_tag}),
    );
    schema_paths(&mut paths);
    paths.insert(
        "/status".into(),
        json!({"get": op("Store health and config version", "200", Some(object.clone()), None)}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": op("This document", "200", Some(object.clone()), None)}),
    );
    let mut export = op(
        "Export the configuration (decK format; ?format=yaml or Accept: application/yaml for YAML)",
        "200",
        Some(object.clone()),
        None,
    );
    export["responses"]["200"]["content"]["application/yaml"] = json!({"schema": {}});
    export["parameters"] = json!([{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "yaml"]}}]);
    let mut import = op("Replace the whole configuration atomically; every error found is reported and nothing changes", "201", Some(object.clone()), None);
    import["requestBody"] = json!({"required": true, "content": {
        "application/json": {"schema": {"type": "object", "description": "a decK file: _format_version and services, routes, consumers, plugins (nested or not); or {\"config\": \"<YAML or JSON text>\"}"}},
        "application/yaml": {"schema": string()},
    }});
    let flag = json!({"type": "string", "enum": ["1", "0", "true", "false"]});
    import["parameters"] = json!([
        {"name": "dry_run", "in": "query", "schema": flag, "description": "check the document and answer what it would change, storing nothing"},
        {"name": "check_hash", "in": "query", "schema": flag, "description": "answer 304 and change nothing when the document holds what is stored"},
        {"name": "flatten_errors", "in": "query", "schema": flag, "description": "on a refusal, also list the errors entity by entity under `flattened_errors`"},
    ]);
    let change = json!({"type": "object", "properties": {
        "action": one_of(&["create", "update", "delete"]), "entity": string(), "id": string(), "name": string(),
        "fields": {"type": "array", "items": string()},
    }, "required": ["action", "entity", "id", "name", "fields"]});
    import["responses"]["200"] = json!({"description": "dry run: what the document would change", "content": json_content(json!({
        "type": "object",
        "properties": {
            "changes": {"type": "array", "items": change},
            "summary": {"type": "object", "properties": {"created": {"type": "integer"}, "updated": {"type": "integer"}, "deleted": {"type": "integer"}}, "required": ["created", "updated", "deleted"]},
        },
        "required": ["changes", "summary"],
    }))});
    import["responses"]["304"] =
        json!({"description": "check_hash: the document holds what is stored; nothing changed"});
    paths.insert("/config".into(), json!({"get": export, "post": import}));

    let mut schemas = Map::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.has_endpoints()) {
        let n = schema_name(kind);
        schemas.insert(n.into(), schemas::response(kind));
        schemas.insert(format!("{n}Request"), schemas::request(kind));
        schemas.insert(format!("{n}Patch"), schemas::patch(kind));
        schemas.insert(format!("{n}Put"), schemas::put(kind));
    }
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
