//! What may go into an HTTP message from configuration: header names, header values and URI paths. The
//! control plane refuses anything else at write time with the field named, and the data plane relies on
//! it, so no configured string can split a header or a request line. Also the media type of a
//! `Content-Type` value, as both planes read it.

/// The media type of a `Content-Type` value (RFC 9110 8.3.1): lower case, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Why a configured string cannot be used.
pub const INVALID_HEADER_NAME: &str =
    "invalid header name: use letters, digits and !#$%&'*+-.^_`|~ only";
/// Why a configured string cannot be used.
pub const INVALID_HEADER_VALUE: &str =
    "invalid header value: must not contain control characters (CR, LF, NUL, …)";
/// Why a configured string cannot be used.
pub const INVALID_PATH: &str =
    "invalid path: use URI path characters only (percent-encode spaces, control and non-ASCII characters)";

/// Why a configured URL cannot be used.
pub const INVALID_URL: &str =
    "invalid URL: expected http(s)://host[:port][/path][?query] with a DNS name or IPv4 address";

/// What follows the scheme in [`URL_PATTERN`] and [`SERVICE_URL_PATTERN`].
macro_rules! url_after_scheme {
    () => {
        concat!(
    r"(([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?",
    r"|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    r"(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*",
    r"(\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
        )
    };
}

/// The URLs configuration accepts (the `url` shorthand, identity-provider endpoints), as a regular
/// expression shared with the OpenAPI document: `http` or `https`, a DNS name (its last label not all
/// digits) or a dotted IPv4 address, an optional port, an absolute path of URI path characters, an
/// optional query. Anything a URL parser would have to repair or reinterpret is refused instead.
pub const URL_PATTERN: &str = concat!(r"^https?://", url_after_scheme!());

/// A Service's `url` shorthand: as [`URL_PATTERN`], with `grpc`, `grpcs`, `ws` and `wss` besides `http`
/// and `https`.
pub const SERVICE_URL_PATTERN: &str = concat!(r"^(https?|grpcs?|wss?)://", url_after_scheme!());

/// The absolute URI paths configuration accepts for a Service, as a regular expression shared with the
/// OpenAPI document: `/`, or segments of URI path characters with no empty segment, maybe a trailing `/`.
pub const SERVICE_PATH_PATTERN: &str = concat!(
    r"^/(([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+",
    r"(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+)*/?)?$"
);

/// True when `s` is a URL of [`URL_PATTERN`].
pub fn is_url(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(URL_PATTERN).expect("static regex"))
        .is_match(s)
}

/// True when `s` is a Service URL of [`SERVICE_URL_PATTERN`].
pub fn is_service_url(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(SERVICE_URL_PATTERN).expect("static regex"))
        .is_match(s)
}

/// True when `s` is a Service path of [`SERVICE_PATH_PATTERN`].
pub fn is_service_path(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(SERVICE_PATH_PATTERN).expect("static regex"))
        .is_match(s)
}

/// A header name: an RFC 9110 token (at least one `tchar`).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value: no control character except horizontal tab (RFC 9110 `field-value`).
pub fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_paths() {
        assert!(is_header_name("X-Api-Key") && is_header_name("x_b"));
        for bad in ["", "a b", "a:b", "a\r\nb", "é", "a\0"] {
            assert!(!is_header_name(bad), "{bad:?}");
        }
        assert!(is_header_value("Basic abc==") && is_header_value("a\tb") && is_header_value("é"));
        for bad in ["a\r\nX-Evil: 1", "a\nb", "a\0", "a\x7f", "\r"] {
            assert!(!is_header_value(bad), "{bad:?}");
        }
        assert!(is_service_path("/v1/a-b_c.d~e/%20x/:@!$&'()*+,;="));
        for ok in ["/", "/a", "/a/", "/a/b%20c", "/v1/:id@x"] {
            assert!(is_service_path(ok), "{ok:?}");
        }
        for bad in ["", "a", "//", "/a//b", "/a b", "/%zz", "/a?b"] {
            assert!(!is_service_path(bad), "{bad:?}");
        }
        for ok in [
            "http://a",
            "https://idp.example.com:8443/realms/x/protocol",
            "http://127.0.0.1:9080/introspect?x=1&y=%20",
            "http://a-b.c1/",
        ] {
            assert!(is_url(ok), "{ok:?}");
            let u = url::Url::parse(ok).unwrap();
            assert!(u.host_str().is_some());
        }
        for bad in [
            "ftp://a",
            "http://",
            "http://a b",
            "http://1.2.3.999",
            "http://a.99",
            "http://a:65536",
            "http://a:080",
            "http://[::1]/",
            "http://a/b c",
            "HTTP://a",
            "http://a#f",
        ] {
            assert!(!is_url(bad), "{bad:?}");
        }
        for bad in [
            "v1",
            "/a b",
            "/a\r\nHost: x",
            "/%zz",
            "/%2",
            "/é",
            "/a?b",
            "/a#b",
        ] {
            assert!(!is_service_path(bad), "{bad:?}");
        }
    }
}
