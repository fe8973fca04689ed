//! A small in-process identity provider for tests: an RFC 7662 introspection endpoint with a token table,
//! a call counter, the last request it received, and switchable failure modes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// How the identity provider answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Answers from the token table.
    Normal,
    /// Answers this HTTP status with an error body.
    Status(u16),
    /// Answers 200 with a body that is not JSON.
    NotJson,
    /// Waits this long before answering normally.
    Slow(Duration),
}

/// One introspection request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    tokens: Mutex<HashMap<String, Value>>,
    calls: AtomicU64,
    mode: Mutex<Option<Mode>>,
    last: Mutex<Option<Received>>,
    authorization: String,
}

/// The running test identity provider.
#[derive(Clone)]
pub struct TestIdp {
    pub url: String,
    /// The `Authorization` value the introspection endpoint requires.
    pub authorization: String,
    inner: Arc<Inner>,
}

impl TestIdp {
    /// Starts on an ephemeral port.
    pub async fn start() -> TestIdp {
        let authorization = "Basic Z2F0ZXdheTpnYXRld2F5LXNlY3JldA==".to_string();
        let inner = Arc::new(Inner {
            authorization: authorization.clone(),
            ..Default::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/introspect", post(introspect))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIdp {
            url,
            authorization,
            inner,
        }
    }

    /// The introspection endpoint URL.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.url)
    }

    /// Registers an active token with these claims (`active: true` is added).
    pub fn add_token(&self, token: &str, mut claims: Value) {
        claims["active"] = json!(true);
        self.inner
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_string(), claims);
    }

    /// Revokes a token (it introspects as inactive from now on).
    pub fn revoke(&self, token: &str) {
        self.inner.tokens.lock().unwrap().remove(token);
    }

    /// Introspection calls received so far.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Switches the failure mode.
    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = Some(mode);
    }

    /// The last introspection request.
    pub fn last(&self) -> Option<Received> {
        self.inner.last.lock().unwrap().clone()
    }
}

async fn introspect(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    inner.calls.fetch_add(1, Ordering::SeqCst);
    let hs = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    *inner.last.lock().unwrap() = Some(Received {
        headers: hs,
        form: form.clone(),
    });
    let mode = inner.mode.lock().unwrap().clone().unwrap_or(Mode::Normal);
    match mode {
        Mode::Status(s) => {
            return (
                StatusCode::from_u16(s).unwrap(),
                "{\"error\":\"server_error\"}",
            )
                .into_response()
        }
        Mode::NotJson => return (StatusCode::OK, "<html>oops</html>").into_response(),
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Normal => {}
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(inner.authorization.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = inner
        .tokens
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}
