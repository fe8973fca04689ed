//! `oauth2-introspection`: validates opaque access tokens at the identity provider's RFC 7662 endpoint,
//! with per-node caches (positive TTL capped by `exp`, separate negative cache, coalesced misses, errors
//! never cached) and Kong's upstream headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::unix_now;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::plugins::oauth2_introspection::{Config, NAME};
use shared::Consumer;
use tracing::{debug, info, warn};

use super::credentials::{self, Source};
use super::introspection_answer::{self, Refusal};
use super::{
    anonymous_consumer, claim_header_value, json_response, token_fingerprint, BuildCtx,
    ConsumerIndex, Events, Exchange, Plugin, ProxyBody,
};
use crate::cache::{Cached, Caches, TokenKey};
use crate::metrics::Metrics;

/// One configured instance.
pub struct Introspection {
    id: String,
    config: Config,
    client: reqwest::Client,
    consumers: Arc<ConsumerIndex>,
    anonymous: Option<Arc<Consumer>>,
    caches: Arc<Caches>,
    metrics: Arc<Metrics>,
    events: Events,
    namespace: [u8; 32],
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let client = ctx.clients.get(config.timeout, config.keepalive, true)?;
    let anonymous = anonymous_consumer(&ctx.state, &config.anonymous)?;
    let namespace: [u8; 32] = Sha256::new()
        .chain_update(p.id.as_bytes())
        .chain_update(config.introspection_url.as_bytes())
        .finalize()
        .into();
    Ok(Arc::new(Introspection {
        id: p.id.to_string(),
        config,
        client,
        consumers: ctx.consumers.clone(),
        anonymous,
        caches: ctx.caches.clone(),
        metrics: ctx.metrics.clone(),
        events: Events::new(
            &ctx.metrics,
            NAME,
            &p.id.to_string(),
            &["hit", "miss", "negative_hit", "idp_call", "idp_error"],
        ),
        namespace,
    }))
}

/// Why a token was not accepted.
#[derive(Debug, Clone)]
enum Failure {
    /// The identity provider said `active: false`.
    Inactive,
    /// The identity provider could not give an answer; the class names why (never the token).
    Idp(String),
}

/// Positive cache lifetime: `ttl` seconds but never past `exp`; `ttl = 0` means "until `exp`".
pub fn positive_ttl(ttl: u64, claims: &Value, now: i64) -> Duration {
    let remaining = claims
        .get("exp")
        .and_then(Value::as_i64)
        .map(|exp| (exp - now).max(0) as u64);
    let secs = match (ttl, remaining) {
        (0, Some(r)) => r,
        (0, None) => 0,
        (t, Some(r)) => t.min(r),
        (t, None) => t,
    };
    Duration::from_secs(secs)
}

impl Introspection {
    fn event(&self, event: &str) {
        self.events.add(event);
    }

    async fn call_idp(&self, token: &str, ex: &Exchange) -> Result<Value, Failure> {
        let mut form = vec![("token", token.to_string())];
        if let Some(h) = &self.config.token_type_hint {
            form.push(("token_type_hint", h.clone()));
        }
        let mut req = self
            .client
            .post(&self.config.introspection_url)
            .header(
                http::header::AUTHORIZATION,
                &self.config.authorization_value,
            )
            .header(http::header::ACCEPT, "application/json")
            .form(&form);
        if self.config.introspect_request {
            req = req
                .header("x-request-path", ex.parts.uri.path())
                .header("x-request-http-method", ex.parts.method.as_str());
        }
        for (k, v) in &self.config.custom_introspection_headers {
            req = req.header(k.replace('_', "-"), v);
        }
        self.event("idp_call");
        let started = Instant::now();
        let result = req.send().await;
        self.metrics.idp_latency.observe(
            &[("plugin", NAME), ("instance", &self.id)],
            started.elapsed(),
        );
        let resp = result.map_err(|e| {
            self.event("idp_error");
            Failure::Idp(if e.is_timeout() {
                "timeout".into()
            } else if e.is_connect() {
                "unreachable".into()
            } else {
                "transport error".into()
            })
        })?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            self.event("idp_error");
            return Err(Failure::Idp(format!("answered HTTP {}", status.as_u16())));
        }
        let body = resp.bytes().await.map_err(|_| {
            self.event("idp_error");
            Failure::Idp("answer could not be read".into())
        })?;
        introspection_answer::parse(&body)
            .and_then(|answer| introspection_answer::judge(answer, true, unix_now()))
            .map_err(|refusal| match refusal {
                Refusal::Inactive(_) => Failure::Inactive,
                Refusal::Fault(why) => {
                    self.event("idp_error");
                    Failure::Idp(why)
                }
            })
    }

    /// Introspects through the caches. Concurrent misses for one token make one call.
    async fn introspect(&self, token: &str, ex: &Exchange) -> Result<Arc<Value>, Failure> {
        let namespace = if self.config.introspect_request {
            Sha256::new()
                .chain_update(self.namespace)
                .chain_update(ex.parts.method.as_str().as_bytes())
                .chain_update(ex.parts.uri.path().as_bytes())
                .finalize()
                .into()
        } else {
            self.namespace
        };
        let key = TokenKey {
            namespace,
            token: Sha256::digest(token.as_bytes()).into(),
        };
        if let Some(hit) = self.caches.introspection.get(&key).await {
            self.event("hit");
            return Ok(hit.claims);
        }
        if self.caches.introspection_negative.get(&key).await.is_some() {
            self.event("negative_hit");
            return Err(Failure::Inactive);
        }
        let (result, missed) = crate::cache::get_or_fetch(&self.caches.introspection, key, async {
            let claims = self.call_idp(token, ex).await?;
            let ttl = positive_ttl(self.config.ttl, &claims, unix_now());
            Ok::<_, Failure>(Cached {
                claims: Arc::new(claims),
                ttl,
            })
        })
        .await;
        self.event(if missed { "miss" } else { "hit" });
        match result {
            Ok(c) => Ok(c.claims),
            Err(e) => {
                let failure = (*e).clone();
                if matches!(failure, Failure::Inactive) && self.config.negative_ttl > 0 && missed {
                    let neg = Cached {
                        claims: Arc::new(Value::Null),
                        ttl: Duration::from_secs(self.config.negative_ttl),
                    };
                    self.caches.introspection_negative.insert(key, neg).await;
                }
                Err(failure)
            }
        }
    }

    fn unauthorized(
        &self,
        ex: &mut Exchange,
        error: Option<(&str, &str)>,
        reason: &str,
    ) -> Result<(), Response<ProxyBody>> {
        if let Some(anon) = &self.anonymous {
            info!(plugin = NAME, request_id = %ex.request_id, reason, "authentication failed; continuing as the anonymous consumer");
            ex.set_consumer(anon, true);
            return Ok(());
        }
        info!(plugin = NAME, request_id = %ex.request_id, reason, "request refused");
        let (body, www) = match error {
            None => (
                json!({"error": "invalid_request", "error_description": "The access token is missing"}),
                "Bearer realm=\"service\"".to_string(),
            ),
            Some((code, desc)) => (
                json!({"error": code, "error_description": desc}),
                format!("Bearer realm=\"service\", error=\"{code}\", error_description=\"{desc}\""),
            ),
        };
        Err(json_response(
            StatusCode::UNAUTHORIZED,
            &body,
            &[("www-authenticate", www)],
        ))
    }

    fn set_credential_headers(&self, ex: &mut Exchange, claims: &Value) {
        let map = [
            ("scope", "x-credential-scope"),
            ("client_id", "x-credential-client-id"),
            ("username", "x-credential-identifier"),
            ("token_type", "x-credential-token-type"),
            ("exp", "x-credential-exp"),
            ("iat", "x-credential-iat"),
            ("nbf", "x-credential-nbf"),
            ("sub", "x-credential-sub"),
            ("aud", "x-credential-aud"),
            ("iss", "x-credential-iss"),
            ("jti", "x-credential-jti"),
        ];
        for (claim, header) in map {
            if let Some(v) = claims.get(claim).and_then(claim_header_value) {
                ex.set_upstream_header(header, &v);
            }
        }
        for claim in &self.config.custom_claims_forward {
            if let Some(v) = claims.get(claim).and_then(claim_header_value) {
                ex.set_upstream_header(&format!("x-credential-{}", claim.to_ascii_lowercase()), &v);
            }
        }
    }

    fn map_consumer(&self, claims: &Value) -> Option<Arc<Consumer>> {
        // Kong: `username` maps the claim to a Consumer's username, `client_id` to its custom_id.
        let (claim, field) = match self.config.consumer_by.as_str() {
            "client_id" => ("client_id", "custom_id"),
            _ => ("username", "username"),
        };
        let value = claims.get(claim)?.as_str()?;
        self.consumers.find(field, value).cloned()
    }
}

#[async_trait::async_trait]
impl Plugin for Introspection {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Response<ProxyBody>> {
        if !self.config.run_on_preflight && ex.parts.method == Method::OPTIONS {
            return Ok(());
        }
        ex.strip_identity_headers();
        let mut found = credentials::query_param(ex, "access_token").map(|t| (t, Source::Query));
        if found.is_none() {
            found = credentials::body_param(ex, "access_token").await?;
        }
        if found.is_none() {
            found = credentials::bearer_header(ex).map(|t| (t, Source::Header));
        }
        let Some((token, source)) = found else {
            return self.unauthorized(ex, None, "no access token");
        };
        match self.introspect(&token, ex).await {
            Ok(claims) => {
                debug!(plugin = NAME, request_id = %ex.request_id, token = %token_fingerprint(&token), "token active");
                if let Some(c) = self.map_consumer(&claims) {
                    ex.set_consumer(&c, false);
                }
                self.set_credential_headers(ex, &claims);
                if self.config.hide_credentials {
                    credentials::remove(ex, source, &["access_token"]).await;
                }
                Ok(())
            }
            Err(Failure::Inactive) => self.unauthorized(
                ex,
                Some((
                    "invalid_token",
                    "The access token is invalid or has expired",
                )),
                "token inactive",
            ),
            Err(Failure::Idp(class)) => {
                warn!(plugin = NAME, request_id = %ex.request_id, idp = %self.config.introspection_url, failure = %class, "introspection failed");
                Err(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"message": format!("The identity provider is unavailable: introspection {class}")}),
                    &[("retry-after", "5".into())],
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_capped_by_exp() {
        let now = 1_000;
        assert_eq!(
            positive_ttl(30, &json!({"exp": 1_010}), now),
            Duration::from_secs(10)
        );
        assert_eq!(
            positive_ttl(30, &json!({"exp": 5_000}), now),
            Duration::from_secs(30)
        );
        assert_eq!(
            positive_ttl(0, &json!({"exp": 1_100}), now),
            Duration::from_secs(100)
        );
        assert_eq!(positive_ttl(0, &json!({}), now), Duration::ZERO);
        assert_eq!(positive_ttl(30, &json!({}), now), Duration::from_secs(30));
        assert_eq!(positive_ttl(30, &json!({"exp": 900}), now), Duration::ZERO);
    }
}
