//! Request heads read from a client connection: a bodiless request is parsed into `http` parts (header
//! values sliced from the read buffer, not copied); anything else is recognised and left in the buffer
//! for the hyper server (a request body, an upgrade, `Expect`, HTTP/2's preface).

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};

use crate::proxy::forward::connection_tokens;
use crate::proxy::h1::content_length;
use crate::proxy::header_maps;

/// Longest request head accepted (as the hyper server's buffer limit).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted (as the hyper server).
const MAX_HEADERS: usize = 100;
/// What an HTTP/2 connection with prior knowledge starts with (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the front of the read buffer holds.
// Returned once per request and moved straight into the request: boxing the large variant would cost an
// allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Head {
    /// A complete bodiless request, removed from the buffer.
    Bodiless(Bodiless),
    /// A request (or a connection preface) this server leaves to the hyper server, still in the buffer.
    HandOff,
}

/// A bodiless request and how its connection continues.
#[derive(Debug)]
pub(super) struct Bodiless {
    pub parts: http::request::Parts,
    /// Whether the client keeps the connection open after the response.
    pub keep_alive: bool,
}

/// Why a request head is refused: the status answered before the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 400: not an HTTP/1.x request head, or a field that is not valid.
    Malformed,
    /// 431: the head is larger than [`MAX_HEAD`] or has more than the accepted number of fields.
    TooLarge,
}

impl Refusal {
    pub(super) fn status_line(self) -> &'static [u8] {
        match self {
            Refusal::Malformed => b"HTTP/1.1 400 Bad Request\r\n",
            Refusal::TooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        }
    }
}

thread_local! {
    /// Each field's name and where its value lies in the head, kept between parses so that parsing a head
    /// allocates nothing besides its header map (a head refused on the way drops it).
    static SPANS: RefCell<Vec<(HeaderName, Range<usize>)>> = const { RefCell::new(Vec::new()) };
}

/// Reads the request head at the front of `buf`; `None` while it is incomplete. `first` says whether
/// this is the connection's first request, the only place an HTTP/2 preface may appear.
pub(super) fn parse(buf: &mut BytesMut, first: bool) -> Result<Option<Head>, Refusal> {
    if first && buf.starts_with(b"PRI ") {
        let seen = buf.len().min(H2_PREFACE.len());
        return match buf[..seen] == H2_PREFACE[..seen] {
            true => Ok(Some(Head::HandOff)),
            false => Err(Refusal::Malformed),
        };
    }
    // Left uninitialised: the parser writes the fields it finds.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(&buf[..], &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Malformed),
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Offsets of the target and the values in the head, which is split off below and shared.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let target = offset(target.as_bytes());
    let lengths = req
        .headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"));
    let length = content_length(lengths.map(|f| f.value)).map_err(|_| Refusal::Malformed)?;
    let mut spans = SPANS.take();
    spans.clear();
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Refusal::Malformed)?;
        if name == header::TRANSFER_ENCODING || name == header::UPGRADE || name == header::EXPECT {
            SPANS.set(spans);
            return Ok(Some(Head::HandOff));
        }
        spans.push((name, offset(field.value)));
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::Malformed)?;
    if method == Method::CONNECT || length.is_some_and(|n| n > 0) {
        SPANS.set(spans);
        return Ok(Some(Head::HandOff));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target)).map_err(|_| Refusal::Malformed)?;
    // Room for what the plugins (credential and consumer headers) and the forwarded headers add, so the
    // map does not grow on the way upstream.
    let mut headers = header_maps::take(spans.len() + 16);
    for (name, span) in spans.drain(..) {
        let value =
            HeaderValue::from_maybe_shared(head.slice(span)).map_err(|_| Refusal::Malformed)?;
        headers.append(name, value);
    }
    SPANS.set(spans);
    Ok(Some(Head::Bodiless(bodiless(
        method, uri, version, headers,
    ))))
}

/// The parts of a bodiless request, and whether its connection is kept.
fn bodiless(method: Method, uri: Uri, version: Version, headers: HeaderMap) -> Bodiless {
    let keep_alive = match version {
        Version::HTTP_11 => !connection_tokens(&headers).any(|t| t.eq_ignore_ascii_case("close")),
        _ => connection_tokens(&headers).any(|t| t.eq_ignore_ascii_case("keep-alive")),
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Bodiless { parts, keep_alive }
}
