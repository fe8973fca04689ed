//! Plain HTTP/1.1 upstream exchanges driven by the task of the request that makes them: the request head
//! is written and the response head read on a pooled connection without a connection task, a dispatch
//! channel or a second parser, and the response body reads straight from the socket, handing the
//! connection back to the pool when it ends cleanly.
//!
//! Only bodiless requests to plain-HTTP upstreams take this path (most proxied traffic: GET, HEAD,
//! DELETE, OPTIONS); requests with a body, protocol upgrades, TLS and HTTP/2 upstreams go through the
//! hyper client in [`super::upstream`], which can write a body while it reads an early answer.
//!
//! A connection taken from the pool may have been closed by the upstream while it was idle. When such a
//! connection ends before a byte of the answer arrives, an idempotent request is sent again once on a new
//! connection (as browsers and Go's HTTP client do); any other failure is the caller's to report.

mod body;
mod head;
mod pool;
mod verdict;

pub(super) use head::content_length;
pub(super) use pool::H1Pool;
pub use verdict::{verdict, ResponseVerdict};

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use http::{Method, Response};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::connector::RetryingConnector;
use crate::body::ProxyBody;
use body::UpstreamBody;
pub(super) use head::BodylessRequest;
use head::ResponseHead;

/// Why an exchange failed.
#[derive(Debug)]
pub(super) enum H1Error {
    /// No connection could be made in `attempts` tries; nothing was sent.
    Connect { attempts: usize, detail: String },
    /// The request may have reached the upstream, and the answer was broken or missing.
    Protocol(String),
}

/// How to reach one upstream address.
pub(super) struct Dial<'a> {
    pub authority: &'a Authority,
    pub connect_timeout: Duration,
    /// Connection attempts, at least one.
    pub attempts: usize,
}

/// Connects to `dial.authority`, trying `dial.attempts` times, as the pooled clients connect.
async fn connect(dial: &Dial<'_>) -> Result<TcpStream, H1Error> {
    RetryingConnector::new(dial.connect_timeout, dial.attempts.max(1))
        .connect(dial.authority)
        .await
        .map_err(|failed| H1Error::Connect {
            attempts: failed.attempts(),
            detail: shared::error::chain(&failed),
        })
}

/// Sends `req` to `dial.authority` over a pooled connection (or a new one) and reads the response head;
/// the body streams from the connection as the caller reads it. `now` is the exchange's start.
pub(super) async fn send(
    pool: &Arc<H1Pool>,
    dial: &Dial<'_>,
    req: &BodylessRequest<'_>,
    now: Instant,
) -> Result<Response<ProxyBody>, H1Error> {
    let (stream, buf, reused) = match pool.take(dial.authority, now) {
        Some((stream, buf)) => (stream, buf, true),
        None => (connect(dial).await?, BytesMut::new(), false),
    };
    let (stream, buf, response) = match exchange(stream, buf, req, dial.authority).await {
        Ok(done) => done,
        Err(Exchange::Closed(_)) if reused && idempotent(req.method) => {
            let stream = connect(dial).await?;
            exchange(stream, BytesMut::new(), req, dial.authority)
                .await
                .map_err(Exchange::into_error)?
        }
        Err(e) => return Err(e.into_error()),
    };
    let ResponseHead {
        parts,
        framing,
        keep_alive,
    } = response;
    let framing = if *req.method == Method::HEAD {
        body::Framing::Empty
    } else {
        framing
    };
    let back = keep_alive.then(|| (pool.clone(), dial.authority.clone(), now));
    let body = UpstreamBody::new(stream, buf, framing, back);
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// How an exchange failed before the response head was complete.
enum Exchange {
    /// The connection ended (closed or reset) before a byte of the answer arrived.
    Closed(String),
    /// Anything else.
    Failed(String),
}

impl Exchange {
    fn into_error(self) -> H1Error {
        match self {
            Exchange::Closed(detail) => {
                H1Error::Protocol(format!("upstream closed the connection: {detail}"))
            }
            Exchange::Failed(detail) => H1Error::Protocol(detail),
        }
    }
}

/// Writes the head of `req` on `stream` and reads the response head into `buf` (interim 1xx answers
/// skipped). The request head is encoded in `buf` too, which is empty between exchanges, so the buffer's
/// allocation serves both ways and is reused when nothing read into it before is still referenced.
async fn exchange(
    mut stream: TcpStream,
    mut buf: BytesMut,
    req: &BodylessRequest<'_>,
    authority: &Authority,
) -> Result<(TcpStream, BytesMut, ResponseHead), Exchange> {
    buf.clear();
    head::encode_request(req, authority.as_str(), &mut buf);
    let written = stream.write_all(&buf).await;
    buf.clear();
    if let Err(e) = written {
        return Err(match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                Exchange::Closed(e.to_string())
            }
            _ => Exchange::Failed(format!("cannot send the request: {e}")),
        });
    }
    let mut received = false;
    loop {
        match head::parse_response(&mut buf) {
            Ok(Some(head)) => return Ok((stream, buf, head)),
            Ok(None) => {}
            Err(e) => return Err(Exchange::Failed(e.to_string())),
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8 * 1024);
        }
        match tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf).await {
            Ok(0) if !received => return Err(Exchange::Closed("no response".into())),
            Ok(0) => {
                return Err(Exchange::Failed(
                    "upstream closed the connection in the middle of the response head".into(),
                ))
            }
            Ok(_) => received = true,
            Err(e) if !received && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(Exchange::Closed(e.to_string()))
            }
            Err(e) => return Err(Exchange::Failed(format!("cannot read the response: {e}"))),
        }
    }
}

/// Methods that may be sent again when a kept connection turns out closed (RFC 9110, 9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests;
