//! What is forwarded: the upstream path (Kong's `strip_path` and `path_handling`) and the request headers
//! (hop-by-hop removed, `Host`, `X-Forwarded-*`, `X-Real-IP`, the request id). The response headers
//! Portcullis adds are [`super::stamp`]'s.

use std::borrow::Cow;

use std::sync::Arc;

use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;
use smallvec::SmallVec;

use crate::header_block::{encode_field, HeaderBlock};

use crate::runtime::{PathHandling, Scheme};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// The names a message's `Connection` headers list (trimmed, as written).
pub fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

pub fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    // One pass over the few names present rather than a hash lookup per hop-by-hop name; nothing is
    // allocated when there is nothing to remove (the usual case).
    let mut remove: Vec<HeaderName> = h
        .keys()
        .filter(|n| HOP_BY_HOP.contains(&n.as_str()))
        .cloned()
        .collect();
    if remove.is_empty() {
        return;
    }
    remove.extend(connection_tokens(h).filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()));
    for n in remove {
        h.remove(n);
    }
}

/// Joins the service path and the (possibly stripped) request path, as Kong's `path_handling` does. The
/// result borrows from the Service path or `request_path` when it is one of them or a part of it (the
/// usual case).
pub fn upstream_path<'a>(
    service_path: Option<&'a str>,
    request_path: &'a str,
    matched_len: usize,
    strip: bool,
    handling: PathHandling,
) -> Cow<'a, str> {
    let rest = if strip {
        &request_path[matched_len.min(request_path.len())..]
    } else {
        request_path
    };
    let base = service_path.unwrap_or("/");
    if rest.is_empty() {
        return Cow::Borrowed(base);
    }
    if base == "/" && rest.starts_with('/') {
        // Both handlings give the rest as it is.
        return Cow::Borrowed(rest);
    }
    Cow::Owned(match handling {
        PathHandling::V1 => {
            if base == "/" {
                format!("/{rest}")
            } else {
                format!("{base}{rest}")
            }
        }
        PathHandling::V0 => match (base.ends_with('/'), rest.starts_with('/')) {
            (true, true) => format!("{base}{}", &rest[1..]),
            (false, false) => format!("{base}/{rest}"),
            _ => format!("{base}{rest}"),
        },
    })
}

/// The host (lower case, allocating only when the client used upper case) and port of a `Host` value.
pub fn split_host_port(h: &str) -> (Cow<'_, str>, Option<u16>) {
    let h = h.trim();
    let (name, port) = if h.starts_with('[') {
        match h.find(']') {
            Some(end) => (
                &h[..=end],
                h[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (h, None),
        }
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
            _ => (h, None),
        }
    };
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    (name, port)
}

/// Where a request came from and how it reached this node.
pub struct Downstream<'a> {
    /// The client's IP address.
    pub client: &'a HeaderValue,
    pub scheme: Scheme,
    /// The host the client named (lower case, without port).
    pub host: &'a str,
    /// The port the client named, or the listener's.
    pub port: HeaderValue,
    /// The request path as received.
    pub path: &'a str,
}

// Names parsed once: inserting by `&str` would parse and validate the name on every request.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");

/// Turns the client's request headers into the upstream's, but for the [`Forwarded`] ones: hop-by-hop
/// headers removed and `Host` set (`host_value`: the client's when the Route preserves it, else the
/// Service's).
pub fn request_headers(mut headers: HeaderMap, host_value: Option<HeaderValue>) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    if let Some(v) = host_value {
        headers.insert(header::HOST, v);
    }
    headers
}

/// The headers a proxied request gets about its client and this node: `X-Forwarded-For` (the client's
/// address appended to a list the client sent), `X-Real-IP`, `X-Forwarded-Proto`, `-Host`, `-Port` and
/// `-Path`, and the request id. Each replaces what the client sent under its name. They are either put in
/// the request's header map ([`Forwarded::apply`]) or written straight into an HTTP/1.1 request head
/// ([`Forwarded::encode`]), which spares a map insertion per header.
pub struct Forwarded {
    client: HeaderValue,
    proto: HeaderValue,
    host: Option<HeaderValue>,
    port: HeaderValue,
    path: Option<HeaderValue>,
    request_id: (HeaderName, HeaderValue),
    /// Blocks of fields plugins added (see [`crate::plugins::Exchange::add_upstream_block`]), sent last.
    pub added: SmallVec<[Arc<HeaderBlock>; 1]>,
}

impl Forwarded {
    pub fn new(from: &Downstream<'_>, request_id: (&HeaderName, &HeaderValue)) -> Forwarded {
        Forwarded {
            client: from.client.clone(),
            proto: HeaderValue::from_static(from.scheme.as_str()),
            host: HeaderValue::from_str(from.host).ok(),
            port: from.port.clone(),
            path: HeaderValue::from_str(from.path).ok(),
            request_id: (request_id.0.clone(), request_id.1.clone()),
            added: SmallVec::new(),
        }
    }

    /// The headers other than `X-Forwarded-For`, in the order they are sent.
    fn fixed(&self) -> [(&HeaderName, Option<&HeaderValue>); 6] {
        [
            (&X_REAL_IP, Some(&self.client)),
            (&X_FORWARDED_PROTO, Some(&self.proto)),
            (&X_FORWARDED_HOST, self.host.as_ref()),
            (&X_FORWARDED_PORT, Some(&self.port)),
            (&X_FORWARDED_PATH, self.path.as_ref()),
            (&self.request_id.0, Some(&self.request_id.1)),
        ]
    }

    /// Whether the client's header `name` is replaced by one of these (`X-Forwarded-For` is extended
    /// instead).
    fn replaces(&self, name: &HeaderName) -> bool {
        self.fixed().iter().any(|(n, _)| *n == name)
    }

    /// Puts the headers in `headers`, replacing the client's.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let sent_for = headers.get(&X_FORWARDED_FOR);
        let for_value = match sent_for {
            Some(prev) => {
                let mut list = Vec::with_capacity(prev.len() + 2 + self.client.len());
                list.extend_from_slice(prev.as_bytes());
                list.extend_from_slice(b", ");
                list.extend_from_slice(self.client.as_bytes());
                HeaderValue::from_bytes(&list).ok()
            }
            None => Some(self.client.clone()),
        };
        if let Some(v) = for_value {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        for (name, value) in self.fixed() {
            if let Some(v) = value {
                headers.insert(name.clone(), v.clone());
            }
        }
        for block in &self.added {
            block.apply(headers);
        }
    }

    /// Appends the header fields of an HTTP/1.1 request head to `out`: those of `headers` that these
    /// do not replace, then these.
    pub fn encode(&self, headers: &HeaderMap, out: &mut BytesMut) {
        let mut sent_for = None;
        for (name, value) in headers {
            if *name == X_FORWARDED_FOR {
                sent_for.get_or_insert(value);
            } else if !self.replaces(name) {
                encode_field(out, name, &[value.as_bytes()]);
            }
        }
        match sent_for {
            Some(prev) => encode_field(
                out,
                &X_FORWARDED_FOR,
                &[prev.as_bytes(), b", ", self.client.as_bytes()],
            ),
            None => encode_field(out, &X_FORWARDED_FOR, &[self.client.as_bytes()]),
        }
        for (name, value) in self.fixed() {
            if let Some(v) = value {
                encode_field(out, name, &[v.as_bytes()]);
            }
        }
        for block in &self.added {
            out.extend_from_slice(block.wire());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_joining_like_kong() {
        // service path, request path, matched prefix length, strip_path, path_handling -> upstream path
        assert_eq!(
            upstream_path(None, "/api/users", 4, true, PathHandling::V0),
            "/users"
        );
        assert_eq!(upstream_path(None, "/api", 4, true, PathHandling::V0), "/");
        assert_eq!(
            upstream_path(Some("/anything"), "/api/users", 4, true, PathHandling::V0),
            "/anything/users"
        );
        assert_eq!(
            upstream_path(Some("/anything/"), "/api/users", 4, true, PathHandling::V0),
            "/anything/users"
        );
        assert_eq!(
            upstream_path(Some("/anything"), "/api", 4, true, PathHandling::V0),
            "/anything"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/api/users", 4, false, PathHandling::V0),
            "/s/api/users"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/fv0req", 4, true, PathHandling::V0),
            "/s/req"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/fv1req", 4, true, PathHandling::V1),
            "/sreq"
        );
    }

    #[test]
    fn forwarded_headers_replace_the_clients_in_the_map_and_on_the_wire_alike() {
        let client = HeaderValue::from_static("10.0.0.7");
        let request_id = HeaderName::from_static("x-request-id");
        let mut forwarded = Forwarded::new(
            &Downstream {
                client: &client,
                scheme: Scheme::Https,
                host: "example.com",
                port: HeaderValue::from_static("8443"),
                path: "/a/b",
            },
            (&request_id, &HeaderValue::from_static("rid-1")),
        );
        forwarded.added.push(Arc::new(HeaderBlock::new(vec![(
            HeaderName::from_static("x-credential-sub"),
            HeaderValue::from_static("alex"),
        )])));
        let mut sent = HeaderMap::new();
        for (name, value) in [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "gopher"),
            ("x-request-id", "spoofed"),
            ("accept", "*/*"),
        ] {
            sent.append(name, HeaderValue::from_static(value));
        }
        let expected = vec![
            ("accept", "*/*"),
            ("x-credential-sub", "alex"),
            ("x-forwarded-for", "1.1.1.1, 10.0.0.7"),
            ("x-forwarded-host", "example.com"),
            ("x-forwarded-path", "/a/b"),
            ("x-forwarded-port", "8443"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "10.0.0.7"),
            ("x-request-id", "rid-1"),
        ];

        let mut applied = sent.clone();
        forwarded.apply(&mut applied);
        let mut in_map: Vec<(String, String)> = applied
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        in_map.sort();

        let mut wire = BytesMut::new();
        forwarded.encode(&sent, &mut wire);
        let mut on_wire: Vec<(String, String)> = std::str::from_utf8(&wire)
            .unwrap()
            .split_terminator("\r\n")
            .map(|line| {
                let (n, v) = line.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        on_wire.sort();

        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(in_map, expected);
        assert_eq!(on_wire, expected);
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("Example.com:8000"),
            ("example.com".into(), Some(8000))
        );
        assert_eq!(split_host_port("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(split_host_port("h"), ("h".into(), None));
    }
}
