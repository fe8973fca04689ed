//! Responses written to an HTTP/1.x client: the head encoded into the connection's output buffer, the
//! body framed by its known length, by the upstream's `Content-Length`, in chunks, or (HTTP/1.0 clients)
//! by closing the connection. A response whose body is ready with its head leaves in one write.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Buf;
use futures::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::proxy::h1::content_length;
use crate::proxy::header_maps;
use crate::proxy::stamp::Stamp;

/// Output gathered before it is written; a larger body frame is written on its own.
const GATHER: usize = 64 * 1024;

/// What the response is answering.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering {
    pub version: Version,
    pub head_request: bool,
    /// Whether the connection stays open afterwards, as far as the request and the node are concerned.
    pub keep_alive: bool,
}

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body is sent (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// The end of the body is the end of the connection (an HTTP/1.0 client, unknown length).
    Close,
}

/// Writes `resp` on `stream`, using `out` as the output buffer. Returns whether the connection can carry
/// another request; an error means it cannot either (the body failed, or the client went away).
pub(super) async fn write(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    resp: Response<ProxyBody>,
    stamp: &Stamp,
    answering: Answering,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let framing = framing(parts.status, &parts.headers, &body, answering);
    let keep_alive = answering.keep_alive && framing != Framing::Close;
    out.clear();
    encode_head(
        out,
        parts.status,
        &parts.headers,
        stamp,
        framing,
        keep_alive,
        answering,
    );
    header_maps::give(parts.headers);
    let mut sent = 0u64;
    let mut trailers = None;
    if framing != Framing::None {
        loop {
            // A frame that is ready joins the output gathered so far; one that is not yet ready is
            // awaited after that output is written.
            let frame = match body.frame().now_or_never() {
                Some(frame) => frame,
                None => {
                    flush(stream, out).await?;
                    body.frame().await
                }
            };
            let frame = match frame {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    // What was gathered still goes out: the client sees the head and the body cut
                    // short by the connection's end, not a connection closed without an answer.
                    let _ = flush(stream, out).await;
                    return Err(io::Error::other(e));
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if let Framing::Length(n) = framing {
                if sent > n {
                    let _ = flush(stream, out).await;
                    return Err(io::Error::other("response body longer than its length"));
                }
            }
            if framing == Framing::Chunked {
                let _ = write!(out, "{:x}\r\n", data.len());
            }
            if out.len() + data.len() <= GATHER {
                out.extend_from_slice(data.chunk());
            } else {
                flush(stream, out).await?;
                stream.write_all(&data).await?;
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    match framing {
        Framing::Chunked => {
            out.extend_from_slice(b"0\r\n");
            if let Some(trailers) = &trailers {
                encode_fields(out, trailers, |_| true);
            }
            out.extend_from_slice(b"\r\n");
        }
        Framing::Length(n) if sent < n => {
            flush(stream, out).await?;
            return Err(io::Error::other("response body shorter than its length"));
        }
        _ => {}
    }
    flush(stream, out).await?;
    Ok(keep_alive)
}

/// Writes and empties `out`.
async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

fn framing(
    status: StatusCode,
    headers: &HeaderMap,
    body: &ProxyBody,
    answering: Answering,
) -> Framing {
    if answering.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    if let Some(n) = http_body::Body::size_hint(body).exact() {
        return Framing::Length(n);
    }
    let lengths = headers.get_all(header::CONTENT_LENGTH);
    if let Ok(Some(n)) = content_length(lengths.iter().map(HeaderValue::as_bytes)) {
        return Framing::Length(n);
    }
    match answering.version {
        Version::HTTP_11 => Framing::Chunked,
        _ => Framing::Close,
    }
}

fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    stamp: &Stamp,
    framing: Framing,
    keep_alive: bool,
    answering: Answering,
) {
    encode_status_line(out, status);
    // Framing and connection handling are this connection's own; a Content-Length is kept only when
    // no body is sent (the length a HEAD or 304 answer describes), and never on 1xx and 204 answers
    // (RFC 9110, 8.6).
    let own_length =
        framing != Framing::None || status.is_informational() || status == StatusCode::NO_CONTENT;
    encode_fields(out, headers, |name| {
        name != header::CONNECTION
            && name != header::TRANSFER_ENCODING
            && !(own_length && name == header::CONTENT_LENGTH)
            && !stamp.replaces(name)
    });
    stamp.encode(out);
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if answering.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `HTTP/1.1 <code> <reason>` and its line end.
pub(super) fn encode_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the fields of `headers` that `keep` accepts.
fn encode_fields(out: &mut Vec<u8>, headers: &HeaderMap, keep: impl Fn(&HeaderName) -> bool) {
    for (name, value) in headers {
        if keep(name) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

thread_local! {
    /// The `Date` value of the current second, formatted once per second per worker.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `f` with the current time as an HTTP date (RFC 9110, 5.6.7).
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, date)| {
        if *at != second {
            *at = second;
            *date = httpdate::fmt_http_date(now);
        }
        f(date.as_bytes());
    });
}
