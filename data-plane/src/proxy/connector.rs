//! Upstream TCP connections with a Service's connection retries, for both upstream paths (the hyper
//! client's pools and the in-task HTTP/1 exchanges).

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::body::BoxError;

/// A TCP connector that tries up to `attempts` times: a Service's `retries` apply to connection failures,
/// where nothing has been sent yet, so every request (streamed bodies included) can be retried safely and
/// the request itself never needs to be copied for a retry.
#[derive(Clone)]
pub(crate) struct RetryingConnector {
    http: HttpConnector,
    attempts: usize,
}

impl RetryingConnector {
    /// Plain TCP with Nagle off, `connect_timeout` per attempt, `attempts` tries (at least one).
    pub(crate) fn new(connect_timeout: Duration, attempts: usize) -> RetryingConnector {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        RetryingConnector {
            http: tcp,
            attempts,
        }
    }

    /// A new connection to `authority` (port 80 unless it names one).
    pub(crate) async fn connect(
        &self,
        authority: &http::uri::Authority,
    ) -> Result<tokio::net::TcpStream, ConnectFailed> {
        let uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("an authority and a path make a URI");
        let io = tower::ServiceExt::oneshot(self.clone(), uri).await?;
        Ok(io.into_inner())
    }
}

/// Every connection attempt failed.
#[derive(Debug)]
pub(crate) struct ConnectFailed {
    attempts: usize,
    last: BoxError,
}

impl ConnectFailed {
    /// How many attempts were made.
    pub(crate) fn attempts(&self) -> usize {
        self.attempts
    }
}

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connection attempt(s) failed, last: {}",
            self.attempts, self.last
        )
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.last)
    }
}

pub(crate) type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<TokioIo<tokio::net::TcpStream>, ConnectFailed>>
            + Send,
    >,
>;

impl tower::Service<http::Uri> for RetryingConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = ConnectFailed;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ConnectFailed>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Connecting {
        let http = self.http.clone();
        let attempts = self.attempts.max(1);
        Box::pin(async move {
            let mut last: Option<BoxError> = None;
            for attempt in 0..attempts {
                match tower::ServiceExt::oneshot(http.clone(), dst.clone()).await {
                    Ok(io) => return Ok(io),
                    Err(e) => {
                        debug!(upstream = %dst, attempt, error = %e, "upstream connect failed");
                        last = Some(Box::new(e));
                    }
                }
            }
            Err(ConnectFailed {
                attempts,
                last: last.unwrap_or_else(|| "no attempt".into()),
            })
        })
    }
}
