//! `GET /upstreams/{id|name}/health` on the control plane: each Target of an Upstream in Kong's shape,
//! its health aggregated from what the connected nodes report (every node keeps its own, as in Kong):
//! a Target is healthy on a node while one of its addresses is there;
//! `HEALTHY` when healthy on every reporting node, `UNHEALTHY` when not on at least one (they are listed),
//! `HEALTHCHECKS_OFF` when the Upstream neither probes nor counts failures.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::{Kind, Resolver};

use super::{AdminCtx, ApiError, ApiResult, Ctx};

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new().route("/upstreams/{key}/health", get(health))
}

async fn health(State(ctx): Ctx, Path(key): Path<String>) -> ApiResult {
    let current = ctx.core.current();
    let state = &current.state;
    let id = state
        .resolve(Kind::Upstream, &key)
        .ok_or_else(ApiError::not_found)?;
    let checks_on = state.upstreams[&id].healthchecks.enabled();
    let latest = ctx.cluster.latest();
    let remote = super::clustering::remote_status(&ctx).await;
    let nodes = ctx.cluster.nodes.view(None, latest.as_deref(), &remote);
    let connected: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["status"] == "connected")
        .collect();
    let upstream_id = id.to_string();
    let data: Vec<Value> = state
        .targets
        .values()
        .filter(|t| t.upstream.id == id && t.weight > 0)
        .map(|t| {
            let reports: Vec<(&Value, bool)> = connected
                .iter()
                .filter_map(|n| {
                    // A node reports each address of the Target; it is healthy there while one is.
                    let addresses: Vec<bool> = n["target_health"]
                        .as_array()?
                        .iter()
                        .filter(|h| {
                            h["upstream_id"] == upstream_id.as_str()
                                && h["target"] == t.target.as_str()
                        })
                        .map(|h| h["healthy"].as_bool().unwrap_or(true))
                        .collect();
                    (!addresses.is_empty()).then(|| (&n["id"], addresses.contains(&true)))
                })
                .collect();
            let unhealthy_on: Vec<&Value> = reports
                .iter()
                .filter(|(_, healthy)| !healthy)
                .map(|(n, _)| *n)
                .collect();
            let health = match (checks_on, unhealthy_on.is_empty()) {
                (false, _) => "HEALTHCHECKS_OFF",
                (true, true) => "HEALTHY",
                (true, false) => "UNHEALTHY",
            };
            let mut view = t.health_view(health);
            view["nodes"] = json!({
                "reporting": reports.len(),
                "healthy": reports.len() - unhealthy_on.len(),
                "unhealthy_on": unhealthy_on,
            });
            view
        })
        .collect();
    Ok(Json(json!({"total": data.len(), "data": data, "node_id": null})).into_response())
}
