//! The Admin API server's own counters, for the `server` block of `GET /status` in Kong's shape:
//! connections accepted and open (counted by the listener), requests served and in progress (counted by
//! a layer around the router).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::Ctx;

/// Counters of the Admin API server.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    closed: AtomicU64,
    requests: AtomicU64,
    finished: AtomicU64,
}

impl ServerStats {
    /// Kong's `server` block. A connection is `writing` while a request on it is handled and `waiting`
    /// otherwise; one still reading its request's head counts as waiting, so `reading` is 0.
    pub fn to_json(&self) -> Value {
        let accepted = self.accepted.load(Ordering::Relaxed);
        let active = accepted.saturating_sub(self.closed.load(Ordering::Relaxed));
        let requests = self.requests.load(Ordering::Relaxed);
        let writing = requests.saturating_sub(self.finished.load(Ordering::Relaxed));
        json!({
            "connections_accepted": accepted,
            "connections_handled": accepted,
            "connections_active": active,
            "connections_reading": 0,
            "connections_writing": writing.min(active),
            "connections_waiting": active.saturating_sub(writing),
            "total_requests": requests,
        })
    }
}

/// The Admin API listener, counting connections.
pub struct CountingListener {
    inner: TcpListener,
    stats: Arc<ServerStats>,
}

impl CountingListener {
    pub fn new(inner: TcpListener, stats: Arc<ServerStats>) -> Self {
        Self { inner, stats }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let stream = CountedStream {
            io,
            stats: self.stats.clone(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; counted as closed when dropped.
pub struct CountedStream {
    io: TcpStream,
    stats: Arc<ServerStats>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Counts a request from its start to its answer.
pub async fn count(State(ctx): Ctx, req: Request, next: Next) -> Response {
    struct Finished<'a>(&'a ServerStats);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.finished.fetch_add(1, Ordering::Relaxed);
        }
    }
    ctx.server_stats.requests.fetch_add(1, Ordering::Relaxed);
    let _finished = Finished(&ctx.server_stats);
    next.run(req).await
}
