//! Declarative configuration: `POST /config` replaces everything atomically from a decK-style document,
//! `GET /config` exports the same format, so export → import is a round trip.

mod build;
pub mod changes;
mod document;
mod export;
mod flattened;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shared::Kind;

pub use build::build_state;
pub use document::Document;
pub use export::export_doc;
pub use flattened::flattened_errors;

use super::{read_bytes, AdminCtx, ApiError, ApiResult, Ctx};

/// Lists an entity of a declarative document may nest (a Service its `routes` and `plugins`, an
/// Upstream its `targets`, a Certificate its `snis`, a Consumer its `acls`, …).
pub const NESTED_LISTS: &[&str] = &["routes", "plugins", "targets", "snis", "acls"];

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new().route("/config", get(export).post(import))
}

/// How `POST /config` was asked to answer.
#[derive(Debug, Default)]
struct ImportMode {
    /// `dry_run=1`: build and check the new configuration, answer what it would change, store nothing.
    dry_run: bool,
    /// `check_hash=1` (Kong's): answer 304 and change nothing when the document holds what is stored.
    check_hash: bool,
    /// `flatten_errors=1` (Kong's): errors also listed entity by entity, under `flattened_errors`.
    flatten_errors: bool,
}

impl ImportMode {
    fn from_query(q: Option<&str>) -> Result<ImportMode, ApiError> {
        let mut mode = ImportMode::default();
        for (k, v) in query_pairs(q)? {
            let flag = match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(ApiError::schema(shared::entity::field_error(
                        &k,
                        "expected 1, 0, true or false",
                    )))
                }
            };
            match k.as_str() {
                "dry_run" => mode.dry_run = flag,
                "check_hash" => mode.check_hash = flag,
                "flatten_errors" => mode.flatten_errors = flag,
                _ => {
                    return Err(ApiError::schema(shared::entity::field_error(
                        &k,
                        "unknown option (known: dry_run, check_hash, flatten_errors)",
                    )))
                }
            }
        }
        Ok(mode)
    }
}

fn query_pairs(q: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    Ok(q.map(serde_urlencoded::from_str)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?
        .unwrap_or_default())
}

async fn import(
    State(ctx): Ctx,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let mode = ImportMode::from_query(q.as_deref())?;
    let (bytes, format) = read_bytes(&headers, body, ctx.config_body_limit)
        .await?
        .ok_or_else(|| ApiError::bad_request("expected a declarative configuration"))?;
    let doc = Document::from_body(&bytes, format).map_err(ApiError::bad_request)?;
    drop(bytes);
    let current = ctx.core.current();
    let state = build_state(&doc, &current.state).map_err(|errors| {
        let mut body = json!({
            "name": "invalid declarative configuration",
            "code": 14,
            "message": format!("declarative config is invalid: {}", errors.summary()),
            "fields": errors.to_json(),
            "omitted_errors": errors.omitted(),
        });
        if mode.flatten_errors {
            body["flattened_errors"] = flattened::flattened_errors(&doc, &errors);
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body,
        }
    })?;
    drop(doc);
    if mode.dry_run || mode.check_hash {
        let found = changes::changes(&current.state, &state);
        if mode.dry_run {
            return Ok(Json(changes::report(&found)).into_response());
        }
        if found.is_empty() {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
    }
    let version = ctx.core.replace(state.clone()).await?;
    // Kong's answer: every entity of the new configuration, keyed by id.
    let mut out = Map::new();
    for kind in Kind::ALL {
        let items: Map<String, Value> = state
            .list(kind)
            .iter()
            .map(|e| (e.id().to_string(), e.to_public_json()))
            .collect();
        out.insert(kind.collection().to_string(), Value::Object(items));
    }
    out.insert("config_version".into(), json!(version));
    Ok((StatusCode::CREATED, Json(Value::Object(out))).into_response())
}

async fn export(State(ctx): Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let current = ctx.core.current();
    let doc = export_doc(&current.state);
    let params = query_pairs(q.as_deref())?;
    let mut format = None;
    for (k, v) in &params {
        if k == "format" {
            match v.as_str() {
                "json" | "yaml" => format = Some(v.as_str()),
                _ => {
                    return Err(ApiError::schema(shared::entity::field_error(
                        "format",
                        "expected one of: json, yaml",
                    )))
                }
            }
        }
    }
    let wants_yaml = format == Some("yaml")
        || format.is_none()
            && headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("yaml"));
    if format == Some("json") {
        return Ok(Json(doc).into_response());
    }
    let text = serde_yaml::to_string(&doc)
        .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if wants_yaml {
        return Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response());
    }
    // Kong's shape: the document as YAML text under `config`, which `POST /config` takes back as is.
    Ok(Json(json!({ "config": text })).into_response())
}
