//! The console's way to the Admin API: requests to its router in process, with the admin token, so the
//! console gets exactly the validation, answers and logging any other client gets.

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The Admin API's answer to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON body; `Null` for an empty one (204), a string for one that is not JSON.
    pub body: Value,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// Kong's `message`, or the status's reason.
    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "the Admin API answered {}",
                    self.status.canonical_reason().unwrap_or("an error")
                )
            })
    }
}

/// Calls the Admin API router.
#[derive(Clone)]
pub struct AdminClient {
    router: Router,
    token: Option<String>,
}

impl AdminClient {
    /// A client of `router` presenting `token` when there is one.
    pub fn new(router: Router, token: Option<String>) -> AdminClient {
        AdminClient { router, token }
    }

    /// `GET path` (with its query).
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// Every element of a paged list (`data` across `offset`s).
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, Answer> {
        let mut out = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut next = format!("{path}{separator}size=1000");
        loop {
            let answer = self.get(&next).await;
            if !answer.ok() {
                return Err(answer);
            }
            if let Some(data) = answer.body["data"].as_array() {
                out.extend(data.iter().cloned());
            }
            match answer.body["offset"].as_str() {
                Some(offset) if !offset.is_empty() => {
                    next = format!(
                        "{path}{separator}size=1000&offset={}",
                        percent_encoding::utf8_percent_encode(
                            offset,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    );
                }
                _ => return Ok(out),
            }
        }
    }

    /// A request with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let (content_type, bytes) = match body {
            Some(v) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            ),
            None => (None, Bytes::new()),
        };
        self.send(method, path, content_type, bytes).await
    }

    /// A request whose body is `bytes` of `content_type` (a YAML document).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let request = match request.body(Body::from(bytes)) {
            Ok(r) => r,
            Err(e) => return failure(format!("cannot build the request to {path}: {e}")),
        };
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(b) => b,
            Err(e) => return failure(format!("cannot read the answer of {path}: {e}")),
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status, body }
    }
}

fn failure(message: String) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({ "message": message }),
    }
}
