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
use crate::proxy::framing::{BodyFraming, HeadFields, Refusal, MAX_HEAD};
use crate::proxy::header_maps;

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
    /// A request this server leaves to the hyper server, still in the buffer, with the body framing the
    /// rules found (`None`: an HTTP/2 connection preface).
    HandOff(Option<BodyFraming>),
}

/// A bodiless request and how its connection continues.
#[derive(Debug)]
pub(super) struct Bodiless {
    pub parts: http::request::Parts,
    /// Whether the client keeps the connection open after the response.
    pub keep_alive: bool,
}

thread_local! {
    /// Each field's name and where its value lies in the head, kept between parses so that parsing a head
    /// allocates nothing besides its header map (a head refused on the way drops it).
    static SPANS: RefCell<Vec<(HeaderName, Range<usize>)>> = const { RefCell::new(Vec::new()) };
}

/// Reads the request head at the front of `buf`; `None` while it is incomplete. `first` says whether
/// this is the connection's first request, the only place an HTTP/2 preface may appear. A head is
/// checked against the framing rules ([`framing`]) before anything else happens to it, whichever server
/// goes on to serve it.
pub(super) fn parse(buf: &mut BytesMut, first: bool) -> Result<Option<Head>, Refusal> {
    if first && buf.starts_with(b"PRI ") {
        let seen = buf.len().min(H2_PREFACE.len());
        return match buf[..seen] == H2_PREFACE[..seen] {
            true => Ok(Some(Head::HandOff(None))),
            false => Err(Refusal::BadRequest("invalid HTTP/2 connection preface")),
        };
    }
    // Left uninitialised: the parser writes the fields it finds.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(&buf[..], &mut fields) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::BadRequest("malformed request head")),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| Refusal::BadRequest("invalid method"))?;
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
    let target = offset(req.path.unwrap_or_default().as_bytes());
    let mut spans = SPANS.take();
    spans.clear();
    let mut elsewhere = method == Method::CONNECT;
    for field in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            SPANS.set(spans);
            return Err(Refusal::BadRequest("invalid header field name"));
        };
        elsewhere |= name == header::UPGRADE || name == header::EXPECT;
        spans.push((name, offset(field.value)));
    }
    let head = buf.split_to(len).freeze();
    let judged = Uri::from_maybe_shared(head.slice(target))
        .map_err(|_| Refusal::BadRequest("invalid request target"))
        .and_then(|uri| {
            let mut seen = HeadFields::default();
            for (name, span) in spans.iter() {
                seen.see(name, &head[span.clone()]);
            }
            let accepted = seen.judge(version, &uri)?;
            Ok((uri, accepted, seen.repeated_length()))
        });
    let (uri, accepted, repeated_length) = match judged {
        Ok(judged) => judged,
        Err(refusal) => {
            SPANS.set(spans);
            return Err(refusal);
        }
    };
    if elsewhere || accepted.body != BodyFraming::None {
        SPANS.set(spans);
        // The head goes back in front of what followed it, for the hyper server to read again.
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Ok(Some(Head::HandOff(Some(accepted.body))));
    }
    // Room for what the plugins (credential and consumer headers) and the forwarded headers add, so the
    // map does not grow on the way upstream.
    let mut headers = header_maps::take(spans.len() + 16);
    let mut length_seen = false;
    for (name, span) in spans.drain(..) {
        if name == header::HOST && accepted.host_from_target.is_some() {
            continue;
        }
        if name == header::CONTENT_LENGTH && repeated_length {
            // Equal fields stand for one; one is passed on.
            if std::mem::replace(&mut length_seen, true) {
                continue;
            }
        }
        // The value's bytes were checked by the parser.
        let value = HeaderValue::from_maybe_shared(head.slice(span))
            .map_err(|_| Refusal::BadRequest("invalid header field value"))?;
        headers.append(name, value);
    }
    SPANS.set(spans);
    if let Some(host) = accepted.host_from_target {
        headers.insert(header::HOST, host);
    }
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
