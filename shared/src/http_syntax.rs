//! What may go into an HTTP message from configuration: header names, header values and URI paths. The
//! control plane refuses anything else at write time with the field named, and the data plane relies on
//! it, so no configured string can split a header or a request line.

/// Why a configured string cannot be used.
pub const INVALID_HEADER_NAME: &str =
    "invalid header name: use letters, digits and !#$%&'*+-.^_`|~ only";
/// Why a configured string cannot be used.
pub const INVALID_HEADER_VALUE: &str =
    "invalid header value: must not contain control characters (CR, LF, NUL, …)";
/// Why a configured string cannot be used.
pub const INVALID_PATH: &str =
    "invalid path: use URI path characters only (percent-encode spaces, control and non-ASCII characters)";

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

/// An absolute URI path: `/` followed by RFC 3986 `pchar`s, slashes and `%XX` escapes.
pub fn is_uri_path(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
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
        assert!(is_uri_path("/v1/a-b_c.d~e/%20x/:@!$&'()*+,;="));
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
            assert!(!is_uri_path(bad), "{bad:?}");
        }
    }
}
