//! The framing rules of HTTP/1.x messages that pass through the proxy, beyond their syntax (RFC 9112): how
//! a request body is delimited, which host a request is for, what is refused before anything is
//! forwarded, and which length a response with both `Transfer-Encoding` and `Content-Length` has.
//!
//! Requests reach these rules from both servers that parse client heads: `h1_server` applies them to the
//! requests it reads itself and before it hands a connection to hyper's server, and
//! [`super::hyper_service`] to the HTTP/1.x requests hyper's server parsed (TLS connections, and those
//! after a hand-off). ADR 16 lists every rule in one table; the `conformance` module of the end-to-end
//! tests keeps it true.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri, Version};

/// Longest request head accepted, in bytes (as nginx's `large_client_header_buffers` of 4 × 8 KiB, with
/// room for long tokens).
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a request head is refused. The answer closes the connection: whatever follows the head cannot be
/// framed with confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not a valid HTTP/1.x request head, or its framing or host is ambiguous.
    BadRequest(&'static str),
    /// 431: the head is too large or has too many fields.
    TooLarge,
    /// 501: a transfer coding other than `chunked`.
    NotImplemented(&'static str),
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The `kind` label of `portcullis_client_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::TooLarge => "too_large",
            Refusal::NotImplemented(_) => "not_implemented",
        }
    }

    /// What was wrong, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) | Refusal::NotImplemented(why) => why,
            Refusal::TooLarge => "request head too large",
        }
    }
}

/// The fields of a request head that decide its framing and host, gathered one field at a time.
#[derive(Debug, Default)]
pub struct HeadFields<'a> {
    hosts: u32,
    host: Option<&'a [u8]>,
    codings: u32,
    coding: Option<&'a [u8]>,
    lengths: u32,
    length: Option<&'a [u8]>,
    /// Two `Content-Length` fields that disagree.
    conflicting_lengths: bool,
}

/// How a request's body is delimited (RFC 9112, 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither field, or `Content-Length: 0`.
    None,
    Length(u64),
    Chunked,
}

/// A request head that passed the rules.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub body: BodyFraming,
    /// The host the request is for when its target is in absolute form, which then replaces the `Host`
    /// field (RFC 9112, 3.2.2).
    pub host_from_target: Option<HeaderValue>,
}

impl<'a> HeadFields<'a> {
    /// Takes note of one field.
    pub fn see(&mut self, name: &HeaderName, value: &'a [u8]) {
        if name == header::HOST {
            self.hosts += 1;
            self.host.get_or_insert(value);
        } else if name == header::TRANSFER_ENCODING {
            self.codings += 1;
            self.coding.get_or_insert(value);
        } else if name == header::CONTENT_LENGTH {
            self.lengths += 1;
            // Equal Content-Length fields stand for one (RFC 9112, 6.3); different ones are refused.
            match self.length {
                None => self.length = Some(value),
                Some(first) => self.conflicting_lengths |= first != value,
            }
        }
    }

    /// Takes note of every field of `headers`.
    pub fn of_map(headers: &'a HeaderMap) -> HeadFields<'a> {
        let mut fields = HeadFields::default();
        for name in [
            header::HOST,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ] {
            for value in headers.get_all(&name) {
                fields.see(&name, value.as_bytes());
            }
        }
        fields
    }

    /// Whether the head had more than one `Content-Length` field (all equal, or [`Self::judge`] refuses).
    pub fn repeated_length(&self) -> bool {
        self.lengths > 1
    }

    /// Applies the rules to a head of `version` with request target `uri`.
    pub fn judge(&self, version: Version, uri: &Uri) -> Result<Accepted, Refusal> {
        let host_from_target = target_host(uri)?;
        match self.hosts {
            0 if version == Version::HTTP_11 => {
                return Err(Refusal::BadRequest(
                    "an HTTP/1.1 request without a Host field",
                ))
            }
            0 | 1 => {}
            _ => return Err(Refusal::BadRequest("more than one Host field")),
        }
        if let Some(host) = self.host {
            valid_host(host)?;
        }
        let body = match (self.coding, self.length) {
            (Some(coding), _) => {
                if version != Version::HTTP_11 {
                    return Err(Refusal::BadRequest(
                        "Transfer-Encoding in an HTTP/1.0 request",
                    ));
                }
                if self.codings > 1 {
                    return Err(Refusal::BadRequest("more than one Transfer-Encoding field"));
                }
                transfer_coding(coding)?;
                // With a Content-Length beside it, Transfer-Encoding wins (RFC 9112, 6.3): the length
                // is dropped and the connection closed after the answer, as hyper's server does.
                BodyFraming::Chunked
            }
            (None, Some(_)) if self.conflicting_lengths => {
                return Err(Refusal::BadRequest("conflicting Content-Length fields"))
            }
            (None, Some(length)) => match content_length(length)? {
                0 => BodyFraming::None,
                n => BodyFraming::Length(n),
            },
            (None, None) => BodyFraming::None,
        };
        Ok(Accepted {
            body,
            host_from_target,
        })
    }
}

/// The host of an absolute-form target, or `None` for the other forms. Only `http` and `https` targets
/// with a host and no user information are accepted (RFC 9110, 4.2.4).
fn target_host(uri: &Uri) -> Result<Option<HeaderValue>, Refusal> {
    let Some(authority) = uri.authority() else {
        return Ok(None);
    };
    // An authority-form target (CONNECT) has no scheme; the CONNECT method is refused later on.
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
        None => {}
        Some(_) => return Err(Refusal::BadRequest("a request target with another scheme")),
    }
    valid_authority(authority)?;
    HeaderValue::from_str(authority.as_str())
        .map(Some)
        .map_err(|_| Refusal::BadRequest("invalid request target"))
}

/// A `Host` value.
fn valid_host(value: &[u8]) -> Result<(), Refusal> {
    match is_authority(value.trim_ascii()) {
        true => Ok(()),
        false => Err(Refusal::BadRequest("invalid Host field")),
    }
}

fn valid_authority(authority: &Authority) -> Result<(), Refusal> {
    match is_authority(authority.as_str().as_bytes()) {
        true => Ok(()),
        false => Err(Refusal::BadRequest("invalid request target")),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986, 3.2.2): an IP literal in brackets, or a name of unreserved
/// characters, percent-escapes and sub-delimiters other than `,` (so a list is never taken for a host);
/// no user information. Checked byte by byte, without allocating.
fn is_authority(s: &[u8]) -> bool {
    let (host, port) = match s.first() {
        Some(b'[') => match s.iter().position(|&b| b == b']') {
            Some(end) => (&s[..=end], &s[end + 1..]),
            None => return false,
        },
        _ => match s.iter().rposition(|&b| b == b':') {
            Some(colon) => (&s[..colon], &s[colon..]),
            None => (s, &[][..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty()
                && digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
                    <= 65535
        }
        _ => false,
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b":.".contains(&b))
        }
        _ => {
            !host.is_empty()
                && host.iter().enumerate().all(|(i, &b)| match b {
                    b'%' => host
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
                    _ => b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=".contains(&b),
                })
        }
    };
    port_ok && host_ok
}

/// A request's `Transfer-Encoding`: exactly `chunked` is accepted. A well-formed list that ends in
/// `chunked` names codings the node does not implement (501, RFC 9112 6.1); any other value leaves the
/// body's length unknown (400, RFC 9112 6.3).
fn transfer_coding(value: &[u8]) -> Result<(), Refusal> {
    if value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
        return Ok(());
    }
    let chunked_last = codings(std::iter::once(value))
        .is_some_and(|list| list.last().is_some_and(|(name, _)| is_chunked(name)));
    match chunked_last {
        true => Err(Refusal::NotImplemented(
            "a transfer coding other than chunked",
        )),
        false => Err(Refusal::BadRequest(
            "Transfer-Encoding does not end in chunked",
        )),
    }
}

/// The codings a `Transfer-Encoding` list names (`values`: its fields), in order, each with whether
/// parameters follow its name; `None` when an element is empty or its name is not a token (RFC 9110
/// 5.6.1, 10.1.4). Requests and upstream answers read the list with this one grammar.
pub(crate) fn codings<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Vec<(&'a [u8], bool)>> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|element| {
            let mut parts = element.splitn(2, |&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let token = !name.is_empty() && name.iter().all(|&b| is_tchar(b));
            token.then_some((name, parts.next().is_some()))
        })
        .collect()
}

/// Whether a coding name is `chunked`.
pub(crate) fn is_chunked(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"chunked")
}

/// A request's `Content-Length`: one number of decimal digits (a list, or fields that disagree, are
/// refused).
fn content_length(value: &[u8]) -> Result<u64, Refusal> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Refusal::BadRequest("invalid Content-Length field"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// RFC 9110 5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The rules for a request that hyper's server parsed (which has already refused an HTTP/1.0 coding,
/// conflicting lengths and a last coding other than `chunked`, dropped a `Content-Length` beside a
/// `Transfer-Encoding` and folded equal ones). An absolute-form target's host replaces `Host`. Over
/// HTTP/2 the only rule is that a `Host` field names the same authority as `:authority` (RFC 9113,
/// 8.3.1).
pub fn check_parsed<B>(req: &mut http::Request<B>) -> Result<(), Refusal> {
    if req.version() >= Version::HTTP_2 {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        return match (hosts.next(), hosts.next(), req.uri().authority()) {
            (Some(_), Some(_), _) => Err(Refusal::BadRequest("more than one Host field")),
            (Some(host), None, Some(authority))
                if !host
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
            {
                Err(Refusal::BadRequest("Host and :authority differ"))
            }
            _ => Ok(()),
        };
    }
    // hyper's server counts its buffer limit in reads, so a head may pass it by up to a read's size:
    // the head's own size (as it was sent, but for spaces around values) decides.
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len() + 8);
    let fields: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if req.method().as_str().len() + target + 12 + fields + 2 > MAX_HEAD {
        return Err(Refusal::TooLarge);
    }
    let accepted = HeadFields::of_map(req.headers()).judge(req.version(), req.uri())?;
    if let Some(host) = accepted.host_from_target {
        req.headers_mut().insert(header::HOST, host);
    }
    Ok(())
}

/// The response rule both upstream paths share: with `Transfer-Encoding`, a `Content-Length` beside it
/// is removed (RFC 9112, 6.3: the coding wins, and the length must not be passed on). Returns whether
/// one was, in which case the upstream connection must not carry another exchange.
pub fn coding_overrides_length(headers: &mut HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return headers.remove(header::CONTENT_LENGTH).is_some();
    }
    false
}

#[cfg(test)]
mod tests;
