//! `/openid-connect/issuers`: the discovery document and keys of every issuer used by an `openid-connect`
//! plugin, fetched and cached by the control plane. Deleting purges the control plane's cache and the
//! discovery caches of every node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{AdminCtx, ApiError, ApiResult, Ctx};
use crate::cluster::unix_now;
use crate::store::Event;

/// How long a failed discovery is answered from the cache before the issuer is asked again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Largest `offset` of the issuer list (a page index, not a cursor).
pub const MAX_OFFSET: usize = 1_000_000;
/// Bound on one discovery (document and keys together).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One issuer's last discovery result and when it was fetched. The slot's lock is held while a fetch is
/// in flight, so concurrent readers share that one attempt, success or failure.
type Slot = Arc<Mutex<Option<(Value, Instant)>>>;

/// Cached discovery results by issuer.
#[derive(Default)]
pub struct IssuerCache {
    entries: std::sync::Mutex<BTreeMap<String, Slot>>,
}

impl IssuerCache {
    fn slot(&self, issuer: &str) -> Slot {
        self.entries
            .lock()
            .expect("issuer cache lock")
            .entry(issuer.to_string())
            .or_default()
            .clone()
    }

    fn forget(&self, issuer: Option<&str>) {
        let mut entries = self.entries.lock().expect("issuer cache lock");
        match issuer {
            Some(i) => {
                entries.remove(i);
            }
            None => entries.clear(),
        }
    }
}

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

async fn fetch(issuer: &str) -> Value {
    let client = reqwest::Client::builder()
        .timeout(DISCOVERY_TIMEOUT)
        .build()
        .expect("http client");
    let get_json = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(&url).send().await.map_err(|e| {
                format!(
                    "{url}: {}",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "unreachable"
                    }
                )
            })?;
            if !r.status().is_success() {
                return Err(format!("{url}: HTTP {}", r.status().as_u16()));
            }
            r.json::<Value>()
                .await
                .map_err(|_| format!("{url}: not JSON"))
        }
    };
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let result = async {
        let configuration = get_json(discovery_url).await?;
        let jwks_uri = configuration
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("discovery document has no jwks_uri")?
            .to_string();
        let keys = get_json(jwks_uri).await?;
        Ok::<_, String>((configuration, keys))
    };
    let result = tokio::time::timeout(DISCOVERY_TIMEOUT, result)
        .await
        .unwrap_or_else(|_| Err(format!("{issuer}: discovery timed out")));
    let now = unix_now();
    match result {
        Ok((configuration, keys)) => {
            json!({"id": issuer_id(issuer), "issuer": issuer, "configuration": configuration, "keys": keys, "error": null, "created_at": now, "updated_at": now})
        }
        Err(e) => {
            json!({"id": issuer_id(issuer), "issuer": issuer, "configuration": null, "keys": null, "error": e, "created_at": now, "updated_at": now})
        }
    }
}

/// The issuer's discovery result: cached when it succeeded, cached for [`FAILURE_BACKOFF`] when it failed,
/// and fetched once for all concurrent callers otherwise.
async fn entry(ctx: &AdminCtx, issuer: &str) -> Value {
    let slot = ctx.issuers.slot(issuer);
    let mut cached = slot.lock().await;
    if let Some((v, at)) = &*cached {
        if v["error"].is_null() || at.elapsed() < FAILURE_BACKOFF {
            return v.clone();
        }
    }
    let v = fetch(issuer).await;
    *cached = Some((v.clone(), Instant::now()));
    v
}

async fn list(State(ctx): Ctx, RawQuery(q): RawQuery) -> ApiResult {
    let params: Vec<(String, String)> = q
        .as_deref()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let size = match param("size").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => {
            return Err(ApiError::schema(shared::entity::field_error(
                "size",
                "must be a number between 1 and 1000",
            )))
        }
    };
    let offset = match param("offset").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= MAX_OFFSET => n,
        _ => return Err(ApiError::bad_request("invalid offset")),
    };
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
    let next_offset = offset + data.len();
    let next = (next_offset < issuers.len())
        .then(|| format!("/openid-connect/issuers?size={size}&offset={next_offset}"));
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
    ctx.issuers.forget(Some(&issuer));
    purge_nodes(&ctx).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge_all(State(ctx): Ctx) -> ApiResult {
    ctx.issuers.forget(None);
    purge_nodes(&ctx).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
