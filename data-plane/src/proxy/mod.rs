//! The proxy: route, run plugins, forward upstream with pooled connections, stream bodies both ways, and
//! answer errors the way Kong does.
//!
//! - [`serve`]: the accept loop and connection handling; [`handle`]: one request, its request id and
//!   metrics; [`ProxyCtx`]: what a request may touch.
//! - `h1_server`: plain HTTP/1.x client connections served in their own task, handed to the hyper
//!   server at the first request with a body, an upgrade or an HTTP/2 preface.
//! - [`pipeline`]: route → plugins → forward → plugins.
//! - [`forward`]: upstream path and the headers forwarded upstream; [`stamp`]: the fields every response
//!   gets.
//! - `send`: the upstream exchange, direct or balanced over an Upstream's Targets.
//! - `h1`: bodiless requests to plain-HTTP upstreams, exchanged in the request's own task.
//! - [`upgrade`]: WebSocket and other protocol upgrades, tunnelled once the upstream switches.
//! - [`upstream`]: pooled upstream clients and connection retries; [`upstream_tls`]: a Service's client
//!   certificate, trusted CAs and chain depth.
//! - [`error`]: [`ProxyError`], everything the proxy answers itself.
//! - [`workers`]: thread-per-core serving (`--workers`).

pub mod error;
pub mod forward;
pub mod framing;
pub mod grpc;
mod h1;
mod h1_server;
mod header_maps;
pub mod parsers;
pub mod pipeline;
mod send;
pub mod stamp;
pub mod upgrade;
pub mod upstream;
pub mod upstream_tls;
pub mod workers;

use std::convert::Infallible;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::header::HeaderName;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use shared::accept::AcceptBackoff;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

pub use error::{error, ProxyError};
pub use pipeline::{Connection, Scheme};
pub use upstream::UpstreamClients;

use crate::body::{ProxyBody, RequestBody};
use crate::metrics::Metrics;
use crate::plugins::RequestId;
use crate::runtime::RuntimeConfig;
use stamp::Stamp;

/// What a request needs from the node, and nothing else: the current configuration, the metrics, the
/// upstream pools and the request-id header. The configuration cell and the metrics are shared with
/// the rest of the node; the upstream pools belong to the proxy.
pub struct ProxyCtx {
    config: Arc<ArcSwapOption<RuntimeConfig>>,
    metrics: Arc<Metrics>,
    upstreams: UpstreamClients,
    request_id_header: HeaderName,
}

impl ProxyCtx {
    /// A context reading `config`, counting into `metrics` and connecting through `upstreams`.
    pub fn new(
        config: Arc<ArcSwapOption<RuntimeConfig>>,
        metrics: Arc<Metrics>,
        upstreams: UpstreamClients,
        request_id_header: HeaderName,
    ) -> ProxyCtx {
        ProxyCtx {
            config,
            metrics,
            upstreams,
            request_id_header,
        }
    }
}

/// The hyper server's service for a connection: each request through [`handle`].
fn hyper_service(
    ctx: Arc<ProxyCtx>,
    downstream: Connection,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (ctx, downstream) = (ctx.clone(), downstream.clone());
        async move {
            if let Err(refusal) = framing::check_parsed(&mut req) {
                return Ok(refused(&ctx, &downstream, refusal, req.version()));
            }
            let (mut resp, stamp) =
                handle(&ctx, req.map(RequestBody::Streaming), &downstream).await;
            stamp.apply(resp.headers_mut());
            Ok(resp)
        }
    })
}

/// The answer to a request head that hyper's server parsed and the framing rules refuse: its status,
/// and (HTTP/1.x) the end of the connection.
fn refused(
    ctx: &ProxyCtx,
    downstream: &Connection,
    refusal: framing::Refusal,
    version: http::Version,
) -> Response<ProxyBody> {
    ctx.metrics
        .client_errors
        .add(&[("kind", refusal.label())], 1);
    debug!(peer = %downstream.peer, reason = refusal.reason(), "request head refused");
    let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
    *resp.status_mut() = refusal.status();
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Handles one downstream request: the response, and the fields it is sent with (the request id under
/// the configured header on every response, whoever answered).
pub async fn handle(
    ctx: &ProxyCtx,
    req: Request<RequestBody>,
    conn: &Connection,
) -> (Response<ProxyBody>, Stamp) {
    let started = Instant::now();
    let rid = RequestId::from_client(req.headers().get(&ctx.request_id_header));
    let Some(rt) = ctx.config.load_full() else {
        let resp = ProxyError::NotConfigured.response();
        return (
            resp,
            Stamp::new((&ctx.request_id_header, rid.header_value()), None),
        );
    };
    let grpc = grpc::is_grpc(req.headers());
    let outcome = pipeline::run(ctx, &rt, req, conn, &rid, started).await;
    let (resp, upstream) = match outcome.result {
        Ok(answered) => answered,
        Err(e) => (e.response(), None),
    };
    // What Portcullis answered itself (no upstream exchange), a gRPC client gets in gRPC's shape.
    let resp = match (grpc, upstream) {
        (true, None) => grpc::refusal(resp).await,
        _ => resp,
    };
    let series = outcome.measured.series.unwrap_or_else(|| {
        ctx.metrics
            .requests
            .get(uuid::Uuid::nil(), None, || (String::new(), String::new()))
    });
    let took = outcome.measured.took.unwrap_or_else(|| started.elapsed());
    series.record(resp.status().as_u16(), took, upstream);
    let stamp = Stamp::new(
        (&ctx.request_id_header, rid.header_value()),
        outcome.measured.latencies,
    );
    (resp, stamp)
}

/// Counts a failed `accept()` and, when the process is out of descriptors or memory, pauses the accept loop
/// (exponentially, up to 1 s) instead of spinning; connections already accepted keep being served.
pub async fn pause_after_accept_error(
    metrics: &crate::metrics::Metrics,
    listener: &'static str,
    backoff: &mut AcceptBackoff,
    error: &std::io::Error,
) {
    let (class, pause) = backoff.failed(error);
    metrics
        .accept_errors
        .add(&[("listener", listener), ("kind", class.label())], 1);
    if pause.is_zero() {
        debug!(%error, listener, "accept failed");
        return;
    }
    if backoff.first_of_run() {
        warn!(%error, listener, kind = class.label(), "cannot accept connections; pausing accepts until resources free up");
    }
    tokio::time::sleep(pause).await;
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy listening socket: plain HTTP, or TLS terminated with `tls`.
pub struct ProxyListener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

type ConnBuilder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// Serves one accepted connection until the client or a graceful shutdown ends it: plain HTTP/1.x in the
/// connection's own task ([`h1_server`], which hands other requests to the hyper server); with TLS, the
/// handshake first (bounded by [`TLS_HANDSHAKE_TIMEOUT`]), then HTTP/1.1 or HTTP/2 by the hyper server.
async fn serve_connection(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    builder: ConnBuilder,
    watcher: hyper_util::server::graceful::Watcher,
    shutdown: watch::Receiver<bool>,
    ctx: Arc<ProxyCtx>,
    downstream: Connection,
) {
    let metrics = ctx.metrics.clone();
    metrics
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let served = match tls {
        None => {
            let hand_off = h1_server::HandOff { builder, watcher };
            h1_server::serve(tcp, ctx, downstream, hand_off, shutdown).await
        }
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let svc = hyper_service(ctx, downstream);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
                Ok(Err(e)) => {
                    metrics
                        .tls_handshake_errors
                        .add(&[("kind", "handshake")], 1);
                    debug!(error = %e, peer = %downstream.peer, "TLS handshake failed");
                    Ok(())
                }
                Err(_) => {
                    metrics.tls_handshake_errors.add(&[("kind", "timeout")], 1);
                    debug!(peer = %downstream.peer, "TLS handshake timed out");
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = served {
        debug!(error = %e, "connection ended with an error");
    }
    metrics
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Serves the proxy on `listener` until `shutdown` turns true, then finishes in-flight requests (bounded).
pub async fn serve(
    listener: ProxyListener,
    ctx: Arc<ProxyCtx>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let ProxyListener { tcp: listener, tls } = listener;
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(h1_server::HEAD_TIMEOUT);
    // WebSocket over HTTP/2 (RFC 8441).
    builder.http2().enable_connect_protocol();
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(c) => { backoff.accepted(); c }
                    Err(e) => {
                        pause_after_accept_error(&ctx.metrics, "proxy", &mut backoff, &e).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let downstream = Connection::new(peer, local_port, scheme);
                tokio::spawn(serve_connection(
                    tcp,
                    tls.clone(),
                    builder.clone(),
                    graceful.watcher(),
                    shutdown.clone(),
                    ctx.clone(),
                    downstream,
                ));
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish within the drain timeout");
    }
}
