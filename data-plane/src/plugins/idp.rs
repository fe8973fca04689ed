//! The identity-provider call both auth plugins make: one pooled client per instance, the call's latency
//! and events, the failure classes that answer 503, cache keys in the instance's namespace, and the rule
//! that decides how long an answer is cached.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::instance::{BuildCtx, Events};
use crate::cache::{Cached, Caches, TokenKey};
use crate::metrics::Metrics;

/// Why the identity provider gave no usable answer. Every class answers the client 503 and counts as an
/// `idp_error` event; the class names the cause, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpFailure {
    /// No answer within the plugin's `timeout`.
    Timeout,
    /// No connection could be made.
    Unreachable,
    /// The connection failed after it was made.
    Transport,
    /// An HTTP status the call does not accept.
    Status(u16),
    /// The body could not be read to its end.
    Unreadable,
    /// The body was read but is not a valid answer (the reason names what is wrong with it).
    Answer(String),
}

impl IdpFailure {
    fn of(e: &reqwest::Error) -> IdpFailure {
        if e.is_timeout() {
            IdpFailure::Timeout
        } else if e.is_connect() {
            IdpFailure::Unreachable
        } else {
            IdpFailure::Transport
        }
    }
}

impl fmt::Display for IdpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdpFailure::Timeout => f.write_str("timeout"),
            IdpFailure::Unreachable => f.write_str("unreachable"),
            IdpFailure::Transport => f.write_str("transport error"),
            IdpFailure::Status(s) => write!(f, "answered HTTP {s}"),
            IdpFailure::Unreadable => f.write_str("answer could not be read"),
            IdpFailure::Answer(why) => f.write_str(why),
        }
    }
}

/// An answer the identity provider gave, whatever its status.
pub struct IdpAnswer {
    pub status: u16,
    /// The media type, lowercase, as sent.
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// How long an answer is cached: `ttl` seconds (`None`: until the token's `exp`), raised to `min`, lowered
/// to `max`, and never past `exp`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlRule {
    pub ttl: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl TtlRule {
    /// The lifetime of an answer carrying `claims`, at Unix time `now`.
    pub fn lifetime(&self, claims: &Value, now: i64) -> Duration {
        let remaining = claims.get("exp").and_then(Value::as_i64).map(|e| e - now);
        let mut secs = match (self.ttl, remaining) {
            (Some(t), Some(r)) => (t as i64).min(r),
            (Some(t), None) => t as i64,
            (None, Some(r)) => r,
            (None, None) => 0,
        };
        if let Some(min) = self.min {
            secs = secs.max(min as i64);
        }
        if let Some(max) = self.max {
            secs = secs.min(max as i64);
        }
        if let Some(r) = remaining {
            secs = secs.min(r);
        }
        Duration::from_secs(secs.max(0) as u64)
    }
}

/// What an instance needs to call its identity provider.
pub struct IdpSettings<'a> {
    pub timeout_ms: u64,
    pub keepalive_ms: u64,
    pub verify_tls: bool,
    /// What the instance's answers depend on besides the token (its endpoint or issuer).
    pub namespace: &'a [&'a [u8]],
    /// Events the plugin counts besides `hit`, `miss`, `idp_call` and `idp_error`.
    pub events: &'a [&'static str],
}

/// One plugin instance's link to its identity provider.
pub struct Idp {
    plugin: &'static str,
    instance: String,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    caches: Arc<Caches>,
    events: Events,
    namespace: [u8; 32],
}

impl Idp {
    /// The link of instance `id` of `plugin`.
    pub fn new(
        plugin: &'static str,
        id: &uuid::Uuid,
        ctx: &BuildCtx,
        s: IdpSettings,
    ) -> Result<Idp, String> {
        let instance = id.to_string();
        let client = ctx
            .clients
            .get(s.timeout_ms, s.keepalive_ms, s.verify_tls)?;
        let mut events = vec!["hit", "miss", "idp_call", "idp_error"];
        events.extend_from_slice(s.events);
        let mut ns = Sha256::new().chain_update(id.as_bytes());
        for part in s.namespace {
            ns.update((part.len() as u64).to_be_bytes());
            ns.update(part);
        }
        Ok(Idp {
            plugin,
            events: Events::new(&ctx.metrics, plugin, &instance, &events),
            instance,
            client,
            metrics: ctx.metrics.clone(),
            caches: ctx.caches.clone(),
            namespace: ns.finalize().into(),
        })
    }

    /// The pooled client (for calls outside [`Idp::send`], such as discovery).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// Counts one event of this instance.
    pub fn event(&self, name: &str) {
        self.events.add(name);
    }

    /// Counts `failure` as an identity-provider error and returns it.
    pub fn fault(&self, failure: IdpFailure) -> IdpFailure {
        self.event("idp_error");
        failure
    }

    /// Sends `req` and reads the whole answer, counting the call and its latency; a transport failure or
    /// an unreadable body is a fault. Any status is returned: the caller decides which it accepts.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<IdpAnswer, IdpFailure> {
        self.event("idp_call");
        let started = Instant::now();
        let out = async {
            let resp = req.send().await.map_err(|e| IdpFailure::of(&e))?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase);
            let body = resp.bytes().await.map_err(|e| {
                if e.is_timeout() {
                    IdpFailure::Timeout
                } else {
                    IdpFailure::Unreadable
                }
            })?;
            Ok(IdpAnswer {
                status,
                content_type,
                body,
            })
        }
        .await;
        self.metrics.idp_latency.observe(
            &[("plugin", self.plugin), ("instance", &self.instance)],
            started.elapsed(),
        );
        out.map_err(|f| self.fault(f))
    }

    /// [`Idp::send`], with any status but 200 a fault.
    pub async fn send_expecting_ok(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<IdpAnswer, IdpFailure> {
        let answer = self.send(req).await?;
        if answer.status != 200 {
            return Err(self.fault(IdpFailure::Status(answer.status)));
        }
        Ok(answer)
    }

    /// The cache key of `secret` (token or credentials, hashed part by part) for answers that also
    /// depend on `scope` (a call kind, a request path) within this instance's namespace.
    pub fn key(&self, scope: &[&[u8]], secret: &[&[u8]]) -> TokenKey {
        let namespace = if scope.is_empty() {
            self.namespace
        } else {
            let mut h = Sha256::new().chain_update(self.namespace);
            for part in scope {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        let token = match secret {
            [one] => Sha256::digest(one).into(),
            parts => {
                let mut h = Sha256::new();
                for part in parts {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part);
                }
                h.finalize().into()
            }
        };
        TokenKey { namespace, token }
    }

    /// Looks `key` up in `cache` and, on a miss, runs `fetch` (concurrent misses for one key share one
    /// fetch; failures are never cached). Counts `events.0` on a hit and `events.1` on a miss. Returns the
    /// answer, shared with the cache, and whether this call was the miss that fetched it.
    pub async fn cached<E, F>(
        &self,
        cache: &Cache<TokenKey, Cached>,
        key: TokenKey,
        events: (&str, &str),
        fetch: F,
    ) -> (Result<Arc<Value>, E>, bool)
    where
        E: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<Cached, E>>,
    {
        let (out, missed) = crate::cache::get_or_fetch(cache, key, fetch).await;
        self.event(if missed { events.1 } else { events.0 });
        (out.map(|c| c.claims).map_err(|e| (*e).clone()), missed)
    }
}

#[cfg(test)]
mod tests;
