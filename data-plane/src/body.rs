//! The body types of the proxy path: what responses carry, what a request carries while plugins look at
//! it, and the constructors for complete bodies and JSON answers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// Error type of bodies on the proxy path.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the proxy sends.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response with extra headers.
pub fn json_response(
    status: StatusCode,
    body: &Value,
    headers: &[(&str, String)],
) -> Response<ProxyBody> {
    let fields: Vec<(http::HeaderName, HeaderValue)> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    json_response_fields(status, body, &fields)
}

/// A JSON answer with `status`, `body` and the fields `fields`.
pub fn json_response_fields(
    status: StatusCode,
    body: &Value,
    fields: &[(http::HeaderName, HeaderValue)],
) -> Response<ProxyBody> {
    let mut resp = Response::new(full(serde_json::to_vec(body).expect("json serialises")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in fields {
        h.append(name.clone(), value.clone());
    }
    resp
}

/// The request body: still streaming from the client, or read whole by a plugin that needed it.
pub enum RequestBody {
    Streaming(hyper::body::Incoming),
    Buffered(Bytes),
    Empty,
}

/// A request body that broke on the client's side (malformed chunked framing, a connection cut short).
/// It travels inside the upstream client's error, so the failure is told apart from the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body is broken: {0}")]
pub struct ClientBodyError(#[source] hyper::Error);

/// A request body streaming from the client, its failures marked as the client's.
pub fn from_client(body: hyper::body::Incoming) -> ProxyBody {
    body.map_err(|e| Box::new(ClientBodyError(e)) as BoxError)
        .boxed_unsync()
}

/// Whether `error` or one of its causes is a [`ClientBodyError`].
pub fn is_client_body_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<ClientBodyError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
