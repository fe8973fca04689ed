//! The authorization code flow of the development identity provider (RFC 6749 4.1, PKCE per RFC 7636,
//! OpenID Connect Core 3.1): a login form at the authorization endpoint, one-time codes bound to the
//! client, its redirect URI, the nonce and the PKCE challenge, and an end-session endpoint.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::unix_now;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{issue, oauth_error, Inner, TOKEN_LIFETIME};

/// How long a code may wait for its exchange.
const CODE_LIFETIME: i64 = 60;

/// What a code stands for until it is exchanged.
pub(super) struct Grant {
    client_id: String,
    redirect_uri: String,
    sub: String,
    scope: String,
    nonce: Option<String>,
    challenge: Option<String>,
    expires_at: i64,
}

/// What a refresh token renews.
pub(super) struct Renewable {
    client_id: String,
    sub: String,
    scope: String,
}

/// A new refresh token for `sub`'s grant to `client_id`.
fn new_refresh_token(inner: &Inner, client_id: &str, sub: &str, scope: &str) -> String {
    let token = hex::encode(rand::random::<[u8; 24]>());
    inner.refresh.lock().unwrap().insert(
        token.clone(),
        Renewable {
            client_id: client_id.into(),
            sub: sub.into(),
            scope: scope.into(),
        },
    );
    token
}

fn expires_in(inner: &Inner) -> i64 {
    inner.expires_in.lock().unwrap().unwrap_or(TOKEN_LIFETIME)
}

/// Escapes text for an HTML attribute or element.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The parameters of an authorization request, carried through the login form.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

fn login_page(params: &HashMap<String, String>, error: Option<&str>) -> Response {
    let hidden: String = CARRIED
        .iter()
        .filter_map(|k| params.get(*k).map(|v| (k, v)))
        .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v)))
        .collect();
    let error = error
        .map(|e| format!(r#"<p id="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>{error}
<form method="post" action="authorize">{hidden}
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>"#
    ))
    .into_response()
}

/// Checks the client and its redirect URI; an error page when either is wrong (never a redirect to an
/// unchecked URI).
fn check_client(inner: &Inner, params: &HashMap<String, String>) -> Result<(), Response> {
    let client = params
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    if !inner.clients.lock().unwrap().contains_key(client) {
        return Err((StatusCode::BAD_REQUEST, Html("unknown client_id")).into_response());
    }
    match params.get("redirect_uri").map(|u| url::Url::parse(u)) {
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err((
            StatusCode::BAD_REQUEST,
            Html("redirect_uri must be an http(s) URL"),
        )
            .into_response()),
    }
}

/// Sends the authorization response to the client's redirect URI (`query`, or `form_post`: a page whose
/// form posts the parameters, RFC OAuth 2.0 Form Post Response Mode).
fn respond(params: &HashMap<String, String>, answer: &[(&str, &str)]) -> Response {
    let redirect_uri = &params["redirect_uri"];
    let mut all: Vec<(&str, &str)> = answer.to_vec();
    if let Some(state) = params.get("state") {
        all.push(("state", state));
    }
    if params.get("response_mode").map(String::as_str) == Some("form_post") {
        let fields: String = all
            .iter()
            .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v)))
            .collect();
        return Html(format!(
            r#"<!doctype html><html><body><form id="response" method="post" action="{}">{fields}<button type="submit">Continue</button></form></body></html>"#,
            esc(redirect_uri)
        ))
        .into_response();
    }
    let mut url = url::Url::parse(redirect_uri).expect("checked before");
    url.query_pairs_mut().extend_pairs(all);
    Redirect::to(url.as_str()).into_response()
}

/// `GET /authorize`: the login form.
pub(super) async fn form(
    State(inner): State<Arc<Inner>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_client(&inner, &params) {
        return r;
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return respond(&params, &[("error", "unsupported_response_type")]);
    }
    login_page(&params, None)
}

/// `POST /authorize`: the credentials; a code for the client when they are right.
pub(super) async fn submit(
    State(inner): State<Arc<Inner>>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_client(&inner, &params) {
        return r;
    }
    let (user, pass) = (
        params.get("username").cloned().unwrap_or_default(),
        params.get("password").cloned().unwrap_or_default(),
    );
    if inner.users.get(&user) != Some(&pass) {
        return login_page(&params, Some("Wrong username or password."));
    }
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256")) => Some(c.clone()),
        (Some(_), _) => {
            return respond(
                &params,
                &[
                    ("error", "invalid_request"),
                    ("error_description", "only S256 is supported"),
                ],
            )
        }
        (None, _) => None,
    };
    let code = hex::encode(rand::random::<[u8; 16]>());
    inner.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id: params["client_id"].clone(),
            redirect_uri: params["redirect_uri"].clone(),
            sub: user,
            scope: params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| "openid".into()),
            nonce: params.get("nonce").cloned(),
            challenge,
            expires_at: unix_now() + CODE_LIFETIME,
        },
    );
    inner.sessions.fetch_add(1, Ordering::SeqCst);
    respond(&params, &[("code", &code)])
}

/// The left half of the SHA-256 of `token`, as `at_hash` and `c_hash` carry it for ES256.
pub fn half_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(token.as_bytes())[..16])
}

/// The token endpoint's `authorization_code` grant for the authenticated `client_id`.
pub(super) fn exchange(inner: &Inner, client_id: &str, form: &HashMap<String, String>) -> Response {
    let bad = |error: &str, why: &str| oauth_error(StatusCode::BAD_REQUEST, error, why);
    let code = form.get("code").cloned().unwrap_or_default();
    // A code is used once, whatever the outcome.
    let Some(grant) = inner.codes.lock().unwrap().remove(&code) else {
        return bad("invalid_grant", "unknown or used code");
    };
    if grant.expires_at < unix_now() {
        return bad("invalid_grant", "expired code");
    }
    if grant.client_id != client_id {
        return bad("invalid_grant", "code issued to another client");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return bad(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = form
            .get("code_verifier")
            .map(String::as_str)
            .unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return bad(
                "invalid_grant",
                "code_verifier does not match the challenge",
            );
        }
    }
    let access_token = issue(inner, &grant.sub, client_id, &grant.scope, json!({}));
    let now = unix_now();
    let mut id_claims = json!({"iss": inner.issuer, "sub": grant.sub, "aud": client_id, "azp": client_id,
        "iat": now, "exp": now + TOKEN_LIFETIME, "auth_time": now, "sid": hex::encode(rand::random::<[u8; 8]>()),
        "preferred_username": grant.sub, "at_hash": half_hash(&access_token), "c_hash": half_hash(&code)});
    if let Some(nonce) = grant.nonce {
        id_claims["nonce"] = Value::String(nonce);
    }
    if let Value::Object(o) = &*inner.id_token_overrides.lock().unwrap() {
        for (k, v) in o {
            id_claims[k] = v.clone();
        }
    }
    if let Some(sid) = id_claims["sid"].as_str() {
        let signed_in = (sid.to_string(), grant.sub.clone(), client_id.to_string());
        inner.signed_in.lock().unwrap().push(signed_in);
    }
    let refresh_token = new_refresh_token(inner, client_id, &grant.sub, &grant.scope);
    axum::Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in(inner),
        "scope": grant.scope, "id_token": inner.sign(&id_claims, None, false),
        "refresh_token": refresh_token,
    }))
    .into_response()
}

/// The token endpoint's `refresh_token` grant: a new access token and a new refresh token (the used one
/// is spent, RFC 9700 rotation).
pub(super) fn refresh(inner: &Inner, client_id: &str, form: &HashMap<String, String>) -> Response {
    let given = form.get("refresh_token").cloned().unwrap_or_default();
    let Some(grant) = inner.refresh.lock().unwrap().remove(&given) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used refresh token",
        );
    };
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token of another client",
        );
    }
    inner.stats.refresh_calls.fetch_add(1, Ordering::SeqCst);
    let access_token = issue(inner, &grant.sub, client_id, &grant.scope, json!({}));
    let refresh_token = new_refresh_token(inner, client_id, &grant.sub, &grant.scope);
    axum::Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in(inner),
        "scope": grant.scope, "refresh_token": refresh_token,
    }))
    .into_response()
}

/// `GET /logout`: the end-session endpoint (RP-initiated logout); back to `post_logout_redirect_uri`.
pub(super) async fn end_session(
    State(inner): State<Arc<Inner>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    inner.stats.end_session_calls.fetch_add(1, Ordering::SeqCst);
    *inner.stats.last_id_token_hint.lock().unwrap() = params.get("id_token_hint").cloned();
    match params.get("post_logout_redirect_uri") {
        Some(u) if url::Url::parse(u).is_ok() => Redirect::to(u).into_response(),
        _ => Html("<!doctype html><p>Signed out.</p>").into_response(),
    }
}
