//! The Admin API's own description, in Kong's shapes that tools read: `GET /` (the version decK checks,
//! edition, node id, host name, plugins available and in use, configuration), `/plugins/enabled`,
//! `/endpoints` (every path the OpenAPI document serves) and `/tags`, `/tags/{tag}` (tagged entities,
//! paged).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use shared::Kind;

use super::entities::{page_size, parse_query};
use super::{AdminCtx, ApiError, ApiResult, Ctx};

/// The Kong Admin API release whose behaviour this one follows, reported as `version` so that Kong
/// tooling (decK) accepts it; Portcullis's own version is `portcullis_version`.
pub const KONG_COMPATIBLE_VERSION: &str = "3.4.0";

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new()
        .route("/", get(root))
        .route("/plugins/enabled", get(enabled))
        .route("/endpoints", get(endpoints))
        .route("/tags", get(|s: Ctx, q: RawQuery| tags(s, None, q)))
        .route(
            "/tags/{tag}",
            get(|s: Ctx, Path(t): Path<String>, q: RawQuery| tags(s, Some(t), q)),
        )
}

/// The host's name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

async fn root(State(ctx): Ctx) -> Json<Value> {
    let available: Map<String, Value> = shared::plugins::SUPPORTED
        .iter()
        .map(|(n, v)| (n.to_string(), json!({ "version": v })))
        .collect();
    let current = ctx.core.current();
    let mut in_use: Vec<&str> = current
        .state
        .plugins
        .values()
        .map(|p| p.name.as_str())
        .collect();
    in_use.sort_unstable();
    in_use.dedup();
    let name = ctx.cluster.nodes.name();
    Json(json!({
        "tagline": "Welcome to Portcullis",
        "version": KONG_COMPATIBLE_VERSION,
        "portcullis_version": shared::VERSION,
        "edition": "community",
        "role": "control_plane",
        "node_id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()),
        "hostname": hostname(),
        // One process serves the Admin API and the cluster; it has no worker processes.
        "pids": { "master": std::process::id(), "workers": [] },
        "configuration": ctx.configuration,
        "plugins": { "available_on_server": available, "enabled_in_cluster": in_use },
    }))
}

async fn enabled() -> Json<Value> {
    let names: Vec<&str> = shared::plugins::SUPPORTED.iter().map(|(n, _)| *n).collect();
    Json(json!({ "enabled_plugins": names }))
}

async fn endpoints() -> Json<Value> {
    let doc = super::openapi::build();
    let mut paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    paths.sort();
    Json(json!({ "data": paths }))
}

/// `/tags` and `/tags/{tag}`: `{entity_name, entity_id, tag}` for every tag of every entity (or of
/// one tag), ordered by tag, collection and id, paged with `size` (1–1000, default 100) and `offset`.
async fn tags(State(ctx): Ctx, tag: Option<String>, RawQuery(q): RawQuery) -> ApiResult {
    let params = parse_query(&q)?;
    let get_param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let size = page_size(get_param("size"))?;
    // The offset is the position of the page's first row, as the previous page's `offset` gives it.
    let start = match get_param("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .ok()
            .filter(|_| (1..=9).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::schema(shared::entity::field_error("offset", "not a valid offset"))
            })?,
    };
    let current = ctx.core.current();
    let mut rows: Vec<(String, &'static str, String)> = Vec::new();
    for kind in Kind::ALL {
        for e in current.state.list(kind) {
            for t in e.tags() {
                if tag.as_deref().is_none_or(|want| want == t) {
                    rows.push((t.clone(), kind.collection(), e.id().to_string()));
                }
            }
        }
    }
    rows.sort();
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(size)
        .map(|(t, c, id)| json!({"tag": t, "entity_name": c, "entity_id": id}))
        .collect();
    let more = rows.len() > start + size;
    let (next, offset) = match more {
        true => {
            let off = (start + size).to_string();
            let path = match &tag {
                Some(t) => format!("/tags/{t}"),
                None => "/tags".into(),
            };
            (
                json!(format!("{path}?size={size}&offset={off}")),
                json!(off),
            )
        }
        false => (Value::Null, Value::Null),
    };
    Ok(Json(json!({"data": page, "next": next, "offset": offset})).into_response())
}
