//! Protocol upgrades (WebSocket): a request asking for one (`Connection: upgrade` and `Upgrade`) keeps
//! both headers upstream, and when the upstream answers `101 Switching Protocols` the client gets the 101
//! with them and the two connections are joined byte for byte until either side closes, until nothing
//! has moved either way for the Service's `read_timeout` (the idle timeout, as nginx applies it), or until
//! one side has taken nothing written to it for the Service's `write_timeout` (a stalled peer, as nginx's
//! `proxy_send_timeout`).
//!
//! A WebSocket over HTTP/2 (RFC 8441: `CONNECT` with `:protocol websocket`) reaches the upstream as the
//! HTTP/1.1 handshake it understands (a `GET` with a fresh `Sec-WebSocket-Key`); the upstream's 101 goes
//! back as the `200` an HTTP/2 client expects, and the stream is joined to the upstream connection the
//! same way.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::metrics::Metrics;

/// The `Upgrade` a request asks for, when its `Connection` header names `upgrade`.
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = super::forward::connection_tokens(headers)
        .any(|token| token.eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Whether the request is a WebSocket over HTTP/2 (RFC 8441 extended `CONNECT`).
pub fn is_extended_connect<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The HTTP/1.1 handshake headers an extended `CONNECT` lacks: a fresh `Sec-WebSocket-Key`, and
/// `Sec-WebSocket-Version: 13` unless the client sent one.
pub fn add_http1_handshake(headers: &mut HeaderMap) {
    let key: [u8; 16] = rand::random();
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
    if let Ok(v) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, v);
    }
    headers
        .entry(header::SEC_WEBSOCKET_VERSION)
        .or_insert(HeaderValue::from_static("13"));
}

/// The upstream's `101` as an HTTP/2 client expects it: `200`, without the HTTP/1.1 handshake's
/// `Upgrade`, `Connection` and `Sec-WebSocket-Accept`.
pub fn as_http2_accept(parts: &mut http::response::Parts) {
    parts.status = http::StatusCode::OK;
    for name in [
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_ACCEPT,
    ] {
        parts.headers.remove(name);
    }
}

/// Puts the upgrade headers back after the hop-by-hop headers were removed.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// A connection that notes when bytes last came in (for the idle timeout) and since when a write to it
/// has been waiting (for the stall timeout).
struct Watched<T> {
    inner: T,
    epoch: Instant,
    last_read_ms: Arc<AtomicU64>,
    /// 0 while writes go through; else 1 + the millisecond (since `epoch`) a write started waiting.
    blocked_since_ms: Arc<AtomicU64>,
}

impl<T> Watched<T> {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// How long a write has been waiting, from a [`Watched`]'s `blocked_since_ms`, at `now_ms`.
fn blocked_for(blocked_since_ms: &AtomicU64, now_ms: u64) -> Duration {
    match blocked_since_ms.load(Ordering::Relaxed) {
        0 => Duration::ZERO,
        since => Duration::from_millis(now_ms.saturating_sub(since - 1)),
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.last_read_ms.store(this.now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        match polled {
            Poll::Pending => {
                if this.blocked_since_ms.load(Ordering::Relaxed) == 0 {
                    this.blocked_since_ms
                        .store(this.now_ms() + 1, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => this.blocked_since_ms.store(0, Ordering::Relaxed),
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Joins the client's and the upstream's upgraded connections once both are handed over, until either
/// closes, both are idle for `idle`, or a write to one side has waited `stall`; counts the connection
/// and its bytes in `metrics`.
pub fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    (idle, stall): (Duration, Duration),
    metrics: Arc<Metrics>,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                debug!(
                    client = c.is_ok(),
                    upstream = u.is_ok(),
                    "an upgraded connection was not handed over"
                );
                return;
            }
        };
        let epoch = Instant::now();
        let last_read_ms = Arc::new(AtomicU64::new(0));
        let watched = |io| Watched {
            inner: TokioIo::new(io),
            epoch,
            last_read_ms: last_read_ms.clone(),
            blocked_since_ms: Arc::default(),
        };
        let (mut client, mut upstream) = (watched(client), watched(upstream));
        let blocked = [
            client.blocked_since_ms.clone(),
            upstream.blocked_since_ms.clone(),
        ];
        // Ends with "idle" when nothing came in either way for `idle`, "stalled" when a write waited
        // `stall`; checks again when the sooner of the two could next be due.
        let watchdog = async {
            loop {
                let now = epoch.elapsed();
                let now_ms = now.as_millis() as u64;
                let last = Duration::from_millis(last_read_ms.load(Ordering::Relaxed));
                let quiet = now.saturating_sub(last);
                if quiet >= idle {
                    return "idle";
                }
                let waited = blocked
                    .iter()
                    .map(|b| blocked_for(b, now_ms))
                    .max()
                    .unwrap_or_default();
                if waited >= stall {
                    return "stalled";
                }
                tokio::time::sleep((idle - quiet).min(stall - waited)).await;
            }
        };
        let ending = tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => {
                    metrics.upgraded_bytes.add(&[("direction", "upstream")], up);
                    metrics.upgraded_bytes.add(&[("direction", "downstream")], down);
                    "closed"
                }
                Err(e) => {
                    debug!(error = %e, "upgraded connection ended with an error");
                    "error"
                }
            },
            ended = watchdog => ended,
        };
        metrics.upgraded_connections.add(&[("ended", ending)], 1);
        debug!(ending, "upgraded connection ended");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&h), None, "Upgrade without Connection: upgrade");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(requested(&h).unwrap(), "websocket");
        h.remove(header::UPGRADE);
        assert_eq!(requested(&h), None);
    }
}
