//! An upstream response body read straight from its connection: by length, chunked, or until the
//! upstream closes. A body read to its clean end hands the connection back to the pool; one dropped
//! early takes its connection with it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;

use super::pool::H1Pool;
use crate::body::BoxError;

/// Longest chunk-size line, and most bytes and fields of trailers, accepted (the trailer limits are
/// hyper's client's, which reads the pooled path's answers).
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
const MAX_TRAILER_FIELDS: usize = 100;

/// How a response body ends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 204, 304, `Content-Length: 0`), or the body was read to its end.
    Empty,
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, with this many bytes and fields of trailers read (they are not forwarded).
    Trailers { bytes: usize, fields: usize },
}

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    Data(Bytes),
    /// The buffer ends inside framing: read more.
    NeedMore,
    /// The body is complete.
    End,
}

impl Chunked {
    /// Decodes from the front of `buf`, consuming what it decodes.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            match self {
                Chunked::Size => {
                    let Some(eol) = line_end(buf, MAX_CHUNK_LINE, "chunk size line too long")?
                    else {
                        return Ok(Decoded::NeedMore);
                    };
                    // No CR before the line's end and no other control character (a CR there ends
                    // the line for some readers and not for others).
                    if buf[..eol]
                        .iter()
                        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    {
                        return Err("control character in a chunk size line");
                    }
                    let digits = buf[..eol].split(|&b| b == b';').next().unwrap_or_default();
                    let size = parse_hex(digits).ok_or("invalid chunk size")?;
                    buf.advance(eol + 2);
                    *self = match size {
                        0 => Chunked::Trailers {
                            bytes: 0,
                            fields: 0,
                        },
                        n => Chunked::Data(n),
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = (buf.len() as u64).min(*left) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers { bytes, fields } => {
                    let room = MAX_TRAILERS.saturating_sub(*bytes);
                    let Some(eol) = line_end(buf, room, "trailer fields too large")? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if eol == 0 {
                        buf.advance(2);
                        return Ok(Decoded::End);
                    }
                    if *fields == MAX_TRAILER_FIELDS {
                        return Err("too many trailer fields");
                    }
                    if !is_field_line(&buf[..eol]) {
                        return Err("invalid trailer field");
                    }
                    buf.advance(eol + 2);
                    *bytes += eol + 2;
                    *fields += 1;
                }
            }
        }
    }
}

/// Where the CRLF ending the line at the front of `buf` starts; `None` while it has not arrived within
/// `max` bytes.
fn line_end(buf: &[u8], max: usize, too_long: &'static str) -> Result<Option<usize>, &'static str> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) if lf > 0 && buf[lf - 1] == b'\r' && lf <= max => Ok(Some(lf - 1)),
        Some(lf) if lf > max => Err(too_long),
        Some(_) => Err("line not ended by CRLF"),
        None if buf.len() > max => Err(too_long),
        None => Ok(None),
    }
}

/// `field-name ":" OWS field-value OWS` (RFC 9112, 5), read as a head's field is: by `httparse`, then as
/// an `http` name and value.
fn is_field_line(line: &[u8]) -> bool {
    let mut block = Vec::with_capacity(line.len() + 4);
    block.extend_from_slice(line);
    block.extend_from_slice(b"\r\n\r\n");
    let mut field = [httparse::EMPTY_HEADER; 1];
    match httparse::parse_headers(&block, &mut field) {
        Ok(httparse::Status::Complete((_, [f]))) => {
            http::HeaderName::from_bytes(f.name.as_bytes()).is_ok()
                && http::HeaderValue::from_bytes(f.value).is_ok()
        }
        _ => false,
    }
}

/// A chunk size: 1 to 16 hexadecimal digits, optionally followed by spaces before an extension.
fn parse_hex(digits: &[u8]) -> Option<u64> {
    let end = digits
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |e| e + 1);
    let digits = &digits[..end];
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        Some((n << 4) | u64::from(d))
    })
}

/// Reads a whole body framed by `framing` from `buf`, after which the connection ends: the body, and
/// whether it ended as its framing says. What follows it stays in `buf`.
pub(super) fn read_all(framing: Framing, buf: &mut BytesMut) -> (Vec<u8>, bool) {
    match framing {
        Framing::Empty => (Vec::new(), true),
        Framing::Length(n) => {
            let take = (buf.len() as u64).min(n) as usize;
            (buf.split_to(take).to_vec(), take as u64 == n)
        }
        Framing::UntilClose => (buf.split().to_vec(), true),
        Framing::Chunked(mut state) => {
            let mut body = Vec::new();
            loop {
                match state.decode(buf) {
                    Ok(Decoded::Data(data)) => body.extend_from_slice(&data),
                    Ok(Decoded::End) => return (body, true),
                    Ok(Decoded::NeedMore) | Err(_) => return (body, false),
                }
            }
        }
    }
}

/// A response body streaming from its upstream connection.
pub(super) struct UpstreamBody {
    stream: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    /// The pool and address the connection goes back to, when it can be kept, and when its exchange began.
    back: Option<(Arc<H1Pool>, Authority, Instant)>,
}

impl UpstreamBody {
    pub(super) fn new(
        stream: TcpStream,
        buf: BytesMut,
        framing: Framing,
        back: Option<(Arc<H1Pool>, Authority, Instant)>,
    ) -> UpstreamBody {
        let mut body = UpstreamBody {
            stream: Some(stream),
            buf,
            framing,
            back,
        };
        if body.framing == Framing::Empty {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool when it can be kept and nothing
    /// beyond the body arrived on it.
    fn finish(&mut self) {
        self.framing = Framing::Empty;
        let stream = self.stream.take();
        if let (Some(stream), Some((pool, authority, since))) = (stream, self.back.take()) {
            if self.buf.is_empty() {
                pool.put(authority, stream, std::mem::take(&mut self.buf), since);
            }
        }
    }

    /// Reads more of the connection into the buffer; `Ok(0)` when the upstream closed it.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(stream) = &self.stream else {
            return Poll::Ready(Ok(0));
        };
        if self.buf.capacity() - self.buf.len() < 4 * 1024 {
            self.buf.reserve(16 * 1024);
        }
        loop {
            match stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_read_ready(cx))?;
                }
                read => return Poll::Ready(read),
            }
        }
    }

    /// The next data, or the end, of the body from what is buffered; `None` when more must be read.
    fn next_buffered(&mut self) -> Result<Option<Option<Bytes>>, BoxError> {
        match &mut self.framing {
            Framing::Empty => Ok(Some(None)),
            Framing::Length(left) => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let n = (self.buf.len() as u64).min(*left) as usize;
                *left -= n as u64;
                let data = self.buf.split_to(n).freeze();
                if *left == 0 {
                    self.finish();
                }
                Ok(Some(Some(data)))
            }
            Framing::Chunked(state) => match state.decode(&mut self.buf)? {
                Decoded::Data(data) => Ok(Some(Some(data))),
                Decoded::NeedMore => Ok(None),
                Decoded::End => {
                    self.finish();
                    Ok(Some(None))
                }
            },
            Framing::UntilClose if self.buf.is_empty() => Ok(None),
            Framing::UntilClose => Ok(Some(Some(self.buf.split().freeze()))),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.next_buffered() {
                Ok(Some(data)) => return Poll::Ready(data.map(|d| Ok(Frame::data(d)))),
                Ok(None) => {}
                Err(e) => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Empty;
                    this.stream = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(
                        "upstream closed the connection before the end of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.stream = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Empty
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
