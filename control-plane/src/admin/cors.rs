//! `OPTIONS` and CORS on the Admin API, as Kong answers them: `OPTIONS` on a path is 204 with `Allow`
//! (and `Access-Control-Allow-Methods`) listing the methods the path serves, and
//! `Access-Control-Allow-Headers` echoing the preflight's request headers (`Content-Type` otherwise).
//! `Access-Control-Allow-Origin` follows `--admin-cors-origin`: an origin (Kong's `admin_gui_url`) is
//! always the one allowed; `*` allows any, echoing the request's `Origin` as Kong does by default;
//! unset, no origin is allowed, so browsers keep other sites' pages away from the Admin API.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Ctx;

/// Which browser origins may call the Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    /// Any origin: the request's `Origin` is echoed, `*` without one (Kong's default).
    Any,
    /// This origin only (`https://admin.example.com`).
    Only(HeaderValue),
}

impl std::str::FromStr for CorsOrigin {
    type Err = String;

    /// `*`, or a URL whose origin (scheme, host and port) is taken.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(CorsOrigin::Any);
        }
        let url = url::Url::parse(s).map_err(|e| format!("'{s}' is not '*' or a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("'{s}' is not an http or https URL"));
        }
        let origin = url.origin().ascii_serialization();
        HeaderValue::from_str(&origin)
            .map(CorsOrigin::Only)
            .map_err(|e| format!("'{s}': {e}"))
    }
}

/// Marks the request the `OPTIONS` answer sends through the router to learn a path's methods; it is
/// answered without running a handler and passes the admin token check.
#[derive(Debug, Clone, Copy)]
pub struct MethodProbe;

/// A method no route serves: the router answers it 405 with `Allow`, or 404 for an unknown path. It is
/// one the router knows (an extension method gets no `Allow`).
const PROBE_METHOD: Method = Method::TRACE;

fn allow_origin(origin: Option<&CorsOrigin>, request: &HeaderMap) -> Option<HeaderValue> {
    match origin? {
        CorsOrigin::Only(o) => Some(o.clone()),
        CorsOrigin::Any => Some(
            request
                .get(header::ORIGIN)
                .cloned()
                .unwrap_or(HeaderValue::from_static("*")),
        ),
    }
}

/// Answers `OPTIONS` and adds the CORS origin header to every answer.
pub async fn cors(State(ctx): Ctx, req: Request, next: Next) -> Response {
    let origin = allow_origin(ctx.cors_origin.as_ref(), req.headers());
    let mut response = if req.method() == Method::OPTIONS {
        options(req, next).await
    } else {
        next.run(req).await
    };
    if let Some(o) = origin {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    response
}

async fn options(req: Request, next: Next) -> Response {
    let requested = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("Content-Type"));
    let (mut parts, body) = req.into_parts();
    parts.method = PROBE_METHOD;
    parts.extensions.insert(MethodProbe);
    let probe = next.run(Request::from_parts(parts, body)).await;
    if probe.status() != StatusCode::METHOD_NOT_ALLOWED {
        // An unknown path: the router's own 404.
        return probe;
    }
    let served = probe
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut methods: Vec<&str> = served
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .chain(["HEAD", "OPTIONS"])
        .collect();
    methods.sort_unstable();
    methods.dedup();
    let allow = HeaderValue::from_str(&methods.join(", ")).expect("method tokens");
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, allow.clone()),
            (header::ACCESS_CONTROL_ALLOW_METHODS, allow),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, requested),
        ],
    )
        .into_response()
}
