//! `openid-connect`: JWT bearer tokens verified against the issuer's JWKS, token introspection, the
//! UserInfo endpoint, the password and client-credentials grants, and browser sign-in, with Kong's config
//! fields, headers and status codes.

mod authenticate;
mod backchannel;
mod client_auth;
mod decision;
mod endpoints;
mod jwk;
mod jws;
mod login;
mod logout;
mod refresh;
pub mod session;
mod session_front;
mod session_store;
mod userinfo;
mod verify;

use jwk::signing_key;
use jws::looks_like_jwt;
use session::{Cookies, Invalid, Session};
use session_store::RedisSessions;

use std::sync::Arc;
use std::time::Duration;

use crate::unix_now;
use base64::Engine;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::jwt::{self, ClaimRules};
use shared::keyword::Keyword;
use shared::plugins::openid_connect::{
    AuthMethod, ClientAuth, Config, ParamType, SessionStorage, NAME,
};
use shared::Consumer;
use tracing::{debug, info, warn};

use super::claims::{claim_header_value, claim_values, token_fingerprint};
use super::consumers::{anonymous_consumer, ConsumerIndex};
use super::credentials::{self, Source};
use super::exchange::Exchange;
use super::groups::{Groups, Memberships, NoConsumerGroup};
use super::idp::{Idp, IdpFailure, IdpSettings, TtlRule};
use super::instance::BuildCtx;
use super::introspection_answer::{self, Rejected};
use super::plugin::Plugin;
use super::refusal::Refusal;
use crate::cache::Cached;
use platform::oidc_discovery::{IssuerDoc, Issuers};

/// One configured instance.
pub struct OpenIdConnect {
    config: Config,
    idp: Idp,
    consumers: Arc<ConsumerIndex>,
    memberships: Arc<Memberships>,
    anonymous: Option<Arc<Consumer>>,
    realm: String,
    ttl: TtlRule,
    /// The session and authorization cookies, when browsers sign in (`authorization_code`, `session`).
    cookies: Option<Cookies>,
    /// Sessions identity providers ended, node-wide.
    revocations: Arc<crate::plugins::session_revocations::SessionRevocations>,
    metrics: Arc<crate::metrics::Metrics>,
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
            keepalive_ms: 60_000,
            verify_tls: config.ssl_verify,
            namespace: &[config.issuer.as_bytes()],
            events: &["jwt_hit", "token_hit", "token_miss"],
        },
    )?;
    let anonymous = anonymous_consumer(&ctx.state, &config.anonymous)?;
    for jwk in &config.client_jwk {
        signing_key(jwk)?;
    }
    let realm = url::Url::parse(&config.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let ttl = TtlRule {
        ttl: Some(config.cache_ttl),
        min: config.cache_ttl_min,
        max: config.cache_ttl_max,
    };
    let browser = config
        .auth_methods
        .iter()
        .any(|m| matches!(m, AuthMethod::AuthorizationCode | AuthMethod::Session));
    let cookies = match browser {
        false => None,
        true => {
            let redis = match config.browser.session_storage {
                SessionStorage::Cookie => None,
                SessionStorage::Redis => {
                    Some(RedisSessions::new(&config.browser, &ctx.traffic.redis)?)
                }
            };
            Some(Cookies::new(&config.browser, redis))
        }
    };
    Ok(Arc::new(OpenIdConnect {
        cookies,
        config,
        idp,
        consumers: ctx.consumers.clone(),
        memberships: ctx.groups.clone(),
        anonymous,
        realm,
        ttl,
        revocations: ctx.revocations.clone(),
        metrics: ctx.metrics.clone(),
    }))
}

/// Why a request was not let through.
#[derive(Debug, Clone)]
enum Denial {
    /// No credential was presented (401 without `error=`).
    NoCredential,
    /// A credential was presented and is not valid (401).
    Invalid(String),
    /// Authenticated, but not allowed (403).
    Forbidden(String),
    /// The identity provider could not answer (503).
    Unavailable(String),
}

/// A credential found in the request.
enum Credential {
    Bearer(String, Source),
    Password(String, String, Source),
    Client(String, String, Source),
    /// A browser's session cookie.
    Session(Box<Session>),
}

/// A client identity used to authenticate to the identity provider.
struct ClientCreds {
    id: String,
    secret: Option<String>,
    jwk: Option<Value>,
}

/// The outcome of authentication: the token forwarded upstream and the claims it carries.
/// Claims and introspection results are shared with the caches, never copied per request.
struct Authenticated {
    access_token: String,
    claims: Arc<Value>,
    introspection: Option<Arc<Value>>,
}

impl OpenIdConnect {
    fn event(&self, event: &str) {
        self.idp.event(event);
    }

    fn issuers(&self) -> &Issuers {
        &self.idp.caches().issuers
    }

    async fn doc(&self) -> Result<Arc<IssuerDoc>, Denial> {
        self.issuers()
            .get(self.idp.client(), &self.config.issuer)
            .await
            .map_err(|e| Denial::Unavailable(format!("discovery failed: {}", e.0)))
    }
}

#[async_trait::async_trait]
impl Plugin for OpenIdConnect {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        if !self.config.run_on_preflight && ex.parts.method == Method::OPTIONS {
            return Ok(());
        }
        ex.strip_identity_headers();
        let mut cred = None;
        if let Some(cookies) = &self.cookies {
            match self.browser(ex, cookies).await {
                Browsing::Answer(answer) => return Err(*answer),
                Browsing::Session(session) => cred = Some(Credential::Session(session)),
                Browsing::Continue => {}
            }
        }
        let cred = match cred {
            Some(c) => c,
            None => match self.find_credential(ex).await? {
                Some(c) => c,
                None => return self.unauthenticated(ex).await,
            },
        };
        let auth = match self.authenticate(ex, &cred).await {
            Ok(a) => a,
            Err(d) => return self.refuse(ex, &cred, d).await,
        };
        let auth = match self.completed_by_userinfo(auth).await {
            Ok(a) => a,
            Err(d) => return self.refuse(ex, &cred, d).await,
        };
        if let Err(d) = self.authorize(&auth.claims) {
            return self.deny(ex, d);
        }
        match self.map_consumer(&auth.claims) {
            Ok(Some(c)) => ex.set_consumer(&c, false),
            Ok(None) => {}
            Err(d) => return self.deny(ex, d),
        }
        match self.memberships.from_claim(
            &auth.claims,
            &self.config.consumer_groups_claim,
            self.config.consumer_groups_optional,
        ) {
            Ok(groups) => ex.consumer_groups = groups,
            Err(NoConsumerGroup) => {
                let no_group = Denial::Forbidden("no consumer group matches the token".into());
                return self.deny(ex, no_group);
            }
        }
        debug!(plugin = NAME, request_id = %ex.request_id, token = %token_fingerprint(&auth.access_token), "authenticated");
        ex.credential = Some(self.credential_id(&auth));
        ex.authenticated_groups =
            Groups::from_claim(&auth.claims, &self.config.authenticated_groups_claim);
        self.set_upstream(ex, &auth, &cred).await;
        Ok(())
    }
}

/// What the browser methods make of a request.
enum Browsing {
    /// The plugin answers: a callback completed or refused, a logout.
    Answer(Box<Refusal>),
    /// A valid session to authenticate with.
    Session(Box<Session>),
    /// Nothing for them: look for other credentials.
    Continue,
}

impl OpenIdConnect {
    /// Logout, the callback of a sign-in, or a session cookie, in that order. A session that does not
    /// open or has expired has its cookies cleared on the request's answer.
    async fn browser(&self, ex: &mut Exchange, cookies: &Cookies) -> Browsing {
        if self.is_backchannel_logout(ex) {
            return Browsing::Answer(Box::new(self.backchannel_logout(ex, cookies).await));
        }
        if self.is_logout(ex) {
            return Browsing::Answer(Box::new(self.logout(ex, cookies).await));
        }
        if self.allows(AuthMethod::AuthorizationCode) && self.is_callback(ex, cookies) {
            let outcome = match self.doc().await {
                Ok(doc) => self.callback(ex, &doc, cookies).await,
                Err(d) => Err(d),
            };
            return Browsing::Answer(Box::new(outcome.unwrap_or_else(|d| {
                self.answer(ex, d)
                    .with_field(http::header::SET_COOKIE, cookies.clear_pending(ex.tls))
            })));
        }
        if !self.allows(AuthMethod::Session) {
            return Browsing::Continue;
        }
        let now = unix_now();
        match cookies.session(&ex.parts.headers, now).await {
            Ok(Some((session, chunks, _))) if self.revoked(&session) => {
                debug!(plugin = NAME, request_id = %ex.request_id, "session ended by the identity provider");
                self.end_session(ex, cookies, &session, chunks).await;
                Browsing::Continue
            }
            Ok(Some((mut session, chunks, mut due))) => {
                if self.expired(&session, now) {
                    match self.refresh_session(ex, &mut session).await {
                        Ok(()) => due = true,
                        Err(Denial::Unavailable(why)) => {
                            return Browsing::Answer(Box::new(
                                self.answer(ex, Denial::Unavailable(why)),
                            ))
                        }
                        Err(denial) => {
                            debug!(plugin = NAME, request_id = %ex.request_id, ?denial, "session ended");
                            self.end_session(ex, cookies, &session, chunks).await;
                            return Browsing::Continue;
                        }
                    }
                }
                if due {
                    match cookies.store(&mut session, now, ex.tls, chunks).await {
                        Ok(set) => {
                            for c in set {
                                ex.answer_fields.push((http::header::SET_COOKIE, c));
                            }
                        }
                        Err(why) => {
                            return Browsing::Answer(Box::new(
                                self.answer(ex, Denial::Unavailable(why)),
                            ))
                        }
                    }
                }
                Browsing::Session(Box::new(session))
            }
            Ok(None) => Browsing::Continue,
            Err((Invalid::Unavailable, _)) => Browsing::Answer(Box::new(self.answer(
                ex,
                Denial::Unavailable(Invalid::Unavailable.as_str().into()),
            ))),
            Err((why, chunks)) => {
                debug!(plugin = NAME, request_id = %ex.request_id, reason = why.as_str(), "session refused");
                for c in cookies.clear(ex.tls, chunks) {
                    ex.answer_fields.push((http::header::SET_COOKIE, c));
                }
                Browsing::Continue
            }
        }
    }

    /// Ends a session that may no longer be used: deleted from its store, its `chunks` cookies cleared on
    /// the request's answer.
    async fn end_session(
        &self,
        ex: &mut Exchange,
        cookies: &Cookies,
        session: &Session,
        chunks: usize,
    ) {
        let _ = cookies.forget(session).await;
        for c in cookies.clear(ex.tls, chunks) {
            ex.answer_fields.push((http::header::SET_COOKIE, c));
        }
    }

    /// No credential at all: a browser is sent to sign in (when `authorization_code` is on), anything
    /// else refused.
    async fn unauthenticated(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        if let Some(cookies) = &self.cookies {
            if self.allows(AuthMethod::AuthorizationCode) && login::follows_redirects(ex) {
                let started = match self.doc().await {
                    Ok(doc) => self.start_sign_in(ex, &doc, cookies),
                    Err(d) => Err(d),
                };
                return Err(self.with_cleared(ex, started.unwrap_or_else(|d| self.answer(ex, d))));
            }
        }
        let refused = self.deny(ex, Denial::NoCredential);
        refused.map_err(|r| self.with_cleared(ex, r))
    }

    /// A credential that did not authenticate; a browser whose session ended signs in again.
    async fn refuse(
        &self,
        ex: &mut Exchange,
        cred: &Credential,
        denial: Denial,
    ) -> Result<(), Refusal> {
        if let (Credential::Session(session), Denial::Invalid(why), Some(cookies)) =
            (cred, &denial, &self.cookies)
        {
            debug!(plugin = NAME, request_id = %ex.request_id, reason = %why, "session ended");
            let (_, chunks) = crate::plugins::cookies::get_chunked(
                &ex.parts.headers,
                &self.config.browser.session_cookie_name,
            );
            ex.answer_fields.clear();
            self.end_session(ex, cookies, session, chunks).await;
            return self.unauthenticated(ex).await;
        }
        self.deny(ex, denial)
    }

    /// `answer` with the cookies the request's answer was to clear.
    fn with_cleared(&self, ex: &mut Exchange, mut answer: Refusal) -> Refusal {
        for (name, value) in ex.answer_fields.drain(..) {
            answer = answer.with_field(name, value);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::decision::satisfies;
    use super::*;

    #[test]
    fn required_alternatives_and_words() {
        let have: Vec<String> = vec!["read".into(), "write".into()];
        assert!(satisfies(&have, &[]));
        assert!(satisfies(&have, &["read write".into()]));
        assert!(satisfies(&have, &["admin".into(), "read".into()]));
        assert!(!satisfies(&have, &["read admin".into()]));
    }

    #[test]
    fn claim_paths_and_shapes() {
        let c = json!({"scope": "a b", "aud": ["x", "y"], "realm": {"roles": ["r1"]}});
        assert_eq!(claim_values(&c, &["scope".into()]), ["a", "b"]);
        assert_eq!(claim_values(&c, &["aud".into()]), ["x", "y"]);
        assert_eq!(claim_values(&c, &["realm".into(), "roles".into()]), ["r1"]);
        assert!(claim_values(&c, &["none".into()]).is_empty());
    }

    #[test]
    fn ec_jwk_becomes_a_signing_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pkcs8 = key.serialize_der();
        // The last 65 bytes of the SPKI are the public point; d sits inside the PKCS#8 structure.
        let raw = key.public_key_raw();
        let (x, y) = (&raw[1..33], &raw[33..65]);
        let d_pos = pkcs8.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
        let d = &pkcs8[d_pos..d_pos + 32];
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "d": b(d), "x": b(x), "y": b(y), "kid": "k1"});
        let (enc, alg, kid) = signing_key(&jwk).unwrap();
        assert_eq!((alg, kid.as_deref()), (Algorithm::ES256, Some("k1")));
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &json!({"a": 1, "exp": unix_now() + 60}),
            &enc,
        )
        .unwrap();
        let dec = jsonwebtoken::DecodingKey::from_ec_components(&b(x), &b(y)).unwrap();
        jsonwebtoken::decode::<Value>(
            &token,
            &dec,
            &jsonwebtoken::Validation::new(Algorithm::ES256),
        )
        .unwrap();
    }
}
