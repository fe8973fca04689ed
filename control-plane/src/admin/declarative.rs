//! Declarative configuration: `POST /config` replaces everything atomically from a decK-style document,
//! `GET /config` exports the same format, so export → import is a round trip.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shared::{ConfigState, Entity, FieldErrors, Kind, ParseCtx, Resolver, StateError};
use uuid::Uuid;

use super::entities::{parse_entity, restore_secrets};
use super::{read_body, AdminCtx, ApiError, ApiResult, BodyFormat, Ctx, CONFIG_BODY_LIMIT};
use crate::cluster::unix_now;

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new().route("/config", get(export).post(import))
}

const FORMAT_VERSIONS: &[&str] = &["1.1", "2.1", "3.0"];
const TOP_LEVEL: &[&str] = &[
    "_format_version",
    "_transform",
    "_info",
    "_comment",
    "services",
    "routes",
    "consumers",
    "plugins",
];

async fn import(State(ctx): Ctx, headers: HeaderMap, body: Body) -> ApiResult {
    let (mut doc, format) = read_body(&headers, body, CONFIG_BODY_LIMIT)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request("expected a declarative configuration in the request body")
        })?;
    // Kong also accepts `{"config": "<yaml or json text>"}`.
    if format != BodyFormat::Yaml {
        if let Some(text) = doc.get("config").and_then(Value::as_str) {
            doc = serde_yaml::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("Cannot parse config: {e}")))?;
        }
    }
    let current = ctx.core.current();
    let state = build_state(&doc, &current.state).map_err(|errors| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({
            "name": "invalid declarative configuration",
            "code": 14,
            "message": format!("declarative config is invalid: {}", errors.summary()),
            "fields": errors.to_json(),
        }),
    })?;
    let version = ctx.core.replace(state.clone()).await?;
    let mut out = Map::new();
    for kind in Kind::ALL {
        let items: Vec<Value> = state
            .list(kind)
            .iter()
            .map(Entity::to_public_json)
            .collect();
        out.insert(kind.collection().to_string(), Value::Array(items));
    }
    out.insert("config_version".into(), json!(version));
    Ok((StatusCode::CREATED, Json(Value::Object(out))).into_response())
}

/// Builds a complete, consistent state from a declarative document, reusing ids (and so `created_at`
/// and stored secrets) of entities that keep their natural key. Every error is reported, with its path.
pub fn build_state(doc: &Value, old: &ConfigState) -> Result<ConfigState, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(obj) = doc.as_object() else {
        errors.add("@entity", "expected a declarative configuration object");
        return Err(errors);
    };
    match obj.get("_format_version").and_then(Value::as_str) {
        Some(v) if FORMAT_VERSIONS.contains(&v) => {}
        Some(v) => errors.add(
            "_format_version",
            format!(
                "unsupported version '{v}'; expected one of {}",
                FORMAT_VERSIONS.join(", ")
            ),
        ),
        None => errors.add("_format_version", "required field missing"),
    }
    for k in obj.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            errors.add(k.clone(), "unknown field");
        }
    }
    let mut b = Builder {
        new: ConfigState::default(),
        old,
        errors,
        now: unix_now(),
    };
    // Services first, then consumers, then routes, then plugins, so references within the file resolve.
    let mut pending_routes: Vec<(String, Value)> = Vec::new();
    let mut pending_plugins: Vec<(String, Value)> = Vec::new();
    for (i, svc) in items(obj, "services", &mut b.errors) {
        let path = format!("services.{i}");
        let Some(id) = b.add(Kind::Service, svc, &path) else {
            continue;
        };
        for (j, r) in nested(svc, "routes", &path, &mut b.errors) {
            let mut r = r.clone();
            r["service"] = json!({ "id": id });
            pending_routes.push((format!("{path}.routes.{j}"), r));
        }
        for (j, p) in nested(svc, "plugins", &path, &mut b.errors) {
            let mut p = p.clone();
            p["service"] = json!({ "id": id });
            pending_plugins.push((format!("{path}.plugins.{j}"), p));
        }
    }
    for (i, c) in items(obj, "consumers", &mut b.errors) {
        let path = format!("consumers.{i}");
        let Some(id) = b.add(Kind::Consumer, c, &path) else {
            continue;
        };
        for (j, p) in nested(c, "plugins", &path, &mut b.errors) {
            let mut p = p.clone();
            p["consumer"] = json!({ "id": id });
            pending_plugins.push((format!("{path}.plugins.{j}"), p));
        }
    }
    for (i, r) in items(obj, "routes", &mut b.errors) {
        pending_routes.push((format!("routes.{i}"), r.clone()));
    }
    for (path, r) in &pending_routes {
        let Some(id) = b.add(Kind::Route, r, path) else {
            continue;
        };
        for (j, p) in nested(r, "plugins", path, &mut b.errors) {
            let mut p = p.clone();
            p["route"] = json!({ "id": id });
            pending_plugins.push((format!("{path}.plugins.{j}"), p));
        }
    }
    for (i, p) in items(obj, "plugins", &mut b.errors) {
        pending_plugins.push((format!("plugins.{i}"), p.clone()));
    }
    for (path, p) in &pending_plugins {
        b.add(Kind::Plugin, p, path);
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    if let Err(problems) = b.new.check() {
        let mut errors = FieldErrors::new();
        errors.add("@entity", problems.join("; "));
        return Err(errors);
    }
    Ok(b.new)
}

fn items<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Vec<(usize, &'a Value)> {
    match obj.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
        Some(_) => {
            errors.add(key, "expected an array");
            Vec::new()
        }
    }
}

fn nested<'a>(
    parent: &'a Value,
    key: &str,
    path: &str,
    errors: &mut FieldErrors,
) -> Vec<(usize, &'a Value)> {
    match parent.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
        Some(_) => {
            errors.add(format!("{path}.{key}"), "expected an array");
            Vec::new()
        }
    }
}

struct Builder<'a> {
    new: ConfigState,
    old: &'a ConfigState,
    errors: FieldErrors,
    now: i64,
}

impl Builder<'_> {
    /// Parses one entity into the new state; returns its id, or records its errors under `path`.
    fn add(&mut self, kind: Kind, raw: &Value, path: &str) -> Option<Uuid> {
        if !raw.is_object() {
            self.errors.add(path, "expected an object");
            return None;
        }
        let mut body = raw.clone();
        let id = self.stable_id(kind, &body);
        if let Some(obj) = body.as_object_mut() {
            obj.remove("routes");
            obj.remove("plugins");
            obj.insert("id".into(), Value::String(id.to_string()));
        }
        let existing = self.old.get(kind, &id);
        restore_secrets(&mut body, existing.as_ref());
        let ctx = ParseCtx {
            id,
            now: self.now,
            created_at: existing.as_ref().map(Entity::created_at),
            resolver: &self.new,
        };
        let result = parse_entity(kind, &body, &ctx).and_then(|e| {
            if self.new.get(kind, &e.id()).is_some() {
                return Err(StateError::Unique(format!("duplicate id {}", e.id())));
            }
            self.new.put(e.clone()).map(|_| e.id())
        });
        match result {
            Ok(id) => Some(id),
            Err(StateError::Schema(f)) => {
                self.errors.merge_under(path, f);
                None
            }
            Err(e) => {
                self.errors.add(format!("{path}.@entity"), e.to_string());
                None
            }
        }
    }

    /// The id to give an entity: its own, else the id of the old entity with the same natural key, else new.
    fn stable_id(&self, kind: Kind, body: &Value) -> Uuid {
        if let Some(id) = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            return id;
        }
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let found = match kind {
            Kind::Service | Kind::Route => s("name").and_then(|n| self.old.resolve(kind, n)),
            Kind::Consumer => s("username")
                .and_then(|n| self.old.resolve(kind, n))
                .or_else(|| {
                    let cid = s("custom_id")?;
                    self.old
                        .consumers
                        .values()
                        .find(|c| c.custom_id.as_deref() == Some(cid))
                        .map(|c| c.id)
                }),
            Kind::Plugin => {
                let scope = |k: &str, kind: Kind| -> Option<Uuid> {
                    let r = body.get(k)?;
                    let key = r
                        .get("id")
                        .or_else(|| r.get("name"))
                        .and_then(Value::as_str)
                        .or(r.as_str())?;
                    self.new.resolve(kind, key)
                };
                let (svc, route, cons) = (
                    scope("service", Kind::Service),
                    scope("route", Kind::Route),
                    scope("consumer", Kind::Consumer),
                );
                s("name").and_then(|name| {
                    self.old
                        .plugins
                        .values()
                        .find(|p| {
                            p.name == name
                                && p.service.map(|f| f.id) == svc
                                && p.route.map(|f| f.id) == route
                                && p.consumer.map(|f| f.id) == cons
                        })
                        .map(|p| p.id)
                })
            }
        };
        found.unwrap_or_else(Uuid::new_v4)
    }
}

async fn export(State(ctx): Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let current = ctx.core.current();
    let doc = export_doc(&current.state);
    let wants_yaml = q
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "format=yaml"))
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("yaml"));
    if wants_yaml {
        let text = serde_yaml::to_string(&doc)
            .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response());
    }
    Ok(Json(doc).into_response())
}

/// Strips what an export does not need: timestamps, nulls and the given parent reference.
fn clean(mut v: Value, drop: &[&str]) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, val| {
            !val.is_null() && k != "created_at" && k != "updated_at" && !drop.contains(&k.as_str())
        });
    }
    v
}

/// The configuration as a decK-style document, secrets redacted.
pub fn export_doc(state: &ConfigState) -> Value {
    let plugin_json =
        |p: &shared::Plugin, drop: &[&str]| clean(Entity::Plugin(p.clone()).to_public_json(), drop);
    let scopes = |p: &shared::Plugin| {
        [p.service.is_some(), p.route.is_some(), p.consumer.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
    };
    let services: Vec<Value> = state
        .services
        .values()
        .map(|s| {
            let mut v = clean(Entity::Service(s.clone()).to_public_json(), &[]);
            let routes: Vec<Value> = state
                .routes
                .values()
                .filter(|r| r.service.map(|f| f.id) == Some(s.id))
                .map(|r| {
                    let mut rv = clean(Entity::Route(r.clone()).to_public_json(), &["service"]);
                    let plugins: Vec<Value> = state
                        .plugins
                        .values()
                        .filter(|p| scopes(p) == 1 && p.route.map(|f| f.id) == Some(r.id))
                        .map(|p| plugin_json(p, &["route"]))
                        .collect();
                    if !plugins.is_empty() {
                        rv["plugins"] = Value::Array(plugins);
                    }
                    rv
                })
                .collect();
            let plugins: Vec<Value> = state
                .plugins
                .values()
                .filter(|p| scopes(p) == 1 && p.service.map(|f| f.id) == Some(s.id))
                .map(|p| plugin_json(p, &["service"]))
                .collect();
            if !routes.is_empty() {
                v["routes"] = Value::Array(routes);
            }
            if !plugins.is_empty() {
                v["plugins"] = Value::Array(plugins);
            }
            v
        })
        .collect();
    let consumers: Vec<Value> = state
        .consumers
        .values()
        .map(|c| {
            let mut v = clean(Entity::Consumer(c.clone()).to_public_json(), &[]);
            let plugins: Vec<Value> = state
                .plugins
                .values()
                .filter(|p| scopes(p) == 1 && p.consumer.map(|f| f.id) == Some(c.id))
                .map(|p| plugin_json(p, &["consumer"]))
                .collect();
            if !plugins.is_empty() {
                v["plugins"] = Value::Array(plugins);
            }
            v
        })
        .collect();
    let routes: Vec<Value> = state
        .routes
        .values()
        .filter(|r| r.service.is_none())
        .map(|r| clean(Entity::Route(r.clone()).to_public_json(), &[]))
        .collect();
    let plugins: Vec<Value> = state
        .plugins
        .values()
        .filter(|p| scopes(p) != 1)
        .map(|p| plugin_json(p, &[]))
        .collect();
    let mut doc = json!({ "_format_version": "3.0", "services": services, "consumers": consumers, "plugins": plugins });
    // Route-scoped plugins of service-less routes stay with their route at top level.
    let mut routes = routes;
    for rv in routes.iter_mut() {
        let rid = rv["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let plugins: Vec<Value> = state
            .plugins
            .values()
            .filter(|p| scopes(p) == 1 && p.route.map(|f| f.id) == rid)
            .map(|p| plugin_json(p, &["route"]))
            .collect();
        if !plugins.is_empty() {
            rv["plugins"] = Value::Array(plugins);
        }
    }
    doc["routes"] = Value::Array(routes);
    doc
}
