//! `oauth2-introspection`: validates opaque access tokens at the identity provider's RFC 7662 endpoint,
//! with per-node caches (positive TTL capped by `exp`, separate negative cache, coalesced misses, errors
//! never cached) and Kong's upstream headers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::unix_now;
use http::{HeaderName, Method, StatusCode};
use serde_json::{json, Value};
use shared::plugins::oauth2_introspection::{Config, ConsumerBy, NAME};
use shared::Consumer;
use tracing::{debug, info, warn};

use super::claims::{claim_header, token_fingerprint};
use super::consumers::{anonymous_consumer, ConsumerField, ConsumerIndex};
use super::credentials::{self, CredentialId, Source, Token};
use super::exchange::Exchange;
use super::groups::{Groups, Memberships, NoConsumerGroup};
use super::idp::{Idp, IdpFailure, IdpSettings, TtlRule};
use super::instance::BuildCtx;
use super::introspection_answer::{self, Rejected};
use super::plugin::Plugin;
use super::refusal::Refusal;
use crate::cache::{Cached, DerivedHeaders, TokenKey};
use crate::header_block::HeaderBlock;

/// The claims passed upstream as Kong does, with the header each goes in.
static CREDENTIAL_HEADERS: [(Cow<'static, str>, HeaderName); 11] = [
    claim_to("scope", "x-credential-scope"),
    claim_to("client_id", "x-credential-client-id"),
    claim_to("username", "x-credential-identifier"),
    claim_to("token_type", "x-credential-token-type"),
    claim_to("exp", "x-credential-exp"),
    claim_to("iat", "x-credential-iat"),
    claim_to("nbf", "x-credential-nbf"),
    claim_to("sub", "x-credential-sub"),
    claim_to("aud", "x-credential-aud"),
    claim_to("iss", "x-credential-iss"),
    claim_to("jti", "x-credential-jti"),
];

const fn claim_to(claim: &'static str, header: &'static str) -> (Cow<'static, str>, HeaderName) {
    (Cow::Borrowed(claim), HeaderName::from_static(header))
}

/// One configured instance.
pub struct Introspection {
    config: Config,
    /// `custom_claims_forward`, each with its `x-credential-<claim>` header name.
    custom_claims: Vec<(Cow<'static, str>, HeaderName)>,
    /// Fingerprint of the claims forwarded as headers (see [`DerivedHeaders`]).
    header_rule: u64,
    idp: Idp,
    consumers: Arc<ConsumerIndex>,
    memberships: Arc<Memberships>,
    anonymous: Option<Arc<Consumer>>,
    ttl: TtlRule,
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let idp = Idp::new(
        NAME,
        &p.id,
        ctx,
        IdpSettings {
            timeout_ms: config.timeout,
            keepalive_ms: config.keepalive,
            verify_tls: true,
            namespace: &[config.introspection_url.as_bytes()],
            events: &["negative_hit"],
        },
    )?;
    let anonymous = anonymous_consumer(&ctx.state, &config.anonymous)?;
    // Kong: a `ttl` of 0 caches an answer until the token's `exp`.
    let ttl = TtlRule {
        ttl: (config.ttl > 0).then_some(config.ttl),
        ..TtlRule::default()
    };
    // A claim whose name cannot be part of a header name is not forwarded.
    let custom_claims = config
        .custom_claims_forward
        .iter()
        .filter_map(|claim| {
            let header = format!("x-credential-{}", claim.to_ascii_lowercase());
            let name = HeaderName::from_bytes(header.as_bytes()).ok()?;
            Some((Cow::Owned(claim.clone()), name))
        })
        .collect();
    let header_rule = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        config.custom_claims_forward.hash(&mut h);
        h.finish()
    };
    Ok(Arc::new(Introspection {
        config,
        custom_claims,
        header_rule,
        idp,
        consumers: ctx.consumers.clone(),
        memberships: ctx.groups.clone(),
        anonymous,
        ttl,
    }))
}

/// Why a token was not accepted.
#[derive(Debug, Clone)]
enum Failure {
    /// The identity provider said `active: false`.
    Inactive,
    /// The identity provider could not give an answer.
    Idp(IdpFailure),
}

impl Introspection {
    async fn call_idp(&self, token: &str, ex: &Exchange) -> Result<Value, Failure> {
        let mut form = vec![("token", token)];
        if let Some(h) = &self.config.token_type_hint {
            form.push(("token_type_hint", h));
        }
        let mut req = self
            .idp
            .client()
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
        let answer = self
            .idp
            .send_expecting_ok(req)
            .await
            .map_err(Failure::Idp)?;
        introspection_answer::parse(&answer.body)
            .and_then(|answer| introspection_answer::judge(answer, true, unix_now()))
            .map_err(|refusal| match refusal {
                Rejected::Inactive(_) => Failure::Inactive,
                Rejected::Fault(why) => Failure::Idp(self.idp.fault(IdpFailure::Answer(why))),
            })
    }

    /// Introspects through the caches. Concurrent misses for one token make one call.
    /// The cache entry of an active token (a fresh one, not kept, when the answer was not cached).
    async fn introspect(
        &self,
        token: &Token,
        ex: &Exchange,
    ) -> Result<(Cached, CredentialId), Failure> {
        let token_bytes: &[&[u8]] = &[token.as_bytes()];
        let key = if self.config.introspect_request {
            self.idp.key(
                &[
                    ex.parts.method.as_str().as_bytes(),
                    ex.parts.uri.path().as_bytes(),
                ],
                token_bytes,
            )
        } else {
            self.idp.key(&[], token_bytes)
        };
        // The cache key holds the token's SHA-256 (its `secret` part), which also names the credential.
        let credential = match self.config.introspect_request {
            false => CredentialId::from_sha256(&key.token),
            true => CredentialId::of(token.as_bytes()),
        };
        let caches = self.idp.caches();
        if let Some(hit) = caches.introspection_hit(&key).await {
            self.idp.event("hit");
            return Ok((hit, credential));
        }
        // The miss path's future is large (the identity-provider call): kept off the hit path's.
        let claims = Box::pin(self.introspect_miss(token.as_str(), ex, key)).await?;
        Ok((Cached::new(claims, Duration::ZERO), credential))
    }

    /// The cache miss: the negative cache, then one coalesced call to the identity provider.
    async fn introspect_miss(
        &self,
        token: &str,
        ex: &Exchange,
        key: TokenKey,
    ) -> Result<Arc<Value>, Failure> {
        let caches = self.idp.caches();
        if caches.introspection_negative.get(&key).await.is_some() {
            self.idp.event("negative_hit");
            return Err(Failure::Inactive);
        }
        let (result, missed) = self
            .idp
            .cached(&caches.introspection, key, ("hit", "miss"), async {
                let claims = self.call_idp(token, ex).await?;
                let ttl = self.ttl.lifetime(&claims, unix_now());
                Ok::<_, Failure>(Cached::new(Arc::new(claims), ttl))
            })
            .await;
        if matches!(result, Err(Failure::Inactive)) && self.config.negative_ttl > 0 && missed {
            let neg = Cached::new(
                Arc::new(Value::Null),
                Duration::from_secs(self.config.negative_ttl),
            );
            caches.introspection_negative.insert(key, neg).await;
        }
        result
    }

    fn unauthorized(
        &self,
        ex: &mut Exchange,
        error: Option<(&str, &str)>,
        reason: &str,
    ) -> Result<(), Refusal> {
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
        Err(Refusal::new(StatusCode::UNAUTHORIZED, body, "unauthorized").challenge(&www))
    }

    /// Kong's `X-Credential-*` headers from the entry's claims, derived once per cache entry. The
    /// client's own were removed ([`Exchange::strip_identity_headers`]).
    fn set_credential_headers(&self, ex: &mut Exchange, entry: &Cached) {
        let derived = entry.headers.get_or_init(|| DerivedHeaders {
            rule: self.header_rule,
            block: self.credential_headers(&entry.claims),
        });
        let block = match derived.rule == self.header_rule {
            true => derived.block.clone(),
            // Derived under settings since changed.
            false => self.credential_headers(&entry.claims),
        };
        if !block.fields().is_empty() {
            ex.add_upstream_block(block);
        }
    }

    fn credential_headers(&self, claims: &Value) -> Arc<HeaderBlock> {
        let fields = CREDENTIAL_HEADERS
            .iter()
            .chain(&self.custom_claims)
            .filter_map(|(claim, header)| {
                let value = claims.get(claim.as_ref()).and_then(claim_header)?;
                Some((header.clone(), value))
            })
            .collect();
        Arc::new(HeaderBlock::new(fields))
    }

    fn map_consumer(&self, claims: &Value) -> Option<Arc<Consumer>> {
        // Kong: `username` maps the claim to a Consumer's username, `client_id` to its custom_id.
        let (claim, field) = match self.config.consumer_by {
            ConsumerBy::ClientId => ("client_id", ConsumerField::CustomId),
            ConsumerBy::Username => ("username", ConsumerField::Username),
        };
        let value = claims.get(claim)?.as_str()?;
        self.consumers.find(field, value).cloned()
    }
}

#[async_trait::async_trait]
impl Plugin for Introspection {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        if !self.config.run_on_preflight && ex.parts.method == Method::OPTIONS {
            return Ok(());
        }
        ex.strip_identity_headers();
        let mut found = credentials::query_param(ex, "access_token")
            .map(|t| (Token::Decoded(t), Source::Query));
        if found.is_none() && ex.parts.headers.contains_key(http::header::CONTENT_TYPE) {
            // Boxed: reading a body makes a large future that requests without one need not carry.
            found = Box::pin(credentials::body_param(ex, "access_token"))
                .await?
                .map(|(t, source)| (Token::Decoded(t), source));
        }
        if found.is_none() {
            found = credentials::bearer_header(ex).map(|t| (t, Source::Header));
        }
        let Some((token, source)) = found else {
            return self.unauthorized(ex, None, "no access token");
        };
        match self.introspect(&token, ex).await {
            Ok((entry, credential)) => {
                debug!(plugin = NAME, request_id = %ex.request_id, token = %token_fingerprint(token.as_str()), "token active");
                if let Some(c) = self.map_consumer(&entry.claims) {
                    ex.set_consumer(&c, false);
                }
                ex.consumer_groups = match self.memberships.from_claim(
                    &entry.claims,
                    &self.config.consumer_groups_claim,
                    self.config.consumer_groups_optional,
                ) {
                    Ok(groups) => groups,
                    Err(NoConsumerGroup) => return Err(no_consumer_group()),
                };
                self.set_credential_headers(ex, &entry);
                ex.credential = Some(credential);
                ex.authenticated_groups =
                    Groups::from_claim(&entry.claims, &self.config.authenticated_groups_claim);
                if self.config.hide_credentials {
                    Box::pin(credentials::remove(ex, source, &["access_token"])).await;
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
                Err(Refusal::idp_unavailable(&format!("introspection {class}")))
            }
        }
    }
}

/// 403 for an active token whose `consumer_groups_claim` names no consumer group (RFC 6750's
/// `insufficient_scope`: the token is valid, it just does not reach this API).
fn no_consumer_group() -> Refusal {
    let desc = "No consumer group matches the token";
    Refusal::new(
        StatusCode::FORBIDDEN,
        json!({"error": "insufficient_scope", "error_description": desc}),
        "no_consumer_group",
    )
    .challenge(&format!(
        "Bearer realm=\"service\", error=\"insufficient_scope\", error_description=\"{desc}\""
    ))
}
