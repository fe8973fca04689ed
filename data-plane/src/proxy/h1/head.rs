//! HTTP/1.1 message heads on an upstream connection: the request head as bytes, and the response head
//! parsed into `http` parts, its body's framing (RFC 9112, 6.3) and whether the connection can be kept.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Response, StatusCode, Version};

use super::super::forward::Forwarded;
use super::body::{Chunked, Framing};
use crate::header_block::encode_field;
use crate::proxy::forward::connection_tokens;
use crate::proxy::framing;
use crate::proxy::header_maps;

/// The request as it goes upstream; the body is empty.
pub(in crate::proxy) struct BodylessRequest<'a> {
    pub method: &'a Method,
    pub path_and_query: &'a PathAndQuery,
    pub headers: &'a HeaderMap,
    /// The forwarded headers, when they are not in `headers` yet.
    pub forwarded: Option<&'a Forwarded>,
}

/// Longest response head accepted.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields accepted (as hyper's client, which reads the pooled path's answers).
const MAX_HEADERS: usize = 100;

/// Appends the request line and header fields to `out`, ready to write: the forwarded headers of
/// `req.forwarded` are written with the others. `Host` comes from the headers, or from `authority` when
/// they have none.
pub(super) fn encode_request(req: &BodylessRequest<'_>, authority: &str, out: &mut BytesMut) {
    let fields: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    out.reserve(req.path_and_query.as_str().len() + fields + 256);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(req.path_and_query.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match req.forwarded {
        Some(forwarded) => forwarded.encode(req.headers, out),
        None => {
            for (name, value) in req.headers {
                encode_field(out, name, &[value.as_bytes()]);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
pub(super) struct ResponseHead {
    pub parts: http::response::Parts,
    pub framing: Framing,
    /// Whether the connection can carry another request once the body is read.
    pub keep_alive: bool,
}

/// Why a response head is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HeadError(pub &'static str);

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid response from the upstream: {}", self.0)
    }
}

thread_local! {
    /// Each field's name and where its value lies in the head, kept between parses so that parsing a head
    /// allocates nothing besides its header map (a head refused on the way drops it).
    static SPANS: RefCell<Vec<(HeaderName, Range<usize>)>> = const { RefCell::new(Vec::new()) };
}

/// The response head at the start of `buf`, removed from it (the body's first bytes stay); `None`
/// while it is incomplete. Interim answers (1xx other than 101) are skipped.
pub(super) fn parse_response(buf: &mut BytesMut) -> Result<Option<ResponseHead>, HeadError> {
    loop {
        // Left uninitialised: the parser writes the fields it finds.
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &buf[..],
            &mut fields,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HeadError("response head too large"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError("too many header fields"))
            }
            Err(_) => return Err(HeadError("malformed response head")),
        };
        let code = resp.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            continue;
        }
        let status = match StatusCode::from_u16(code) {
            Ok(s) if code != 101 => s,
            _ => return Err(HeadError("unexpected status code")),
        };
        let version = match resp.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        // Names now (they are copied or static), values as offsets into the head kept below.
        let base = buf.as_ptr() as usize;
        let mut spans = SPANS.take();
        spans.clear();
        for field in resp.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| HeadError("invalid header field name"))?;
            let start = field.value.as_ptr() as usize - base;
            spans.push((name, start..start + field.value.len()));
        }
        let head = buf.split_to(len).freeze();
        // Room for what the proxy adds (latencies, Via, request id, a cookie), so the map never grows.
        let mut headers = header_maps::take(spans.len() + 6);
        for (name, span) in spans.drain(..) {
            let value = HeaderValue::from_maybe_shared(head.slice(span))
                .map_err(|_| HeadError("invalid header field value"))?;
            headers.append(name, value);
        }
        SPANS.set(spans);
        let (framing, delimited) = framing(status, version, &mut headers)?;
        let keep_alive = version == Version::HTTP_11 && delimited && !closes(&headers);
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        return Ok(Some(ResponseHead {
            parts,
            framing,
            keep_alive,
        }));
    }
}

/// How the body of a response with `status` and `headers` ends, and whether its end is known without
/// the connection closing (RFC 9112, 6.3).
fn framing(
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), HeadError> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    if version == Version::HTTP_10 && headers.contains_key(header::TRANSFER_ENCODING) {
        // Its framing is faulty (RFC 9112, 6.1), as hyper's client, on the pooled path, also decides.
        return Err(HeadError("transfer-encoding in an HTTP/1.0 response"));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // The last coding decides (RFC 9112, 6.3): chunked, or else the body runs until the close. A
        // list with an empty element or a name that is not a token, and chunked with parameters (it has
        // none, RFC 9112 7), are refused: implementations read those apart.
        let values = headers.get_all(header::TRANSFER_ENCODING);
        let list = framing::codings(values.iter().map(HeaderValue::as_bytes))
            .ok_or(HeadError("invalid transfer-encoding"))?;
        if list
            .iter()
            .any(|(name, params)| *params && framing::is_chunked(name))
        {
            return Err(HeadError("parameters on the chunked coding"));
        }
        let chunked = list
            .last()
            .is_some_and(|(name, _)| framing::is_chunked(name));
        // With a Content-Length beside it, the coding wins and the length goes (it must not reach the
        // client); the message is suspect: read it, but never reuse the connection.
        let alone = !framing::coding_overrides_length(headers);
        return Ok(match chunked {
            true => (Framing::Chunked(Chunked::default()), alone),
            false => (Framing::UntilClose, false),
        });
    }
    let values = headers.get_all(header::CONTENT_LENGTH);
    let length =
        content_length(values.iter().map(HeaderValue::as_bytes)).map_err(|e| HeadError(e.0))?;
    Ok(match length {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

/// Why a message's `Content-Length` fields cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::proxy) struct BadLength(pub &'static str);

/// The length that a message's `Content-Length` field values give (a list of equal numbers is that
/// number, RFC 9112 6.3); `None` without the field. Values that are not digits, or that disagree, are
/// an error.
pub(in crate::proxy) fn content_length<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, BadLength> {
    let mut length = None;
    for part in values.flat_map(|v| v.split(|&b| b == b',')) {
        let n = parse_length(part.trim_ascii()).ok_or(BadLength("invalid content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(BadLength("conflicting content-length values"));
        }
        length = Some(n);
    }
    Ok(length)
}

/// A Content-Length number: digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether the upstream says it closes the connection after this response.
fn closes(headers: &HeaderMap) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("close"))
}
