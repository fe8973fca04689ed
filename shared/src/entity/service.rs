//! Parsing a Service, with Kong's `url` shorthand.

use serde_json::Value;

use super::{
    finish, host_pattern, parse_id, read_common, read_name, read_ref, Kind, ParseCtx, References,
    Service,
};
use crate::error::StateError;
use crate::http_syntax;
use crate::keyword::Keyword;
use crate::protocol::Protocol;
use crate::schema::Fields;

/// A Service `url` split as Kong splits one it cannot otherwise read: `scheme://host:port/path`, each
/// part absent when empty; no `://` makes the whole text the path.
struct UrlParts<'a> {
    scheme: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<&'a str>,
    path: Option<&'a str>,
    /// Whether a `?` or `#` follows.
    query: bool,
}

impl<'a> UrlParts<'a> {
    fn split(raw: &'a str) -> UrlParts<'a> {
        let query = raw.contains(['?', '#']);
        let raw = raw.split(['?', '#']).next().unwrap_or_default();
        let non_empty = |s: &'a str| (!s.is_empty()).then_some(s);
        let Some((scheme, rest)) = raw.split_once("://") else {
            return UrlParts {
                scheme: None,
                host: None,
                port: None,
                path: non_empty(raw),
                query,
            };
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // A port follows the last `:` unless that is inside a bracketed IPv6 address.
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        UrlParts {
            scheme: non_empty(scheme),
            host: non_empty(host),
            port: port.and_then(non_empty),
            path: non_empty(path),
            query,
        }
    }
}

fn timeout(f: &mut Fields<'_>, name: &str) -> u64 {
    f.int_or(name, 1, i32::MAX as i64, 60_000) as u64
}

impl Service {
    /// Parses and validates a Service, expanding the `url` shorthand.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Service, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = read_name(&mut f);
        let mut protocol = f.opt_keyword::<Protocol>("protocol");
        let mut host = f.opt_string("host");
        let mut port = f.opt_int("port", 0, 65535);
        let mut path = f.opt_string("path");
        if let Some(raw) = f.opt_string("url") {
            match url::Url::parse(&raw) {
                Ok(u) if http_syntax::is_service_url(&raw) && u.query().is_none() => {
                    let scheme = Protocol::parse(u.scheme()).unwrap_or(Protocol::Http);
                    protocol = Some(scheme);
                    host = u.host_str().map(str::to_string);
                    port = Some(i64::from(u.port().unwrap_or(scheme.default_port())));
                    // Non-special schemes (grpc, grpcs) have an empty path where http has "/".
                    path = if u.path().is_empty() || (u.path() == "/" && !raw.ends_with('/')) {
                        None
                    } else {
                        Some(u.path().to_string())
                    };
                }
                // As Kong: the parts of a URL that does not parse are checked as the fields they
                // stand for, so the error names `host`, `path`, `port` or `protocol`.
                _ => {
                    let parts = UrlParts::split(&raw);
                    if parts.query {
                        f.error("url", "must not have a query or a fragment");
                    }
                    if let Some(scheme) = parts.scheme {
                        match Protocol::parse(scheme) {
                            Some(p) => protocol = Some(p),
                            None => f.error(
                                "protocol",
                                format!("expected one of: {}", Protocol::names().join(", ")),
                            ),
                        }
                    }
                    // A URL's host is a DNS name or an IPv4 address (no `1.2.3.999`).
                    if let Some(h) = parts.host {
                        if !http_syntax::is_service_url(&format!("http://{h}")) {
                            f.error("host", "invalid hostname");
                        }
                    }
                    host = parts.host.map(str::to_string);
                    port = match parts.port.map(str::parse::<u16>) {
                        None => None,
                        Some(Ok(n)) => Some(i64::from(n)),
                        Some(Err(_)) => {
                            f.error("port", "value should be between 0 and 65535");
                            None
                        }
                    };
                    path = parts.path.map(str::to_string);
                }
            }
        }
        if host.as_deref().is_some_and(|h| !host_pattern().is_match(h)) {
            f.error("host", "invalid hostname");
        }
        if let Some(p) = &path {
            if !p.starts_with('/') {
                f.error("path", "should start with: /");
            } else if p.contains('?') || p.contains('#') || p.contains("//") {
                f.error(
                    "path",
                    "must not contain a query, a fragment or empty segments",
                );
            } else {
                f.check(
                    "path",
                    p,
                    http_syntax::is_service_path,
                    http_syntax::INVALID_PATH,
                );
            }
        }
        let protocol = protocol.unwrap_or(Protocol::Http);
        if protocol.is_grpc() && path.is_some() {
            f.error(
                "path",
                "value must be null: a path can only be set when 'protocol' is 'http' or 'https'",
            );
        }
        let host = host.unwrap_or_else(|| {
            f.error("host", "required field missing");
            String::new()
        });
        let default_port = i64::from(protocol.default_port());
        let retries = f.int_or("retries", 0, 32767, 5) as u32;
        let connect_timeout = timeout(&mut f, "connect_timeout");
        let write_timeout = timeout(&mut f, "write_timeout");
        let read_timeout = timeout(&mut f, "read_timeout");
        let enabled = f.bool_or("enabled", true);
        let tls_verify = f.opt_bool("tls_verify");
        let tls_verify_depth = f.opt_int("tls_verify_depth", 0, 64).map(|d| d as u32);
        let mut refs = References::new();
        let client_certificate = read_ref(
            &mut f,
            &mut refs,
            ctx,
            "client_certificate",
            Kind::Certificate,
        );
        let ca_certificates = f.opt_strings("ca_certificates").map(|ids| {
            ids.iter()
                .enumerate()
                .filter_map(|(i, key)| {
                    let Some(id) = parse_id(key) else {
                        f.error(&format!("ca_certificates.{}", i + 1), "expected a UUID");
                        return None;
                    };
                    let found = ctx.resolver.resolve(Kind::CaCertificate, key);
                    if found.is_none() {
                        refs.missing("ca_certificates", &id, Kind::CaCertificate);
                    }
                    found
                })
                .collect::<Vec<_>>()
        });
        let svc = Service {
            id,
            name,
            protocol,
            host,
            port: port.unwrap_or(default_port) as u16,
            path,
            retries,
            connect_timeout,
            write_timeout,
            read_timeout,
            enabled,
            tls_verify,
            tls_verify_depth,
            client_certificate,
            ca_certificates,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, refs, svc)
    }
}
