//! Cluster administration: pairing tokens, the node list, revocation, cache purges sent to every node, and
//! the session revocations kept for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::pairing::PairingToken;

use crate::cluster::token_record::TokenRecord;
use shared::schema::{parsing_form, Fields};

use super::{read_body, AdminCtx, ApiError, ApiResult, BodyFormat, Ctx, BODY_LIMIT};
use crate::cluster::nodes::Remote;
use crate::cluster::unix_now;
use crate::store::{Event, Records};

/// Most nodes one enrollment token may admit.
pub const MAX_TOKEN_USES: i64 = 100_000;
/// Default lifetime of a pairing token.
const DEFAULT_TOKEN_TTL: i64 = 3600;

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new()
        .route(
            "/clustering/pairing-tokens",
            get(list_tokens).post(create_token),
        )
        .route("/clustering/pairing-tokens/{id}", delete(delete_token))
        .route("/clustering/data-planes", get(list_nodes))
        .route(
            "/clustering/data-planes/{id}",
            get(get_node).delete(revoke_node),
        )
        .route(
            "/cache/introspection",
            delete(|s: Ctx| purge(s, "oauth2-introspection", None)),
        )
        .route(
            "/cache/introspection/{key}",
            delete(|s: Ctx, Path(k): Path<String>| purge(s, "oauth2-introspection", Some(k))),
        )
        .route("/cache", delete(|s: Ctx| purge(s, "*", None)))
        .route("/clustering/session-revocations", get(list_revocations))
        .route("/clustering/config-versions", get(config_versions))
}

/// Most versions `GET /clustering/config-versions` lists.
const VERSIONS_LISTED: usize = 50;

/// The newest configuration versions the change log keeps: each one's hash and what it changed.
async fn config_versions(State(ctx): Ctx) -> ApiResult {
    let newest = ctx
        .core
        .log()
        .lock()
        .expect("change log lock")
        .newest(VERSIONS_LISTED);
    let data: Vec<Value> = newest
        .iter()
        .map(|e| {
            let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for change in &e.changes {
                let (kind, put) = match change {
                    shared::Change::Put(entity) => (entity.kind(), true),
                    shared::Change::Delete(kind, _) => (*kind, false),
                };
                let c = counts.entry(kind.collection().to_string()).or_default();
                if put { c.0 += 1 } else { c.1 += 1 }
            }
            let entities: Value = counts
                .into_iter()
                .map(|(k, (put, deleted))| (k, json!({"put": put, "deleted": deleted})))
                .collect::<serde_json::Map<_, _>>()
                .into();
            json!({"version": e.version, "hash": e.hash, "changes": e.changes.len(), "entities": entities})
        })
        .collect();
    Ok(Json(json!({ "data": data, "next": null })).into_response())
}

/// The session revocations kept and sent to every node (who was logged out, not any token).
async fn list_revocations(State(ctx): Ctx) -> ApiResult {
    let store = ctx.core.store();
    let kept = crate::cluster::revocations::current(store.as_ref(), unix_now()).await?;
    Ok(Json(json!({ "data": kept, "total": kept.len() })).into_response())
}

async fn create_token(State(ctx): Ctx, headers: HeaderMap, body: Body) -> ApiResult {
    let (body, format) = read_body(&headers, body, BODY_LIMIT)
        .await?
        .unwrap_or_else(|| (json!({}), BodyFormat::Json));
    let (ttl, max_uses, labels, errors) = parsing_form(format == BodyFormat::Form, || {
        let mut f = Fields::new(&body, "")?;
        let ttl = f.int_or("ttl", 1, 365 * 86_400, DEFAULT_TOKEN_TTL);
        let max_uses = f.int_or("max_uses", 1, MAX_TOKEN_USES, 1);
        let labels: BTreeMap<String, String> = f.opt_string_map("labels").unwrap_or_default();
        Ok::<_, shared::FieldErrors>((ttl, max_uses, labels, f.finish()))
    })
    .map_err(ApiError::schema)?;
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    let token = PairingToken {
        id: hex::encode(rand::random::<[u8; 8]>()),
        secret: hex::encode(rand::random::<[u8; 32]>()),
        ca_fingerprint: ctx.cluster.pki.ca_fingerprint.clone(),
    };
    let now = unix_now();
    let record = TokenRecord {
        id: token.id.clone(),
        secret_hash: token.secret_hash(),
        created_at: now,
        expires_at: now + ttl,
        labels: labels.clone(),
        max_uses: max_uses as u64,
        uses: 0,
    };
    ctx.core
        .store()
        .put_record(Records::PairingTokens, &token.id, &record.to_value())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": token.id,
            "token": token.encode(),
            "created_at": now,
            "expires_at": now + ttl,
            "labels": labels,
            "max_uses": max_uses,
            "ca_fingerprint": token.ca_fingerprint,
        })),
    )
        .into_response())
}

async fn list_tokens(State(ctx): Ctx) -> ApiResult {
    let now = unix_now();
    let data: Vec<Value> = ctx
        .core
        .store()
        .list_records(Records::PairingTokens)
        .await?
        .into_iter()
        .filter_map(|(_, v)| TokenRecord::read(&v))
        .filter(|r| !r.expired(now))
        .map(|r| r.view())
        .collect();
    Ok(Json(json!({ "data": data, "next": null })).into_response())
}

async fn delete_token(State(ctx): Ctx, Path(id): Path<String>) -> ApiResult {
    ctx.core
        .store()
        .take_record(Records::PairingTokens, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every node, or a page of them with `size` (and `offset`).
async fn list_nodes(State(ctx): Ctx, RawQuery(q): RawQuery) -> ApiResult {
    let page = super::paging::IndexPage::from_query(q.as_deref(), usize::MAX)?;
    let latest = ctx.cluster.latest();
    let remote = remote_status(&ctx).await;
    let (data, total) = ctx
        .cluster
        .nodes
        .page(page.offset, page.size, latest.as_deref(), &remote);
    let next = page.next("/clustering/data-planes", data.len(), total);
    Ok(Json(json!({
        "data": data,
        "next": next,
        "total": total,
        "latest_config": latest.map(|s| json!({"version": s.version, "hash": s.hash})),
    }))
    .into_response())
}

async fn get_node(State(ctx): Ctx, Path(id): Path<String>) -> ApiResult {
    let latest = ctx.cluster.latest();
    let remote = remote_status(&ctx).await;
    let node = ctx
        .cluster
        .nodes
        .view(Some(&id), latest.as_deref(), &remote)
        .pop()
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(node).into_response())
}

/// What other control planes sharing the store report of their nodes, after re-reading the node records
/// (a node may have paired with another control plane).
pub(super) async fn remote_status(ctx: &AdminCtx) -> HashMap<String, Remote> {
    if !ctx.core.store().shared() {
        return HashMap::new();
    }
    if let Err(e) = ctx.cluster.nodes.reload_all().await {
        tracing::warn!(error = %e, "cannot re-read node records; showing what this control plane knows");
    }
    let liveness = (ctx.cluster.settings.heartbeat_interval * 3).max(Duration::from_secs(3));
    crate::sharing::remote_status(&ctx.core, liveness).await
}

async fn revoke_node(State(ctx): Ctx, Path(id): Path<String>) -> ApiResult {
    if !ctx.cluster.nodes.revoke(&id).await? {
        return Err(ApiError::not_found());
    }
    crate::cluster::counters::SyncCounters::bump(&ctx.cluster.nodes.counters.revocations);
    tracing::info!(node_id = %id, "node revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge(State(ctx): Ctx, cache: &'static str, key: Option<String>) -> ApiResult {
    let key = key.unwrap_or_default();
    if !key.is_empty() && (key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(ApiError::schema(shared::entity::field_error(
            "key",
            "expected the hex SHA-256 of the token (64 hex digits), never the token itself",
        )));
    }
    let nodes = ctx.cluster.nodes.connected();
    // Through the store, so the nodes of every control plane sharing it are reached.
    ctx.core
        .store()
        .announce(&Event::Purge {
            cache: cache.to_string(),
            key: key.to_ascii_lowercase(),
        })
        .await?;
    tracing::info!(cache, single = !key.is_empty(), nodes, "cache purge sent");
    Ok((
        StatusCode::OK,
        Json(json!({ "message": "purge sent", "cache": cache, "data_planes": nodes })),
    )
        .into_response())
}
