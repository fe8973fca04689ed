//! The benchmark identity provider: a fast RFC 7662 endpoint that finds every token active (with an `exp`
//! an hour ahead) and counts calls, plus the development OIDC provider for JWT bearer runs.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use data_plane::unix_now;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    calls: AtomicU64,
    down: AtomicBool,
}

async fn handle(
    state: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let reply = |status: u16, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        Ok(r)
    };
    match path.as_str() {
        "/calls" => reply(
            200,
            json!({"calls": state.calls.load(Ordering::SeqCst)}).to_string(),
        ),
        "/down" => {
            state.down.store(true, Ordering::SeqCst);
            reply(200, "{}".into())
        }
        "/up" => {
            state.down.store(false, Ordering::SeqCst);
            reply(200, "{}".into())
        }
        _ => {
            let _ = req.into_body().collect().await;
            state.calls.fetch_add(1, Ordering::SeqCst);
            if state.down.load(Ordering::SeqCst) {
                return reply(500, "{\"error\":\"server_error\"}".into());
            }
            reply(200, json!({"active": true, "scope": "read", "client_id": "bench", "username": "bench", "exp": unix_now() + 3600}).to_string())
        }
    }
}

/// Serves until the process ends; prints the ports, the issuer and a JWT for the OIDC runs first.
pub async fn serve() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let oidc = demo::idp::DemoIdp::start(
        TcpListener::bind("127.0.0.1:0").await?,
        demo::idp::IdpSetup::default(),
    )
    .await;
    // Long-lived token so runs of any length stay valid.
    let jwt = oidc.sign(&json!({"iss": oidc.issuer, "sub": "bench", "scope": "read", "exp": unix_now() + 86_400, "iat": unix_now()}));
    println!(
        "{}",
        json!({"port": port, "issuer": oidc.issuer, "jwt": jwt})
    );
    let state = Arc::new(State::default());
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
