//! OpenID Connect discovery and the cache of its results, for both planes: an issuer's discovery document
//! and JWKS, fetched once for all concurrent callers; a failed first discovery answered from memory for
//! [`DISCOVERY_FAILURE_BACKOFF`]; an unknown `kid` triggers one rediscovery, rate-limited per issuer, and
//! the keys are kept when rediscovery fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::DecodingKey;
use serde_json::Value;
use tracing::{info, warn};

/// Wait after a failed rediscovery before trying again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// How long a failed first discovery is answered from memory before the issuer is asked again. Requests
/// that queued behind the failed attempt get its answer at once instead of one timeout each.
pub const DISCOVERY_FAILURE_BACKOFF: Duration = Duration::from_secs(2);

/// An issuer's discovery document and keys.
pub struct IssuerDoc {
    pub metadata: Value,
    pub jwks: Value,
    pub keys: Vec<(Option<String>, Jwk, DecodingKey)>,
    pub fetched_at: std::time::SystemTime,
}

impl IssuerDoc {
    /// An endpoint from the discovery document.
    pub fn endpoint(&self, name: &str) -> Option<String> {
        self.metadata
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The issuer identifier the tokens must carry.
    pub fn issuer(&self) -> Option<String> {
        self.endpoint("issuer")
    }

    /// The key with `kid`, or the only key when the token names none.
    pub fn key(&self, kid: Option<&str>) -> Option<&(Option<String>, Jwk, DecodingKey)> {
        match kid {
            Some(k) => self.keys.iter().find(|(id, _, _)| id.as_deref() == Some(k)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

struct Entry {
    doc: Option<Arc<IssuerDoc>>,
    /// Last discovery attempt of any kind (guards against hammering a failing issuer).
    last_attempt: Option<Instant>,
    /// Last rediscovery caused by an unknown key (the rate-limited kind).
    last_rediscovery: Option<Instant>,
    last_failed: bool,
    /// The last failed first discovery: when it ended and why.
    last_failure: Option<(Instant, DiscoveryError)>,
}

/// The cache of every issuer a plane talks to (on a node it survives snapshots).
#[derive(Default)]
pub struct Issuers {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// Why discovery failed.
#[derive(Debug, Clone)]
pub struct DiscoveryError(pub String);

async fn fetch_json(client: &reqwest::Client, url: &str) -> Result<Value, DiscoveryError> {
    let resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            DiscoveryError(if e.is_timeout() {
                format!("{url}: timeout")
            } else {
                format!("{url}: unreachable")
            })
        })?;
    if !resp.status().is_success() {
        return Err(DiscoveryError(format!(
            "{url}: HTTP {}",
            resp.status().as_u16()
        )));
    }
    resp.json()
        .await
        .map_err(|_| DiscoveryError(format!("{url}: not JSON")))
}

async fn discover(client: &reqwest::Client, issuer: &str) -> Result<IssuerDoc, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let metadata = fetch_json(client, &url).await?;
    let jwks_uri = metadata
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| DiscoveryError("discovery document has no jwks_uri".into()))?;
    let jwks = fetch_json(client, jwks_uri).await?;
    let set: JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|e| DiscoveryError(format!("invalid JWKS: {e}")))?;
    let mut keys = Vec::new();
    for k in set.keys {
        match DecodingKey::from_jwk(&k) {
            Ok(dk) => keys.push((k.common.key_id.clone(), k, dk)),
            Err(e) => warn!(issuer, kid = ?k.common.key_id, error = %e, "skipping unusable JWK"),
        }
    }
    Ok(IssuerDoc {
        metadata,
        jwks,
        keys,
        fetched_at: std::time::SystemTime::now(),
    })
}

impl Issuers {
    fn entry(&self, issuer: &str) -> Arc<tokio::sync::Mutex<Entry>> {
        self.entries
            .lock()
            .expect("issuers lock")
            .entry(issuer.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Entry {
                    doc: None,
                    last_attempt: None,
                    last_rediscovery: None,
                    last_failed: false,
                    last_failure: None,
                }))
            })
            .clone()
    }

    /// The cached document, discovering it on first use. Concurrent callers share one attempt, success or
    /// failure (the entry's lock is held while it runs); a failure is answered from memory for
    /// [`DISCOVERY_FAILURE_BACKOFF`] after it ended.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        issuer: &str,
    ) -> Result<Arc<IssuerDoc>, DiscoveryError> {
        let entry = self.entry(issuer);
        let mut e = entry.lock().await;
        if let Some(doc) = &e.doc {
            return Ok(doc.clone());
        }
        if let Some((ended, err)) = &e.last_failure {
            if ended.elapsed() < DISCOVERY_FAILURE_BACKOFF {
                return Err(err.clone());
            }
        }
        e.last_attempt = Some(Instant::now());
        match discover(client, issuer).await {
            Ok(doc) => {
                info!(issuer, keys = doc.keys.len(), "issuer discovered");
                let doc = Arc::new(doc);
                e.doc = Some(doc.clone());
                e.last_failed = false;
                e.last_failure = None;
                Ok(doc)
            }
            Err(err) => {
                warn!(issuer, error = %err.0, "discovery failed");
                e.last_failed = true;
                e.last_failure = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// Rediscovers after an unknown `kid`, at most every `lifetime` (5 s after a failure). Keeps the old
    /// keys when rediscovery fails. Returns the document to use.
    pub async fn rediscover(
        &self,
        client: &reqwest::Client,
        issuer: &str,
        lifetime: Duration,
    ) -> Arc<IssuerDoc> {
        let entry = self.entry(issuer);
        let mut e = entry.lock().await;
        let wait = if e.last_failed {
            FAILURE_BACKOFF
        } else {
            lifetime
        };
        let allowed = e.last_rediscovery.is_none_or(|t| t.elapsed() >= wait);
        if allowed {
            e.last_attempt = Some(Instant::now());
            e.last_rediscovery = e.last_attempt;
            match discover(client, issuer).await {
                Ok(doc) => {
                    info!(issuer, keys = doc.keys.len(), "issuer rediscovered");
                    e.doc = Some(Arc::new(doc));
                    e.last_failed = false;
                }
                Err(err) => {
                    warn!(issuer, error = %err.0, "rediscovery failed; keeping the old keys");
                    e.last_failed = true;
                }
            }
        }
        e.doc.clone().unwrap_or_else(|| {
            Arc::new(IssuerDoc {
                metadata: Value::Null,
                jwks: Value::Null,
                keys: Vec::new(),
                fetched_at: std::time::SystemTime::now(),
            })
        })
    }

    /// Forgets every issuer (purge from the control plane).
    pub fn purge(&self) {
        self.entries.lock().expect("issuers lock").clear();
    }

    /// Forgets `issuer`, so the next use discovers it again.
    pub fn forget(&self, issuer: &str) {
        self.entries.lock().expect("issuers lock").remove(issuer);
    }

    /// What is cached, for the node's status listener.
    pub fn view(&self) -> Value {
        let entries: Vec<(String, Arc<tokio::sync::Mutex<Entry>>)> = self
            .entries
            .lock()
            .expect("issuers lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        for (issuer, e) in entries {
            if let Ok(e) = e.try_lock() {
                out.push(serde_json::json!({
                    "issuer": issuer,
                    "discovered": e.doc.is_some(),
                    "keys": e.doc.as_ref().map(|d| d.keys.iter().map(|(kid, _, _)| kid.clone()).collect::<Vec<_>>()),
                    "last_rediscovery_failed": e.last_failed,
                }));
            }
        }
        Value::Array(out)
    }
}
