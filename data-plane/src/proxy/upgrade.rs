//! Protocol upgrades (WebSocket): a request asking for one (`Connection: upgrade` and `Upgrade`) keeps
//! both headers upstream, and when the upstream answers `101 Switching Protocols` the client gets the 101
//! with them and the two connections are joined byte for byte until either side closes, or until nothing
//! has moved either way for the Service's `read_timeout` (the idle timeout, as nginx applies it).

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

/// Puts the upgrade headers back after the hop-by-hop headers were removed.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// A connection that notes when bytes last came in, for the idle timeout.
struct Watched<T> {
    inner: T,
    epoch: Instant,
    last_read_ms: Arc<AtomicU64>,
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
            let now = this.epoch.elapsed().as_millis() as u64;
            this.last_read_ms.store(now, Ordering::Relaxed);
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Joins the client's and the upstream's upgraded connections once both are handed over, until either
/// closes or both are idle for `idle`; counts the connection and its bytes in `metrics`.
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade, idle: Duration, metrics: Arc<Metrics>) {
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
        };
        let (mut client, mut upstream) = (watched(client), watched(upstream));
        let idle_out = async {
            loop {
                let last = Duration::from_millis(last_read_ms.load(Ordering::Relaxed));
                let quiet = epoch.elapsed().saturating_sub(last);
                if quiet >= idle {
                    return;
                }
                tokio::time::sleep(idle - quiet).await;
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
            _ = idle_out => "idle",
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
