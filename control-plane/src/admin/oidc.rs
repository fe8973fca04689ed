//! `/openid-connect/issuers`: the discovery document and keys of every issuer used by an `openid-connect`
//! plugin, fetched and cached by the control plane. Deleting purges the control plane's cache and the
//! discovery caches of every node.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AdminCtx, ApiError, ApiResult, Ctx};
use crate::cluster::unix_now;
use crate::store::Event;
pub use platform::oidc_discovery::Issuers;

/// Largest `offset` of the issuer list (a page index, not a cursor).
pub const MAX_OFFSET: usize = super::paging::MAX_OFFSET;
/// Bound on each request of a discovery (the document, then the keys).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new()
        .route("/openid-connect/issuers", get(list).delete(purge_all))
        .route("/openid-connect/issuers/{key}", get(read).delete(purge_one))
}

fn issuer_id(issuer: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, issuer.as_bytes())
}

/// Every issuer configured in an `openid-connect` plugin.
fn configured(ctx: &AdminCtx) -> Vec<String> {
    let current = ctx.core.current();
    let mut out: Vec<String> = current
        .state
        .plugins
        .values()
        .filter(|p| p.name == shared::plugins::openid_connect::NAME)
        .filter_map(|p| {
            p.config
                .get("issuer")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The client discovery requests are made with (built once; it keeps connections to the issuers).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(DISCOVERY_TIMEOUT)
            .connect_timeout(DISCOVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with timeouts builds")
    })
}

/// The issuer's discovery result, from the cache nodes use too ([`Issuers`]): kept when it succeeded,
/// answered from memory for a short while when it failed, fetched once for all concurrent callers.
async fn entry(ctx: &AdminCtx, issuer: &str) -> Value {
    let id = issuer_id(issuer);
    match ctx.issuers.get(client(), issuer).await {
        Ok(doc) => {
            let at = doc
                .fetched_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            json!({"id": id, "issuer": issuer, "configuration": doc.metadata, "keys": doc.jwks, "error": null, "created_at": at, "updated_at": at})
        }
        Err(e) => {
            let now = unix_now();
            json!({"id": id, "issuer": issuer, "configuration": null, "keys": null, "error": e.0, "created_at": now, "updated_at": now})
        }
    }
}

async fn list(State(ctx): Ctx, RawQuery(q): RawQuery) -> ApiResult {
    let page = super::paging::IndexPage::from_query(q.as_deref(), 100)?;
    let (size, offset) = (page.size, page.offset);
    let issuers = configured(&ctx);
    // Issuers are fetched side by side: a page costs one discovery timeout at most, not one per issuer.
    let data: Vec<Value> = futures::future::join_all(
        issuers
            .iter()
            .skip(offset)
            .take(size)
            .map(|issuer| entry(&ctx, issuer)),
    )
    .await;
    let next = page.next("/openid-connect/issuers", data.len(), issuers.len());
    Ok(Json(json!({"data": data, "next": next})).into_response())
}

fn find(ctx: &AdminCtx, key: &str) -> Option<String> {
    configured(ctx)
        .into_iter()
        .find(|i| i == key || issuer_id(i).to_string() == key)
}

async fn read(State(ctx): Ctx, Path(key): Path<String>) -> ApiResult {
    let issuer = find(&ctx, &key).ok_or_else(ApiError::not_found)?;
    Ok(Json(entry(&ctx, &issuer).await).into_response())
}

/// Purges the nodes' discovery caches, through the store so every control plane's nodes are reached.
async fn purge_nodes(ctx: &AdminCtx) -> Result<(), ApiError> {
    let purge = Event::Purge {
        cache: "openid-connect-discovery".into(),
        key: String::new(),
    };
    ctx.core.store().announce(&purge).await?;
    Ok(())
}

async fn purge_one(State(ctx): Ctx, Path(key): Path<String>) -> ApiResult {
    let issuer = find(&ctx, &key).ok_or_else(ApiError::not_found)?;
    ctx.issuers.forget(&issuer);
    purge_nodes(&ctx).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge_all(State(ctx): Ctx) -> ApiResult {
    ctx.issuers.purge();
    purge_nodes(&ctx).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
