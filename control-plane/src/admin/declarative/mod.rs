//! Declarative configuration: `POST /config` replaces everything atomically from a decK-style document,
//! `GET /config` exports the same format, so export → import is a round trip.

mod build;
mod document;
mod export;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shared::{Entity, Kind};

pub use build::build_state;
pub use document::Document;
pub use export::export_doc;

use super::{read_bytes, AdminCtx, ApiError, ApiResult, Ctx};

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new().route("/config", get(export).post(import))
}

async fn import(State(ctx): Ctx, headers: HeaderMap, body: Body) -> ApiResult {
    let (bytes, format) = read_bytes(&headers, body, ctx.config_body_limit)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request("expected a declarative configuration in the request body")
        })?;
    let doc = Document::from_body(&bytes, format).map_err(ApiError::bad_request)?;
    drop(bytes);
    let current = ctx.core.current();
    let state = build_state(&doc, &current.state).map_err(|errors| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({
            "name": "invalid declarative configuration",
            "code": 14,
            "message": format!("declarative config is invalid: {}", errors.summary()),
            "fields": errors.to_json(),
            "omitted_errors": errors.omitted(),
        }),
    })?;
    drop(doc);
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

async fn export(State(ctx): Ctx, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let current = ctx.core.current();
    let doc = export_doc(&current.state);
    let params: Vec<(String, String)> = q
        .as_deref()
        .map(serde_urlencoded::from_str)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?
        .unwrap_or_default();
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
    if wants_yaml {
        let text = serde_yaml::to_string(&doc)
            .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response());
    }
    Ok(Json(doc).into_response())
}
