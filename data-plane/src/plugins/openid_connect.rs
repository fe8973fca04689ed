//! `openid-connect`: JWT bearer tokens verified against the issuer's JWKS, token introspection, and the
//! password and client-credentials grants, with Kong's config fields, headers and status codes.

use std::sync::Arc;
use std::time::Duration;

use crate::unix_now;
use base64::Engine;
use http::{Method, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::jwt::{self, ClaimRules};
use shared::plugins::openid_connect::{Config, NAME};
use shared::Consumer;
use tracing::{debug, info, warn};

use super::credentials::{self, Source};
use super::introspection_answer::{self, Refusal};
use super::oidc_issuer::{IssuerDoc, Issuers};
use super::{
    anonymous_consumer, claim_header_value, json_response, token_fingerprint, BuildCtx,
    ConsumerIndex, Events, Exchange, Plugin, ProxyBody,
};
use crate::cache::{Cached, Caches, TokenKey};
use crate::metrics::Metrics;

/// One configured instance.
pub struct OpenIdConnect {
    id: String,
    config: Config,
    client: reqwest::Client,
    consumers: Arc<ConsumerIndex>,
    anonymous: Option<Arc<Consumer>>,
    caches: Arc<Caches>,
    metrics: Arc<Metrics>,
    realm: String,
    events: Events,
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let client = ctx.clients.get(config.timeout, 60_000, config.ssl_verify)?;
    let anonymous = anonymous_consumer(&ctx.state, &config.anonymous)?;
    for jwk in &config.client_jwk {
        signing_key(jwk)?;
    }
    let realm = url::Url::parse(&config.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Arc::new(OpenIdConnect {
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
            &[
                "hit",
                "miss",
                "jwt_hit",
                "token_hit",
                "token_miss",
                "idp_call",
                "idp_error",
            ],
        ),
        realm,
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

/// A signing key for `private_key_jwt` from a private JWK (EC P-256 or RSA).
fn signing_key(jwk: &Value) -> Result<(EncodingKey, Algorithm, Option<String>), String> {
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("client_jwk: missing '{name}'"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("client_jwk: '{name}' is not base64url"))
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
    match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => {
            if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err("client_jwk: only the P-256 curve is supported for EC keys".into());
            }
            let (d, x, y) = (b64("d")?, b64("x")?, b64("y")?);
            if d.len() != 32 || x.len() != 32 || y.len() != 32 {
                return Err("client_jwk: P-256 coordinates must be 32 bytes".into());
            }
            Ok((
                EncodingKey::from_ec_der(&der::ec_p256_pkcs8(&d, &x, &y)),
                Algorithm::ES256,
                kid,
            ))
        }
        Some("RSA") => {
            let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .map(|n| b64(n))
                .collect::<Result<Vec<_>, _>>()?;
            let alg = match jwk.get("alg").and_then(Value::as_str) {
                Some("RS384") => Algorithm::RS384,
                Some("RS512") => Algorithm::RS512,
                Some("PS256") => Algorithm::PS256,
                _ => Algorithm::RS256,
            };
            Ok((EncodingKey::from_rsa_der(&der::rsa_pkcs1(&parts)), alg, kid))
        }
        _ => Err("client_jwk: kty must be EC or RSA".into()),
    }
}

/// Minimal DER encoding of private keys from JWK parameters.
mod der {
    fn len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }
    }
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(len(content.len()));
        out.extend_from_slice(content);
        out
    }
    fn uint(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = if trimmed.is_empty() { vec![0] } else { trimmed };
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        tlv(0x02, &v)
    }
    /// PKCS#1 RSAPrivateKey from n, e, d, p, q, dp, dq, qi.
    pub fn rsa_pkcs1(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = uint(&[0]);
        for p in parts {
            body.extend(uint(p));
        }
        tlv(0x30, &body)
    }
    /// PKCS#8 wrapping of an EC P-256 private key with its public point.
    pub fn ec_p256_pkcs8(d: &[u8], x: &[u8], y: &[u8]) -> Vec<u8> {
        const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let mut point = vec![0x00, 0x04];
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let mut ec = uint(&[1]);
        ec.extend(tlv(0x04, d));
        ec.extend(tlv(0xa1, &tlv(0x03, &point)));
        let ec_key = tlv(0x30, &ec);
        let mut alg = EC_PUBLIC_KEY.to_vec();
        alg.extend_from_slice(P256);
        let mut body = uint(&[0]);
        body.extend(tlv(0x30, &alg));
        body.extend(tlv(0x04, &ec_key));
        tlv(0x30, &body)
    }
}

/// The signature algorithms accepted for tokens and introspection responses: asymmetric only, so a key
/// published in a JWKS can never be used as an HMAC secret.
fn accepted_algorithm(alg: &str) -> Option<Algorithm> {
    use Algorithm::*;
    let alg: Algorithm = alg.parse().ok()?;
    matches!(
        alg,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
    )
    .then_some(alg)
}

/// Checks a compact JWS's signature with `key` and returns its payload; the claims are checked apart,
/// strictly, by [`jwt::check_claims`] (the library's own claim checks skip claims of the wrong type).
fn verify_signature(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, key, &v).map(|d| d.claims)
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && jsonwebtoken::decode_header(token).is_ok()
}

/// Values of a claim at a path (`["realm_access", "roles"]`), as strings; strings are split on spaces.
fn claim_values(claims: &Value, path: &[String]) -> Vec<String> {
    let mut cur = claims;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return Vec::new(),
        }
    }
    match cur {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Kong's rule: entries are alternatives; space-separated words inside one entry are all required.
fn satisfies(have: &[String], required: &[String]) -> bool {
    required.is_empty()
        || required
            .iter()
            .any(|alt| alt.split_whitespace().all(|w| have.iter().any(|h| h == w)))
}

impl OpenIdConnect {
    fn event(&self, event: &str) {
        self.events.add(event);
    }

    fn issuers(&self) -> &Issuers {
        &self.caches.issuers
    }

    async fn doc(&self) -> Result<Arc<IssuerDoc>, Denial> {
        self.issuers()
            .get(&self.client, &self.config.issuer)
            .await
            .map_err(|e| Denial::Unavailable(format!("discovery failed: {}", e.0)))
    }

    /// The configured client to authenticate as (a request may pick one with `X-<client_arg>`).
    fn gateway_client(&self, ex: &Exchange) -> Option<ClientCreds> {
        let header = format!("x-{}", self.config.client_arg.replace('_', "-"));
        let wanted = ex
            .parts
            .headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok());
        let idx = wanted
            .and_then(|w| self.config.client_id.iter().position(|c| c == w))
            .unwrap_or(0);
        let id = self.config.client_id.get(idx)?.clone();
        Some(ClientCreds {
            id,
            secret: self.config.client_secret.get(idx).cloned(),
            jwk: self
                .config
                .client_jwk
                .get(idx)
                .or(self.config.client_jwk.first())
                .cloned(),
        })
    }

    fn auth_method(&self, for_introspection: bool) -> String {
        let explicit = if for_introspection {
            self.config
                .introspection_endpoint_auth_method
                .clone()
                .or_else(|| self.config.token_endpoint_auth_method.clone())
        } else {
            self.config.token_endpoint_auth_method.clone()
        };
        explicit
            .or_else(|| self.config.client_auth.first().cloned())
            .unwrap_or_else(|| {
                if self.config.client_secret.is_empty() {
                    "none".into()
                } else {
                    "client_secret_basic".into()
                }
            })
    }

    /// Adds client authentication to a form request to `endpoint`.
    fn authenticate_client(
        &self,
        req: reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
        endpoint: &str,
        method: &str,
        creds: &ClientCreds,
    ) -> Result<reqwest::RequestBuilder, Denial> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let (client_id, secret, jwk) = (
            creds.id.as_str(),
            creds.secret.as_deref(),
            creds.jwk.as_ref(),
        );
        match method {
            "client_secret_basic" => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(client_id),
                    enc(secret.unwrap_or_default())
                ));
                Ok(req.header(http::header::AUTHORIZATION, format!("Basic {basic}")))
            }
            "client_secret_post" => {
                form.push(("client_id".into(), client_id.into()));
                form.push(("client_secret".into(), secret.unwrap_or_default().into()));
                Ok(req)
            }
            "client_secret_jwt" | "private_key_jwt" => {
                let now = unix_now();
                let claims = json!({
                    "iss": client_id, "sub": client_id, "aud": endpoint,
                    "jti": hex::encode(rand::random::<[u8; 16]>()), "iat": now, "exp": now + 60,
                });
                let assertion = if method == "client_secret_jwt" {
                    let key = EncodingKey::from_secret(secret.unwrap_or_default().as_bytes());
                    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
                } else {
                    let jwk =
                        jwk.ok_or_else(|| Denial::Unavailable("no client_jwk configured".into()))?;
                    let (key, alg, kid) = signing_key(jwk).map_err(Denial::Unavailable)?;
                    let mut header = Header::new(alg);
                    header.kid = kid;
                    jsonwebtoken::encode(&header, &claims, &key)
                }
                .map_err(|e| {
                    Denial::Unavailable(format!("cannot sign the client assertion: {e}"))
                })?;
                form.push(("client_id".into(), client_id.into()));
                form.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion".into(), assertion));
                Ok(req)
            }
            _ => {
                form.push(("client_id".into(), client_id.into()));
                Ok(req)
            }
        }
    }

    /// Verifies a JWT access token: a strict JOSE header (no `crit`), an accepted algorithm, a signature
    /// by a key of the issuer's JWKS (rediscovering once on an unknown `kid`), then the registered claims
    /// by type and value (`exp` required, `nbf`, `iss` equal to the issuer) with `leeway`.
    async fn verify_jwt(&self, token: &str, doc: &Arc<IssuerDoc>) -> Result<Value, Denial> {
        let header = jwt::parse_header(token).map_err(|e| Denial::Invalid(e.to_string()))?;
        let alg = accepted_algorithm(&header.alg).ok_or_else(|| {
            Denial::Invalid(format!("JWT algorithm {:?} is not accepted", header.alg))
        })?;
        let kid = header.kid.as_deref();
        let mut doc = doc.clone();
        if doc.key(kid).is_none() {
            doc = self
                .issuers()
                .rediscover(
                    &self.client,
                    &self.config.issuer,
                    Duration::from_secs(self.config.rediscovery_lifetime),
                )
                .await;
        }
        let Some((_, _, key)) = doc.key(kid) else {
            return Err(Denial::Invalid(format!(
                "no key with kid {kid:?} in the issuer's JWKS"
            )));
        };
        let claims = verify_signature(token, key, alg)
            .map_err(|e| Denial::Invalid(format!("JWT rejected: {e}")))?;
        let issuer = doc.issuer().unwrap_or_else(|| self.config.issuer.clone());
        let rules = ClaimRules {
            issuer: Some(&issuer),
            require_exp: true,
            leeway: self.config.leeway,
            ..ClaimRules::default()
        };
        jwt::check_claims(&claims, &rules, unix_now())
            .map_err(|e| Denial::Invalid(format!("JWT rejected: {e}")))?;
        Ok(claims)
    }

    /// Verifies an RFC 9701 introspection response: typed `token-introspection+jwt`, signed with a key of
    /// the issuer's JWKS, with the claims RFC 9701 §5 requires (`iss` equal to the issuer, `aud` naming this
    /// gateway's client, `iat`) and valid `exp`/`nbf` when present; returns the `token_introspection`
    /// member. A response that fails any of these is treated as an identity-provider failure, never as an
    /// answer about the token.
    fn verify_introspection_jwt(
        &self,
        response: &str,
        doc: &IssuerDoc,
        client_id: &str,
    ) -> Result<Value, Denial> {
        let rejected =
            |why: String| Denial::Unavailable(format!("introspection JWT rejected: {why}"));
        let header = jwt::parse_header(response).map_err(|e| rejected(e.to_string()))?;
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("token-introspection+jwt")
            && !typ.eq_ignore_ascii_case("application/token-introspection+jwt")
        {
            return Err(rejected(format!(
                "typ {typ:?} is not token-introspection+jwt"
            )));
        }
        let alg = accepted_algorithm(&header.alg)
            .ok_or_else(|| rejected(format!("algorithm {:?} is not accepted", header.alg)))?;
        let (_, _, key) = doc.key(header.kid.as_deref()).ok_or_else(|| {
            Denial::Unavailable("introspection JWT signed with an unknown key".into())
        })?;
        let claims = verify_signature(response, key, alg).map_err(|e| rejected(e.to_string()))?;
        let issuer = doc.issuer().unwrap_or_else(|| self.config.issuer.clone());
        let rules = ClaimRules {
            issuer: Some(&issuer),
            audience: Some(client_id),
            require_iat: true,
            leeway: self.config.leeway,
            ..ClaimRules::default()
        };
        jwt::check_claims(&claims, &rules, unix_now()).map_err(|e| rejected(e.to_string()))?;
        match claims.get("token_introspection") {
            Some(Value::Object(result)) => Ok(Value::Object(result.clone())),
            _ => Err(rejected("no token_introspection object".into())),
        }
    }

    /// [`Self::verify_jwt`] through a cache of verified tokens (keyed by the token's hash), so a token is
    /// verified once and then served from memory until its `exp` or `cache_ttl`, whichever comes first.
    async fn verify_jwt_cached(
        &self,
        token: &str,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Arc<Value>, Denial> {
        let key = self.key("jwt", &[token]);
        if let Some(hit) = self.caches.oidc_jwt.get(&key).await {
            self.event("jwt_hit");
            return Ok(hit.claims);
        }
        let claims = Arc::new(self.verify_jwt(token, doc).await?);
        let remaining = claims
            .get("exp")
            .and_then(Value::as_i64)
            .map(|exp| exp - unix_now())
            .unwrap_or(0);
        let ttl = remaining.min(self.config.cache_ttl as i64);
        if ttl > 0 {
            let cached = Cached {
                claims: claims.clone(),
                ttl: Duration::from_secs(ttl as u64),
            };
            self.caches.oidc_jwt.insert(key, cached).await;
        }
        Ok(claims)
    }

    /// A refused introspection answer as a denial: inactive tokens are invalid, provider faults count as
    /// identity-provider errors and answer 503.
    fn refused(&self, refusal: Refusal) -> Denial {
        match refusal {
            Refusal::Inactive(why) => Denial::Invalid(why),
            Refusal::Fault(why) => {
                self.event("idp_error");
                Denial::Unavailable(format!("introspection {why}"))
            }
        }
    }

    fn ttl_for(&self, claims: &Value) -> Duration {
        let now = unix_now();
        let mut ttl = self.config.cache_ttl as i64;
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            ttl = ttl.min(exp - now);
        }
        if let Some(min) = self.config.cache_ttl_min {
            ttl = ttl.max(min as i64);
        }
        if let Some(max) = self.config.cache_ttl_max {
            ttl = ttl.min(max as i64);
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            ttl = ttl.min(exp - now);
        }
        Duration::from_secs(ttl.max(0) as u64)
    }

    fn key(&self, kind: &str, secret_material: &[&str]) -> TokenKey {
        let namespace: [u8; 32] = Sha256::new()
            .chain_update(self.id.as_bytes())
            .chain_update(self.config.issuer.as_bytes())
            .chain_update(kind.as_bytes())
            .finalize()
            .into();
        let mut h = Sha256::new();
        for (i, part) in secret_material.iter().enumerate() {
            if i > 0 {
                h.update([0u8]);
            }
            h.update(part.as_bytes());
        }
        TokenKey {
            namespace,
            token: h.finalize().into(),
        }
    }

    async fn introspect(
        &self,
        token: &str,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = self
            .config
            .introspection_endpoint
            .clone()
            .or_else(|| doc.endpoint("introspection_endpoint"))
            .ok_or_else(|| {
                Denial::Unavailable("the issuer has no introspection endpoint".into())
            })?;
        let fetch = async {
            let creds = self
                .gateway_client(ex)
                .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
            let mut form: Vec<(String, String)> = vec![
                ("token".into(), token.into()),
                (
                    "token_type_hint".into(),
                    self.config.introspection_hint.clone(),
                ),
            ];
            for (k, v) in self
                .config
                .introspection_post_args_names
                .iter()
                .zip(&self.config.introspection_post_args_values)
            {
                form.push((k.clone(), v.clone()));
            }
            let mut req = self
                .client
                .post(&endpoint)
                .header(http::header::ACCEPT, &self.config.introspection_accept);
            for (k, v) in self
                .config
                .introspection_headers_names
                .iter()
                .zip(&self.config.introspection_headers_values)
            {
                req = req.header(k.as_str(), v.as_str());
            }
            let method = self.auth_method(true);
            let req = self.authenticate_client(req, &mut form, &endpoint, &method, &creds)?;
            self.event("idp_call");
            let started = std::time::Instant::now();
            let resp = req.form(&form).send().await;
            self.metrics.idp_latency.observe(
                &[("plugin", NAME), ("instance", &self.id)],
                started.elapsed(),
            );
            let resp = resp.map_err(|e| {
                self.event("idp_error");
                Denial::Unavailable(format!(
                    "introspection {}",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "unreachable"
                    }
                ))
            })?;
            if resp.status() != reqwest::StatusCode::OK {
                self.event("idp_error");
                return Err(Denial::Unavailable(format!(
                    "introspection answered HTTP {}",
                    resp.status().as_u16()
                )));
            }
            let is_jwt = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("token-introspection+jwt"));
            let text = resp
                .text()
                .await
                .map_err(|_| Denial::Unavailable("introspection body unreadable".into()))?;
            let answer = if is_jwt {
                self.verify_introspection_jwt(&text, doc, &creds.id)
                    .inspect_err(|_| self.event("idp_error"))?
            } else {
                introspection_answer::parse(text.as_bytes()).map_err(|r| self.refused(r))?
            };
            introspection_answer::judge(answer, self.config.introspection_check_active, unix_now())
                .map_err(|r| self.refused(r))
        };
        if !self.config.cache_introspection {
            return fetch.await.map(Arc::new);
        }
        let key = self.key("introspection", &[token]);
        let (out, missed) =
            crate::cache::get_or_fetch(&self.caches.oidc_introspection, key, async {
                let claims = fetch.await?;
                let ttl = self.ttl_for(&claims);
                Ok::<_, Denial>(Cached {
                    claims: Arc::new(claims),
                    ttl,
                })
            })
            .await;
        self.event(if missed { "miss" } else { "hit" });
        out.map(|c| c.claims).map_err(|e| (*e).clone())
    }

    /// Calls the token endpoint for a grant; results are cached under a hash of the credentials.
    async fn grant(
        &self,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
        grant: &str,
        user: &str,
        pass: &str,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = doc
            .endpoint("token_endpoint")
            .ok_or_else(|| Denial::Unavailable("the issuer has no token endpoint".into()))?;
        let scope = self.config.scopes.join(" ");
        let fetch = async {
            let mut form: Vec<(String, String)> = vec![("grant_type".into(), grant.into())];
            if !scope.is_empty() {
                form.push(("scope".into(), scope.clone()));
            }
            let method = self.auth_method(false);
            let req = self
                .client
                .post(&endpoint)
                .header(http::header::ACCEPT, "application/json");
            let req = if grant == "password" {
                form.push(("username".into(), user.into()));
                form.push(("password".into(), pass.into()));
                let creds = self
                    .gateway_client(ex)
                    .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
                self.authenticate_client(req, &mut form, &endpoint, &method, &creds)?
            } else {
                // The caller's own client credentials; the assertion methods need the gateway's keys, so the
                // caller's secret is sent with basic or post authentication.
                let m = if method == "client_secret_post" {
                    "client_secret_post"
                } else {
                    "client_secret_basic"
                };
                let caller = ClientCreds {
                    id: user.to_string(),
                    secret: Some(pass.to_string()),
                    jwk: None,
                };
                self.authenticate_client(req, &mut form, &endpoint, m, &caller)?
            };
            self.event("idp_call");
            let resp = req.form(&form).send().await.map_err(|e| {
                self.event("idp_error");
                Denial::Unavailable(format!(
                    "token endpoint {}",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "unreachable"
                    }
                ))
            })?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_server_error() {
                self.event("idp_error");
                return Err(Denial::Unavailable(format!(
                    "token endpoint answered HTTP {}",
                    status.as_u16()
                )));
            }
            if !status.is_success() || body.get("access_token").and_then(Value::as_str).is_none() {
                let err = body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no access token");
                return Err(Denial::Invalid(format!("{grant} grant refused: {err}")));
            }
            Ok(body)
        };
        if !self.config.cache_tokens {
            return fetch.await.map(Arc::new);
        }
        let client = self.gateway_client(ex).map(|c| c.id).unwrap_or_default();
        let key = self.key("token", &[grant, user, pass, &client, &scope]);
        let (out, missed) = crate::cache::get_or_fetch(&self.caches.oidc_tokens, key, async {
            let body = fetch.await?;
            let ttl = Duration::from_secs(
                body.get("expires_in")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(self.config.cache_ttl),
            );
            Ok::<_, Denial>(Cached {
                claims: Arc::new(body),
                ttl,
            })
        })
        .await;
        self.event(if missed { "token_miss" } else { "token_hit" });
        // The cached answer is shared, never copied per request.
        out.map(|c| c.claims).map_err(|e| (*e).clone())
    }

    /// Validates an access token: a JWT is verified (and introspected with `introspect_jwt_tokens`); an
    /// opaque token, or a JWT that fails verification, is introspected when introspection is enabled.
    async fn validate_token(
        &self,
        token: &str,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
        bearer_allowed: bool,
    ) -> Result<(Arc<Value>, Option<Arc<Value>>), Denial> {
        let introspection = self
            .config
            .auth_methods
            .iter()
            .any(|m| m == "introspection");
        if bearer_allowed && looks_like_jwt(token) {
            match self.verify_jwt_cached(token, doc).await {
                Ok(claims) => {
                    if self.config.introspect_jwt_tokens && introspection {
                        let result = self.introspect(token, ex, doc).await?;
                        return Ok((claims, Some(result)));
                    }
                    return Ok((claims, None));
                }
                Err(e) if !introspection => return Err(e),
                Err(_) => {}
            }
        }
        if introspection {
            let result = self.introspect(token, ex, doc).await?;
            return Ok((result.clone(), Some(result)));
        }
        Err(Denial::Invalid(
            "token is not a valid JWT and introspection is not enabled".into(),
        ))
    }

    async fn find_credential(
        &self,
        ex: &mut Exchange,
    ) -> Result<Option<Credential>, Response<ProxyBody>> {
        let methods = &self.config.auth_methods;
        let has = |m: &str| methods.iter().any(|x| x == m);
        let types = |list: &Vec<String>, t: &str| list.iter().any(|x| x == t);
        if has("bearer") || has("introspection") {
            let t = &self.config.bearer_token_param_type;
            if types(t, "header") {
                if let Some(tok) = credentials::bearer_header(ex) {
                    return Ok(Some(Credential::Bearer(tok, Source::Header)));
                }
            }
            if types(t, "query") {
                if let Some(tok) = credentials::query_param(ex, "access_token") {
                    return Ok(Some(Credential::Bearer(tok, Source::Query)));
                }
            }
            if types(t, "body") {
                if let Some((tok, src)) = credentials::body_param(ex, "access_token").await? {
                    return Ok(Some(Credential::Bearer(tok, src)));
                }
            }
        }
        for (method, list, user_field, pass_field) in [
            (
                "password",
                &self.config.password_param_type,
                "username",
                "password",
            ),
            (
                "client_credentials",
                &self.config.client_credentials_param_type,
                "client_id",
                "client_secret",
            ),
        ] {
            if !has(method) {
                continue;
            }
            let make = |u: String, p: String, s: Source| {
                if method == "password" {
                    Credential::Password(u, p, s)
                } else {
                    Credential::Client(u, p, s)
                }
            };
            if types(list, "header") {
                if let Some((u, p)) = credentials::basic_header(ex) {
                    return Ok(Some(make(u, p, Source::Header)));
                }
            }
            if types(list, "query") {
                if let (Some(u), Some(p)) = (
                    credentials::query_param(ex, user_field),
                    credentials::query_param(ex, pass_field),
                ) {
                    return Ok(Some(make(u, p, Source::Query)));
                }
            }
            if types(list, "body") {
                if let (Some((u, src)), Some((p, _))) = (
                    credentials::body_param(ex, user_field).await?,
                    credentials::body_param(ex, pass_field).await?,
                ) {
                    return Ok(Some(make(u, p, src)));
                }
            }
        }
        Ok(None)
    }

    async fn authenticate(
        &self,
        ex: &mut Exchange,
        cred: &Credential,
    ) -> Result<Authenticated, Denial> {
        let doc = self.doc().await?;
        let bearer = self.config.auth_methods.iter().any(|m| m == "bearer");
        match cred {
            Credential::Bearer(token, _) => {
                let (claims, introspection) = self.validate_token(token, ex, &doc, bearer).await?;
                Ok(Authenticated {
                    access_token: token.clone(),
                    claims,
                    introspection,
                })
            }
            Credential::Password(user, pass, _) | Credential::Client(user, pass, _) => {
                let grant = if matches!(cred, Credential::Password(..)) {
                    "password"
                } else {
                    "client_credentials"
                };
                let mut result = self.grant(ex, &doc, grant, user, pass).await;
                // A Basic header may carry client credentials when both grants are enabled.
                if grant == "password"
                    && matches!(result, Err(Denial::Invalid(_)))
                    && self
                        .config
                        .auth_methods
                        .iter()
                        .any(|m| m == "client_credentials")
                {
                    if let Ok(r) = self.grant(ex, &doc, "client_credentials", user, pass).await {
                        result = Ok(r);
                    }
                }
                let body = result?;
                let token = body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let (claims, introspection) = if looks_like_jwt(&token) {
                    self.validate_token(&token, ex, &doc, true).await?
                } else if self
                    .config
                    .auth_methods
                    .iter()
                    .any(|m| m == "introspection")
                {
                    self.validate_token(&token, ex, &doc, false).await?
                } else {
                    (body.clone(), None)
                };
                Ok(Authenticated {
                    access_token: token,
                    claims,
                    introspection,
                })
            }
        }
    }

    fn authorize(&self, claims: &Value) -> Result<(), Denial> {
        if !self.config.issuers_allowed.is_empty() {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.config.issuers_allowed.iter().any(|i| i == iss) {
                return Err(Denial::Forbidden(format!("issuer '{iss}' is not allowed")));
            }
        }
        if !satisfies(
            &claim_values(claims, &self.config.scopes_claim),
            &self.config.scopes_required,
        ) {
            return Err(Denial::Forbidden("required scopes are missing".into()));
        }
        if !satisfies(
            &claim_values(claims, &self.config.audience_claim),
            &self.config.audience_required,
        ) {
            return Err(Denial::Forbidden("required audience is missing".into()));
        }
        Ok(())
    }

    fn map_consumer(&self, claims: &Value) -> Result<Option<Arc<Consumer>>, Denial> {
        if self.config.consumer_claim.is_empty() {
            return Ok(None);
        }
        let value = claim_values(claims, &self.config.consumer_claim)
            .into_iter()
            .next();
        let found = value.as_deref().and_then(|v| {
            self.config
                .consumer_by
                .iter()
                .find_map(|by| self.consumers.find(by, v).cloned())
        });
        match found {
            Some(c) => Ok(Some(c)),
            None if self.config.consumer_optional => Ok(None),
            None => Err(Denial::Forbidden("no consumer matches the token".into())),
        }
    }

    fn deny(&self, ex: &mut Exchange, denial: Denial) -> Result<(), Response<ProxyBody>> {
        let detail = |base: &str, reason: &str| {
            if self.config.display_errors {
                format!("{base} ({reason})")
            } else {
                base.to_string()
            }
        };
        match denial {
            Denial::Unavailable(reason) => {
                warn!(plugin = NAME, request_id = %ex.request_id, issuer = %self.config.issuer, failure = %reason, "identity provider unavailable");
                Err(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"message": format!("The identity provider is unavailable: {reason}")}),
                    &[("retry-after", "5".into())],
                ))
            }
            Denial::Forbidden(reason) => {
                info!(plugin = NAME, request_id = %ex.request_id, %reason, "request forbidden");
                Err(json_response(
                    StatusCode::FORBIDDEN,
                    &json!({"message": detail(&self.config.forbidden_error_message, &reason)}),
                    &[(
                        "www-authenticate",
                        format!(
                            "Bearer realm=\"{}\", error=\"insufficient_scope\"",
                            self.realm
                        ),
                    )],
                ))
            }
            Denial::NoCredential | Denial::Invalid(_) => {
                if let Some(anon) = &self.anonymous {
                    ex.set_consumer(anon, true);
                    return Ok(());
                }
                let (reason, www) = match &denial {
                    Denial::Invalid(r) => (
                        r.clone(),
                        format!("Bearer realm=\"{}\", error=\"invalid_token\"", self.realm),
                    ),
                    _ => (
                        "no credentials".to_string(),
                        format!("Bearer realm=\"{}\"", self.realm),
                    ),
                };
                info!(plugin = NAME, request_id = %ex.request_id, %reason, "request refused");
                Err(json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"message": detail(&self.config.unauthorized_error_message, &reason)}),
                    &[("www-authenticate", www)],
                ))
            }
        }
    }

    async fn set_upstream(&self, ex: &mut Exchange, auth: &Authenticated, cred: &Credential) {
        if self.config.hide_credentials {
            match cred {
                Credential::Bearer(_, src) => {
                    credentials::remove(ex, *src, &["access_token"]).await
                }
                Credential::Password(_, _, src) => {
                    credentials::remove(ex, *src, &["username", "password"]).await
                }
                Credential::Client(_, _, src) => {
                    credentials::remove(ex, *src, &["client_id", "client_secret"]).await
                }
            }
        }
        if let Some(spec) = &self.config.upstream_access_token_header {
            let (name, scheme) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            let value = if scheme.eq_ignore_ascii_case("bearer") {
                format!("Bearer {}", auth.access_token)
            } else {
                auth.access_token.clone()
            };
            ex.set_upstream_header(name, &value);
        }
        if let (Some(h), Some(result)) = (
            &self.config.upstream_introspection_header,
            &auth.introspection,
        ) {
            ex.set_upstream_header(
                h,
                &base64::engine::general_purpose::STANDARD.encode(result.to_string()),
            );
        }
        for (claim, header) in self
            .config
            .upstream_headers_claims
            .iter()
            .zip(&self.config.upstream_headers_names)
        {
            if let Some(v) = auth.claims.get(claim).and_then(claim_header_value) {
                ex.set_upstream_header(header, &v);
            }
        }
        if let Some(v) = claim_values(&auth.claims, &self.config.credential_claim)
            .into_iter()
            .next()
        {
            ex.set_upstream_header("x-credential-identifier", &v);
        }
    }
}

#[async_trait::async_trait]
impl Plugin for OpenIdConnect {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Response<ProxyBody>> {
        if !self.config.run_on_preflight && ex.parts.method == Method::OPTIONS {
            return Ok(());
        }
        ex.strip_identity_headers();
        let Some(cred) = self.find_credential(ex).await? else {
            return self.deny(ex, Denial::NoCredential);
        };
        let auth = match self.authenticate(ex, &cred).await {
            Ok(a) => a,
            Err(d) => return self.deny(ex, d),
        };
        if let Err(d) = self.authorize(&auth.claims) {
            return self.deny(ex, d);
        }
        match self.map_consumer(&auth.claims) {
            Ok(Some(c)) => ex.set_consumer(&c, false),
            Ok(None) => {}
            Err(d) => return self.deny(ex, d),
        }
        debug!(plugin = NAME, request_id = %ex.request_id, token = %token_fingerprint(&auth.access_token), "authenticated");
        self.set_upstream(ex, &auth, &cred).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        jsonwebtoken::decode::<Value>(&token, &dec, &Validation::new(Algorithm::ES256)).unwrap();
    }
}
