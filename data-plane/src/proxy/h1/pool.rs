//! Idle upstream connections of the in-task HTTP/1 path, kept per upstream address.

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use rustc_hash::FxHashMap;
use tokio::net::TcpStream;

const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle upstream connections of one proxy worker, by upstream address, most recently used last. The
/// addresses are the operator's, so a fast hash serves.
#[derive(Default)]
pub(in crate::proxy) struct H1Pool {
    idle: Mutex<FxHashMap<Authority, Vec<Idle>>>,
}

struct Idle {
    stream: TcpStream,
    /// The connection's read buffer, kept so its allocation serves the next exchange.
    buf: BytesMut,
    since: Instant,
}

impl H1Pool {
    /// A live idle connection to `authority` and its (empty) read buffer, if one is kept, at time `now`.
    pub(super) fn take(
        &self,
        authority: &Authority,
        now: Instant,
    ) -> Option<(TcpStream, BytesMut)> {
        let mut idle = self.idle.lock().expect("upstream pool lock");
        let kept = idle.get_mut(authority)?;
        let cutoff = now.checked_sub(IDLE_TIMEOUT);
        while let Some(conn) = kept.pop() {
            if cutoff.is_some_and(|c| conn.since < c) {
                // Older ones are further down the stack.
                kept.clear();
                return None;
            }
            if still_open(&conn.stream) {
                return Some((conn.stream, conn.buf));
            }
        }
        None
    }

    /// Keeps `stream`, whose last exchange (begun at `since`, which counts as the start of its idle time)
    /// ended cleanly with nothing left in `buf`, for the next request to `authority`.
    pub(super) fn put(
        &self,
        authority: Authority,
        stream: TcpStream,
        buf: BytesMut,
        since: Instant,
    ) {
        let now = since;
        let mut idle = self.idle.lock().expect("upstream pool lock");
        let kept = idle.entry(authority).or_default();
        if let Some(cutoff) = now.checked_sub(IDLE_TIMEOUT) {
            let expired = kept.partition_point(|c| c.since < cutoff);
            kept.drain(..expired);
        }
        if kept.len() < MAX_IDLE_PER_UPSTREAM {
            kept.push(Idle {
                stream,
                buf,
                since: now,
            });
        }
    }
}

/// Whether an idle connection can carry another request: nothing has arrived on it (an idle upstream
/// sends nothing unless it is closing). Readiness already known to the runtime is consulted first, so
/// the usual case costs no system call.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => matches!(
            stream.try_read(&mut [0u8; 1]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ),
    }
}
