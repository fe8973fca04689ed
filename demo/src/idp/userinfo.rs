//! The UserInfo endpoint (OpenID Connect Core 5.3): the claims about the person an active access token
//! names, for the bearer token sent in `Authorization`; 401 with `invalid_token` (RFC 6750) otherwise. A
//! client whose `Accept` asks for `application/jwt` gets them signed (Core 5.3.2: with `iss`, and `aud`
//! the client the token was issued to).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{active_claims, unavailable, Inner};

/// Claims of a token that describe the grant, not the person: left out of the answer.
const GRANT_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "client_id",
    "scope",
    "iat",
    "nbf",
    "exp",
    "jti",
];

pub(super) async fn userinfo(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if *inner.down.lock().unwrap() {
        return unavailable();
    }
    inner.stats.userinfo_calls.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(Value::Object(claims)) = active_claims(&inner, token) else {
        return refused();
    };
    let client = claims.get("client_id").cloned().unwrap_or(Value::Null);
    let mut person: Map<String, Value> = claims
        .into_iter()
        .filter(|(k, _)| !GRANT_CLAIMS.contains(&k.as_str()))
        .collect();
    if let Some(Value::Object(extra)) = inner
        .userinfo_extra
        .lock()
        .unwrap()
        .get(&person["sub"].to_string())
    {
        person.extend(extra.clone());
    }
    let wants_jwt = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/jwt"));
    if wants_jwt {
        person.insert("iss".into(), json!(inner.issuer));
        person.insert("aud".into(), client);
        let signed = inner.sign(&Value::Object(person), None, false);
        return ([("content-type", "application/jwt")], signed).into_response();
    }
    Json(Value::Object(person)).into_response()
}

/// The answer to a token that is not active.
fn refused() -> Response {
    let challenge = "Bearer error=\"invalid_token\"";
    let body =
        json!({"error": "invalid_token", "error_description": "the access token is not active"});
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", challenge)],
        Json(body),
    )
        .into_response()
}
