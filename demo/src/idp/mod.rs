//! A development OAuth 2.0 / OpenID Connect identity provider: the authorization code flow with a login
//! form, PKCE and RP-initiated logout (`authorize.rs`), back-channel logout (`backchannel.rs`), password and client-credentials grants,
//! RFC 7662 introspection (plain JSON or RFC 9701 signed JWT), revocation, discovery and a rotatable
//! JWKS. It verifies every client authentication method it receives (basic, post, client_secret_jwt,
//! private_key_jwt, none).
//!
//! For demos and tests only: users, clients and keys live in memory and are made up at start.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use platform::unix_now;
use serde_json::{json, Value};
use tokio::net::TcpListener;

mod authorize;
mod backchannel;
mod userinfo;

pub use authorize::half_hash;

/// Lifetime of issued access tokens, in seconds.
pub const TOKEN_LIFETIME: i64 = 300;

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Value,
}

fn new_key(kid: &str) -> SigningKey {
    let key = rcgen::KeyPair::generate().expect("key generation");
    let raw = key.public_key_raw();
    let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let (x, y) = (b(&raw[1..33]), b(&raw[33..65]));
    SigningKey {
        kid: kid.to_string(),
        encoding: EncodingKey::from_ec_der(&key.serialize_der()),
        decoding: DecodingKey::from_ec_components(&x, &y).expect("public key"),
        public_jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}),
    }
}

/// A registered client.
#[derive(Clone)]
pub struct Client {
    pub secret: Option<String>,
    /// Public JWK for `private_key_jwt`.
    pub jwk: Option<Value>,
}

/// Counters and the last authentication seen, for tests.
#[derive(Default)]
pub struct Stats {
    pub token_calls: AtomicU64,
    pub introspection_calls: AtomicU64,
    pub discovery_calls: AtomicU64,
    pub jwks_calls: AtomicU64,
    pub last_client_auth: Mutex<Option<String>>,
    pub end_session_calls: AtomicU64,
    /// Refresh-token grants answered with new tokens.
    pub refresh_calls: AtomicU64,
    /// The `id_token_hint` of the last end-session request.
    pub last_id_token_hint: Mutex<Option<String>>,
    /// Tokens revoked at the revocation endpoint (RFC 7009).
    pub revocations: AtomicU64,
    /// Calls of the UserInfo endpoint.
    pub userinfo_calls: AtomicU64,
    /// Logout tokens sent to back-channel logout URIs.
    pub backchannel_logouts: AtomicU64,
}

struct Inner {
    issuer: String,
    keys: Mutex<Vec<SigningKey>>,
    users: HashMap<String, String>,
    clients: Mutex<HashMap<String, Client>>,
    opaque: Mutex<HashMap<String, Value>>,
    /// Claims the UserInfo endpoint adds for a subject (by its JSON form), beyond its tokens' claims.
    userinfo_extra: Mutex<HashMap<String, Value>>,
    revoked: Mutex<HashSet<String>>,
    jwt_access_tokens: Mutex<bool>,
    down: Mutex<bool>,
    /// Sign RFC 9701 introspection responses with a key the JWKS does not hold (for tests).
    forge_introspection: Mutex<bool>,
    /// Claims written over the RFC 9701 envelope's own (`null` removes one), for tests of bad envelopes.
    envelope_overrides: Mutex<Value>,
    /// Codes of the authorization code flow not yet exchanged.
    codes: Mutex<HashMap<String, authorize::Grant>>,
    /// Sign-ins through the login form.
    sessions: AtomicU64,
    /// Claims written over the ID tokens of the authorization code flow (for tests of bad ID tokens).
    id_token_overrides: Mutex<Value>,
    /// Refresh tokens not yet used: the subject, client and scope they renew.
    refresh: Mutex<HashMap<String, authorize::Renewable>>,
    /// The `expires_in` the authorization code and refresh grants report, when set (for tests of expiry).
    expires_in: Mutex<Option<i64>>,
    /// Back-channel logout URIs by client.
    backchannel: Mutex<HashMap<String, String>>,
    /// Sign-ins of the authorization code flow: `sid`, subject, client.
    signed_in: Mutex<Vec<(String, String, String)>>,
    stats: Stats,
}

/// The running identity provider.
#[derive(Clone)]
pub struct DemoIdp {
    /// The issuer identifier (`http://127.0.0.1:<port>`).
    pub issuer: String,
    inner: Arc<Inner>,
}

/// Users and clients to start with.
pub struct IdpSetup {
    pub users: Vec<(String, String)>,
    pub clients: Vec<(String, Client)>,
}

impl Inner {
    /// Signs `claims` (ES256) under the current key's `kid`, with a key outside the JWKS when `forge`.
    fn sign(&self, claims: &Value, typ: Option<&str>, forge: bool) -> String {
        let keys = self.keys.lock().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys[0].kid.clone());
        header.typ = typ.map(str::to_string).or(header.typ);
        let forged;
        let key = if forge {
            forged = new_key(&keys[0].kid);
            &forged.encoding
        } else {
            &keys[0].encoding
        };
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }
}

impl Default for IdpSetup {
    fn default() -> Self {
        IdpSetup {
            users: vec![
                ("alex".into(), "doe".into()),
                ("bob".into(), "builder".into()),
            ],
            clients: vec![
                (
                    "kong".into(),
                    Client {
                        secret: Some("kong-secret".into()),
                        jwk: None,
                    },
                ),
                (
                    "app".into(),
                    Client {
                        secret: Some("app-secret".into()),
                        jwk: None,
                    },
                ),
            ],
        }
    }
}

impl DemoIdp {
    /// Starts on `listener`, its issuer being `http://<listener address>`.
    pub async fn start(listener: TcpListener, setup: IdpSetup) -> DemoIdp {
        Self::start_as(listener, setup, None).await
    }

    /// Starts on `listener` as `issuer` (the URL clients reach it by, when that is not the listener's).
    pub async fn start_as(
        listener: TcpListener,
        setup: IdpSetup,
        issuer: Option<String>,
    ) -> DemoIdp {
        let issuer = issuer
            .map(|i| i.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{}", listener.local_addr().expect("bound")));
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            keys: Mutex::new(vec![new_key("key-1")]),
            users: setup.users.into_iter().collect(),
            clients: Mutex::new(setup.clients.into_iter().collect()),
            opaque: Mutex::default(),
            userinfo_extra: Mutex::default(),
            revoked: Mutex::default(),
            jwt_access_tokens: Mutex::new(true),
            down: Mutex::new(false),
            forge_introspection: Mutex::new(false),
            envelope_overrides: Mutex::new(json!({})),
            codes: Mutex::default(),
            sessions: AtomicU64::new(0),
            id_token_overrides: Mutex::new(json!({})),
            refresh: Mutex::default(),
            expires_in: Mutex::new(None),
            backchannel: Mutex::default(),
            signed_in: Mutex::default(),
            stats: Stats::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .route("/userinfo", get(userinfo::userinfo))
            .route("/revoke", post(revoke))
            .route("/authorize", get(authorize::form).post(authorize::submit))
            .route("/logout", get(authorize::end_session))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        DemoIdp { issuer, inner }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Adds a new signing key and signs with it from now on (the old key stays published).
    pub fn rotate_key(&self, kid: &str) {
        let mut keys = self.inner.keys.lock().unwrap();
        keys.insert(0, new_key(kid));
    }

    /// Issue opaque (`false`) or JWT (`true`) access tokens.
    pub fn set_jwt_access_tokens(&self, jwt: bool) {
        *self.inner.jwt_access_tokens.lock().unwrap() = jwt;
    }

    /// Claims the UserInfo endpoint gives about `sub` besides those of its tokens (a profile the
    /// provider keeps, such as groups).
    pub fn set_userinfo(&self, sub: &str, claims: Value) {
        let key = Value::String(sub.to_string()).to_string();
        self.inner
            .userinfo_extra
            .lock()
            .unwrap()
            .insert(key, claims);
    }

    /// Makes every endpoint answer 503 (`true`) or work again.
    pub fn set_down(&self, down: bool) {
        *self.inner.down.lock().unwrap() = down;
    }

    /// Signs RFC 9701 introspection responses with a key outside the JWKS (`true`), as a compromised or
    /// spoofed provider would, or with the published key again.
    pub fn set_forge_introspection_responses(&self, forge: bool) {
        *self.inner.forge_introspection.lock().unwrap() = forge;
    }

    /// Writes `claims` over the RFC 9701 envelope's `iss`/`aud`/`iat`/… (a `null` value removes the claim),
    /// as a misbehaving provider would; `{}` restores well-formed envelopes.
    pub fn set_introspection_envelope_overrides(&self, claims: Value) {
        *self.inner.envelope_overrides.lock().unwrap() = claims;
    }

    /// Writes `claims` over the ID tokens the authorization code flow issues (`{}` restores them), as a
    /// misbehaving provider would.
    pub fn set_id_token_overrides(&self, claims: Value) {
        *self.inner.id_token_overrides.lock().unwrap() = claims;
    }

    /// Reports `expires_in` (seconds) for the tokens of the authorization code and refresh grants
    /// (`None`: their lifetime), so a client treats them as expired at once with `Some(0)`.
    pub fn set_expires_in(&self, secs: Option<i64>) {
        *self.inner.expires_in.lock().unwrap() = secs;
    }

    /// Whether `token` was revoked at the revocation endpoint.
    pub fn is_revoked(&self, token: &str) -> bool {
        self.inner.revoked.lock().unwrap().contains(token)
    }

    /// Forgets every refresh token, as a provider that revoked the grants would.
    pub fn revoke_refresh_tokens(&self) {
        self.inner.refresh.lock().unwrap().clear();
    }

    /// Sign-ins through the login form so far.
    pub fn sign_ins(&self) -> u64 {
        self.inner.sessions.load(Ordering::SeqCst)
    }

    /// Registers or replaces a client.
    pub fn add_client(&self, id: &str, client: Client) {
        self.inner
            .clients
            .lock()
            .unwrap()
            .insert(id.to_string(), client);
    }

    /// Signs arbitrary claims with the current key (for tests of expired or foreign tokens).
    pub fn sign(&self, claims: &Value) -> String {
        self.inner.sign(claims, None, false)
    }

    /// Signs `claims` with the current key under a header of this provider's making plus `extra_header`
    /// parameters (for tests of headers a library would not write, such as `crit`).
    pub fn sign_with_header(&self, extra_header: &Value, claims: &Value) -> String {
        let keys = self.inner.keys.lock().unwrap();
        let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": keys[0].kid});
        if let Value::Object(m) = extra_header {
            for (k, v) in m {
                header[k] = v.clone();
            }
        }
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let message = format!("{}.{}", b64(&header), b64(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &keys[0].encoding, Algorithm::ES256)
                .expect("sign");
        format!("{message}.{signature}")
    }

    /// An access token for `sub` with the given extra claims, as the token endpoint would issue it.
    pub fn issue(&self, sub: &str, client_id: &str, scope: &str, extra: Value) -> String {
        issue(&self.inner, sub, client_id, scope, extra)
    }
}

fn issue(inner: &Inner, sub: &str, client_id: &str, scope: &str, extra: Value) -> String {
    let now = unix_now();
    let mut claims = json!({
        "iss": inner.issuer, "sub": sub, "aud": "portcullis", "client_id": client_id, "scope": scope,
        "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, "jti": hex::encode(rand::random::<[u8; 12]>()),
    });
    if sub != client_id {
        claims["username"] = json!(sub);
        claims["preferred_username"] = json!(sub);
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            claims[k] = v;
        }
    }
    if *inner.jwt_access_tokens.lock().unwrap() {
        inner.sign(&claims, None, false)
    } else {
        let token = hex::encode(rand::random::<[u8; 24]>());
        inner.opaque.lock().unwrap().insert(token.clone(), claims);
        token
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn unavailable() -> Response {
    oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the identity provider is down",
    )
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Response {
    if *inner.down.lock().unwrap() {
        return unavailable();
    }
    inner.stats.discovery_calls.fetch_add(1, Ordering::SeqCst);
    let i = &inner.issuer;
    Json(json!({
        "issuer": i,
        "token_endpoint": format!("{i}/token"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "authorization_endpoint": format!("{i}/authorize"),
        "end_session_endpoint": format!("{i}/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "grant_types_supported": ["authorization_code", "password", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "response_modes_supported": ["query", "form_post"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["public"],
    }))
    .into_response()
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    if *inner.down.lock().unwrap() {
        return unavailable();
    }
    inner.stats.jwks_calls.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = inner
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|k| k.public_jwk.clone())
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

/// Authenticates the client of a token or introspection request; returns its id.
fn client_auth(
    inner: &Inner,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    endpoint: &str,
) -> Result<String, Response> {
    let invalid = |why: &str| Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why));
    let clients = inner.clients.lock().unwrap().clone();
    let record =
        |method: &str| *inner.stats.last_client_auth.lock().unwrap() = Some(method.to_string());
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return invalid("malformed basic credentials");
        };
        let id = url::form_urlencoded::parse(format!("a={id}").as_bytes())
            .next()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let secret = url::form_urlencoded::parse(format!("a={secret}").as_bytes())
            .next()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        return match clients.get(&id) {
            Some(c) if c.secret.as_deref() == Some(secret.as_str()) => {
                record("client_secret_basic");
                Ok(id)
            }
            _ => invalid("wrong client id or secret"),
        };
    }
    if let Some(assertion) = form.get("client_assertion") {
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed assertion",
            )
        })?;
        let unverified: Value = {
            let payload = assertion.split('.').nth(1).unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null)
        };
        let id = unverified["iss"].as_str().unwrap_or_default().to_string();
        let Some(c) = clients.get(&id) else {
            return invalid("unknown client in assertion");
        };
        let (key, method) = match header.alg {
            Algorithm::HS256 => match &c.secret {
                Some(s) => (DecodingKey::from_secret(s.as_bytes()), "client_secret_jwt"),
                None => return invalid("client has no secret"),
            },
            _ => match c
                .jwk
                .as_ref()
                .and_then(|j| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(j.clone()).ok())
                .and_then(|j| DecodingKey::from_jwk(&j).ok())
            {
                Some(k) => (k, "private_key_jwt"),
                None => return invalid("client has no registered key"),
            },
        };
        let mut v = Validation::new(header.alg);
        v.set_audience(&[endpoint, inner.issuer.as_str()]);
        v.set_issuer(&[id.as_str()]);
        v.sub = Some(id.clone());
        return match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
            Ok(_) => {
                record(method);
                Ok(id)
            }
            Err(e) => invalid(&format!("assertion rejected: {e}")),
        };
    }
    if let Some(id) = form.get("client_id") {
        let Some(c) = clients.get(id) else {
            return invalid("unknown client");
        };
        return match (form.get("client_secret"), &c.secret) {
            (Some(given), Some(s)) if given == s => {
                record("client_secret_post");
                Ok(id.clone())
            }
            (None, None) => {
                record("none");
                Ok(id.clone())
            }
            _ => invalid("wrong client id or secret"),
        };
    }
    invalid("client authentication required")
}

async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if *inner.down.lock().unwrap() {
        return unavailable();
    }
    inner.stats.token_calls.fetch_add(1, Ordering::SeqCst);
    let endpoint = format!("{}/token", inner.issuer);
    let client_id = match client_auth(&inner, &headers, &form, &endpoint) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "openid".into());
    let sub = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let (Some(u), Some(p)) = (form.get("username"), form.get("password")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                );
            };
            if inner.users.get(u) != Some(p) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "wrong username or password",
                );
            }
            u.clone()
        }
        Some("authorization_code") => return authorize::exchange(&inner, &client_id, &form),
        Some("refresh_token") => return authorize::refresh(&inner, &client_id, &form),
        Some("client_credentials") => {
            if inner
                .clients
                .lock()
                .unwrap()
                .get(&client_id)
                .and_then(|c| c.secret.clone())
                .is_none()
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "public clients cannot use client_credentials",
                );
            }
            client_id.clone()
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use password or client_credentials",
            )
        }
    };
    let access_token = issue(&inner, &sub, &client_id, &scope, json!({}));
    let mut body = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "scope": scope});
    if scope.split_whitespace().any(|s| s == "openid") {
        let now = unix_now();
        let id_claims = json!({"iss": inner.issuer, "sub": sub, "aud": client_id, "iat": now, "exp": now + TOKEN_LIFETIME});
        body["id_token"] = json!(inner.sign(&id_claims, None, false));
    }
    Json(body).into_response()
}

/// The claims of a token this provider issued and still considers active.
fn active_claims(inner: &Inner, token: &str) -> Option<Value> {
    if inner.revoked.lock().unwrap().contains(token) {
        return None;
    }
    if let Some(c) = inner.opaque.lock().unwrap().get(token) {
        return (c["exp"].as_i64().unwrap_or(0) > unix_now()).then(|| c.clone());
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    let keys = inner.keys.lock().unwrap();
    let key = keys.iter().find(|k| Some(&k.kid) == header.kid.as_ref())?;
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_aud = false;
    v.set_issuer(&[inner.issuer.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
        .ok()
        .map(|d| d.claims)
}

async fn introspect(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if *inner.down.lock().unwrap() {
        return unavailable();
    }
    inner
        .stats
        .introspection_calls
        .fetch_add(1, Ordering::SeqCst);
    let endpoint = format!("{}/introspect", inner.issuer);
    let client_id = match client_auth(&inner, &headers, &form, &endpoint) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let token = form.get("token").cloned().unwrap_or_default();
    let result = match active_claims(&inner, &token) {
        Some(mut claims) => {
            claims["active"] = json!(true);
            claims["token_type"] = json!("Bearer");
            claims
        }
        None => json!({"active": false}),
    };
    let wants_jwt = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/token-introspection+jwt"));
    if !wants_jwt {
        return Json(result).into_response();
    }
    // RFC 9701: the result wrapped in a JWT signed by the issuer and addressed to the calling client.
    let mut claims = json!({"iss": inner.issuer, "aud": client_id, "iat": unix_now(), "token_introspection": result});
    if let Value::Object(overrides) = &*inner.envelope_overrides.lock().unwrap() {
        let envelope = claims.as_object_mut().expect("an object");
        for (k, v) in overrides {
            match v {
                Value::Null => envelope.remove(k),
                v => envelope.insert(k.clone(), v.clone()),
            };
        }
    }
    let forge = *inner.forge_introspection.lock().unwrap();
    let jwt = inner.sign(&claims, Some("token-introspection+jwt"), forge);
    (
        [("content-type", "application/token-introspection+jwt")],
        jwt,
    )
        .into_response()
}

async fn revoke(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let endpoint = format!("{}/revoke", inner.issuer);
    if let Err(r) = client_auth(&inner, &headers, &form, &endpoint) {
        return r;
    }
    if let Some(t) = form.get("token") {
        inner.revoked.lock().unwrap().insert(t.clone());
        inner.stats.revocations.fetch_add(1, Ordering::SeqCst);
    }
    StatusCode::OK.into_response()
}
