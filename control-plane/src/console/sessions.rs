//! Sign-in sessions of the console: an unguessable cookie value mapped, in this control plane's memory,
//! to the session's CSRF token and lifetimes; and the checks every state-changing request passes.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict` and `Path=/` (and `Secure` when the request came over
//! https through a proxy that says so). A session ends after [`IDLE`] without a request, after
//! [`LIFETIME`] in any case, or at sign-out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::ConsoleCtx;

/// The cookie's name.
pub const COOKIE: &str = "portcullis_console";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(3600);
/// A session ends this long after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; the oldest ends first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in browser, as handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token every form of this session carries in its `csrf` field.
    pub csrf: String,
}

struct Entry {
    csrf: String,
    started: Instant,
    used: Instant,
}

/// The sessions of this control plane.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// Starts a session; answers the cookie value.
    pub fn start(&self) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let entry = Entry {
            csrf: hex::encode(rand::random::<[u8; 32]>()),
            started: now,
            used: now,
        };
        let mut inner = self.inner.lock().expect("console sessions lock");
        inner.retain(|_, e| alive(e, now));
        if inner.len() >= MAX_SESSIONS {
            if let Some(oldest) = inner
                .iter()
                .min_by_key(|(_, e)| e.started)
                .map(|(k, _)| k.clone())
            {
                inner.remove(&oldest);
            }
        }
        inner.insert(id.clone(), entry);
        id
    }

    /// The live session of a cookie value, its idle time restarted.
    pub fn find(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("console sessions lock");
        let entry = inner.get_mut(id)?;
        if !alive(entry, now) {
            inner.remove(id);
            return None;
        }
        entry.used = now;
        Some(Session {
            csrf: entry.csrf.clone(),
        })
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.inner.lock().expect("console sessions lock").remove(id);
    }
}

fn alive(e: &Entry, now: Instant) -> bool {
    now.duration_since(e.used) < IDLE && now.duration_since(e.started) < LIFETIME
}

/// The console cookie's value in a request.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// Whether the browser reached the console over https (directly or through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that carries `id`, or ends the cookie when `id` is empty.
pub fn set_cookie(headers: &HeaderMap, id: &str) -> String {
    let mut c = cookie::Cookie::build((COOKIE, id.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(over_https(headers));
    if id.is_empty() {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    c.build().to_string()
}

/// Lets a request through with its [`Session`] as an extension, or sends the browser to sign in.
pub async fn require_session(
    State(ctx): State<Arc<ConsoleCtx>>,
    mut req: Request,
    next: Next,
) -> Response {
    match cookie_value(req.headers()).and_then(|id| ctx.sessions.find(&id)) {
        Some(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        None if req.method() == Method::GET || req.method() == Method::HEAD => {
            let wanted = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let query = serde_urlencoded::to_string([("next", wanted)]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        }
        None => super::errors::page(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "This change needs a console session: sign in again and repeat it.",
        ),
    }
}

/// Refuses a state-changing request that a page of another origin sent: its `Origin` (or, without one,
/// its `Referer`) must name the host the request was sent to.
pub async fn same_origin_writes(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    if !same_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "console request refused: sent from another origin");
        return super::errors::page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request was sent from a page of another origin (or named none), so it was not carried out.",
        );
    }
    next.run(req).await
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else {
        return false;
    };
    let Ok(url) = url::Url::parse(from) else {
        return false;
    };
    let origin_host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    matches!(url.scheme(), "http" | "https") && origin_host.eq_ignore_ascii_case(host)
}

/// Whether a submitted form carries this session's CSRF token (compared in constant time).
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    let Some(p) = presented else {
        return false;
    };
    crate::admin::constant_time_eq(p.as_bytes(), session.csrf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_name_the_host() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8002"),
            ("origin", "http://127.0.0.1:8002")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8002"),
            ("origin", "http://127.0.0.1:9999")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8002"),
            ("origin", "null")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "console.example"),
            ("referer", "https://console.example/services")
        ])));
        assert!(!same_origin(&headers(&[("host", "console.example")])));
    }

    #[test]
    fn sessions_start_find_and_end() {
        let s = Sessions::default();
        let id = s.start();
        let found = s.find(&id).expect("live session");
        assert_eq!(found.csrf.len(), 64);
        assert!(csrf_ok(&found, Some(&found.csrf)));
        assert!(!csrf_ok(&found, Some("0")));
        assert!(!csrf_ok(&found, None));
        s.end(&id);
        assert!(s.find(&id).is_none());
        assert!(s.find("not-a-session").is_none());
    }

    #[test]
    fn the_cookie_is_strict_and_http_only() {
        let c = set_cookie(&HeaderMap::new(), "abc");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        let c = set_cookie(&headers(&[("x-forwarded-proto", "https")]), "abc");
        assert!(c.contains("Secure"));
        let cleared = set_cookie(&HeaderMap::new(), "");
        assert!(cleared.contains("Max-Age=0"));
    }
}
