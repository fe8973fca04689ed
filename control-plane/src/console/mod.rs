//! The operator console: server-rendered HTML pages on their own listener (`--manager-listen`), signed
//! in with the admin token.
//!
//! The console is a client of the Admin API: every read and every change is a request to the Admin API's
//! own router, in process, carrying the admin token ([`admin_client`]). It keeps no state of its own
//! beyond sign-in sessions, so turning it off loses nothing.
//!
//! Pages work without JavaScript; `assets/console.js` only refreshes the node table and asks before a
//! deletion. Every answer carries a strict Content-Security-Policy (scripts and styles from the console's
//! own origin only, nothing inline), `X-Frame-Options: DENY` and `Cache-Control: no-store`; every
//! state-changing request must come from the console's own origin and carry the session's CSRF token.

pub mod admin_client;
mod assets;
mod collections;
mod config_page;
mod entities;
mod entity_form;
mod errors;
mod form;
mod layout;
mod login;
mod operations;
mod overview;
mod schema_form;
pub mod sessions;
mod upstreams;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

pub use admin_client::AdminClient;
pub use sessions::Sessions;

/// Where the console listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerListen {
    Off,
    At(std::net::SocketAddr),
}

impl std::str::FromStr for ManagerListen {
    type Err = String;

    fn from_str(s: &str) -> Result<ManagerListen, String> {
        match s.trim() {
            "off" | "" => Ok(ManagerListen::Off),
            addr => addr.parse().map(ManagerListen::At).map_err(|_| {
                format!("expected an address such as 127.0.0.1:8002, or off; got '{addr}'")
            }),
        }
    }
}

/// What console handlers reach.
pub struct ConsoleCtx {
    /// The Admin API, called in process with the admin token.
    pub admin: AdminClient,
    /// The admin token a person signs in with; `None` when the Admin API requires none.
    pub admin_token: Option<String>,
    /// Signed-in browsers.
    pub sessions: Sessions,
}

/// Shared state of console handlers.
pub type Console = axum::extract::State<Arc<ConsoleCtx>>;

/// The policy every answer carries: nothing inline, nothing from another origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's router: sign-in pages and assets are open, everything else needs a session.
pub fn router(ctx: Arc<ConsoleCtx>) -> Router {
    let signed_in = Router::new()
        .merge(overview::routes())
        .merge(entities::routes())
        .merge(operations::routes())
        .merge(config_page::routes())
        .route("/logout", axum::routing::post(login::logout))
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            sessions::require_session,
        ));
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/assets/{name}", get(assets::serve))
        .merge(signed_in)
        .fallback(|| async { errors::not_found() })
        .layer(middleware::from_fn(sessions::same_origin_writes))
        .layer(middleware::from_fn(security_headers))
        .with_state(ctx)
}

/// Headers on every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
