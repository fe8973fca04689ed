//! The proxy's listeners: the accept loop (with back-off when the process runs out of descriptors), TLS
//! handshakes, and each connection served by the in-task HTTP/1 server or hyper's.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use shared::accept::AcceptBackoff;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::ctx::{Connection, ProxyCtx};
use super::h1_server;
use super::handle::{hyper_service, ConnBuilder};
use crate::runtime::Scheme;

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
