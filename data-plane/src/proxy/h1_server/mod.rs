//! Plain HTTP/1.x client connections served in their own task: request heads parsed with `httparse`
//! into the buffer they were read into, each bodiless request run through [`super::handle`] and its
//! response written by [`response::write`], in one write when the body is ready with the head.
//!
//! The first request that this server does not take (a request body, an upgrade, `Expect`, or an
//! HTTP/2 connection preface) hands the whole connection, from that request on, to the hyper server,
//! together with the bytes already read; TLS connections go to the hyper server from the start.
//!
//! A client has [`HEAD_TIMEOUT`] to send a complete head, counted from the end of the previous response
//! (or from accepting the connection); a graceful shutdown closes connections that are between
//! requests and lets each one finish the request it is answering.

mod replay;
mod request;
mod response;
mod verdict;

pub use verdict::{verdict, RequestVerdict};

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::ctx::{Connection, ProxyCtx};
use super::framing::Refusal;
use super::handle::{handle, hyper_service, ConnBuilder};
use crate::body::{BoxError, RequestBody};
use request::Head;
use response::Answering;

/// How long a client may take to send a request head.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How far the head timer may lag behind [`HEAD_TIMEOUT`]: it is moved at most once per this, not once
/// per request.
const TIMER_SLACK: Duration = Duration::from_secs(1);

/// What a connection is handed to when this server does not take a request.
pub(super) struct HandOff {
    pub builder: ConnBuilder,
    pub watcher: Watcher,
}

/// Serves one plain-TCP client connection until the client closes it, a response cannot be followed by
/// another, `shutdown` turns true between requests, or the connection is handed off.
pub(super) async fn serve(
    mut tcp: TcpStream,
    ctx: Arc<ProxyCtx>,
    conn: Connection,
    hand_off: HandOff,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = Vec::with_capacity(8 * 1024);
    let mut timer = Box::pin(tokio::time::sleep(HEAD_TIMEOUT));
    // One wait for the shutdown signal for the connection's whole life, rather than one per request.
    let mut stop = std::pin::pin!(async move {
        let _ = shutdown.changed().await;
    });
    let mut first = true;
    loop {
        // Set when a read first has to wait.
        let mut deadline = None;
        let head = loop {
            match request::parse(&mut buf, first) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(refusal) => return refuse(&mut tcp, &ctx, &conn, refusal).await,
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8 * 1024);
            }
            match read(&mut tcp, &mut buf, &mut timer, &mut deadline, stop.as_mut()).await {
                Read::More => {}
                // A client may close between requests; inside a head, the request is abandoned.
                Read::Closed | Read::TimedOut | Read::ShutDown => return Ok(()),
                Read::Failed(e) => return Err(e.into()),
            }
        };
        first = false;
        let bodiless = match head {
            Head::Bodiless(bodiless) => bodiless,
            Head::HandOff(_) => {
                let HandOff { builder, watcher } = hand_off;
                let io = TokioIo::new(replay::Replay::new(buf.freeze(), tcp));
                let served = builder.serve_connection_with_upgrades(io, hyper_service(ctx, conn));
                return watcher.watch(served.into_owned()).await;
            }
        };
        let answering = Answering {
            version: bodiless.parts.version,
            head_request: bodiless.parts.method == Method::HEAD,
            keep_alive: bodiless.keep_alive,
        };
        let req = Request::from_parts(bodiless.parts, RequestBody::Empty);
        let (resp, stamp) = handle(&ctx, req, &conn).await;
        let keep = response::write(&mut tcp, &mut out, resp, &stamp, answering).await?;
        if !keep || futures::poll!(stop.as_mut()).is_ready() {
            let _ = tcp.shutdown().await;
            return Ok(());
        }
    }
}

/// How long a refused client's remaining bytes are read and dropped before the connection is closed.
const LINGER: Duration = Duration::from_secs(1);

/// Answers a refused head and ends the connection. What the client still sends is read and dropped for
/// a moment ([`LINGER`]), so closing with unread bytes does not reset the connection before the client
/// has read the answer.
async fn refuse(
    tcp: &mut TcpStream,
    ctx: &ProxyCtx,
    conn: &Connection,
    refusal: Refusal,
) -> Result<(), BoxError> {
    ctx.metrics
        .client_errors
        .add(&[("kind", refusal.label())], 1);
    tracing::debug!(peer = %conn.peer, reason = refusal.reason(), "request head refused");
    let mut answer = Vec::with_capacity(128);
    response::encode_status_line(&mut answer, refusal.status());
    answer.extend_from_slice(b"content-length: 0\r\nconnection: close\r\n\r\n");
    tcp.write_all(&answer).await?;
    tcp.shutdown().await?;
    let mut sink = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(1..) = tokio::io::AsyncReadExt::read(tcp, &mut sink).await {}
    })
    .await;
    Ok(())
}

/// How waiting for more of a request head ended.
enum Read {
    More,
    Closed,
    TimedOut,
    /// A graceful shutdown began while no request was in progress.
    ShutDown,
    Failed(io::Error),
}

/// Reads more of a request head into `buf` by `deadline` (set to [`HEAD_TIMEOUT`] from now when a read
/// first has to wait). The head timer is registered only when the read has to wait, and moved only when
/// it lags the deadline by more than [`TIMER_SLACK`]. `stop` ends a wait between requests.
async fn read(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    timer: &mut Pin<Box<Sleep>>,
    deadline: &mut Option<Instant>,
    stop: Pin<&mut impl Future<Output = ()>>,
) -> Read {
    let idle = buf.is_empty();
    let read = tokio::io::AsyncReadExt::read_buf(tcp, buf);
    tokio::pin!(read);
    // A read that completes at once needs neither the timer nor the shutdown signal.
    if let Some(done) = futures::FutureExt::now_or_never(read.as_mut()) {
        return finished(done);
    }
    let deadline = *deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
    if timer.deadline() + TIMER_SLACK < deadline {
        timer.as_mut().reset(deadline);
    }
    tokio::select! {
        biased;
        done = read => finished(done),
        _ = timer.as_mut() => Read::TimedOut,
        _ = stop, if idle => Read::ShutDown,
    }
}

fn finished(read: io::Result<usize>) -> Read {
    match read {
        Ok(0) => Read::Closed,
        Ok(_) => Read::More,
        Err(e) => Read::Failed(e),
    }
}

#[cfg(test)]
mod tests;
