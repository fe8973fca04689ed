//! A bearer token as found in a request. From an `Authorization` field it stays in that field's value (a
//! reference-counted copy: the token's bytes are not copied); the hot path — cache keys — reads its
//! bytes, and only an identity-provider call or a log reads it as text.

use std::ops::Range;

use http::HeaderValue;

/// A token and where its bytes are.
#[derive(Debug, Clone)]
pub enum Token {
    /// Part of a field value that was visible ASCII when it was found.
    Field {
        value: HeaderValue,
        at: Range<usize>,
    },
    /// Decoded from a query string or a body.
    Decoded(String),
}

impl Token {
    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Token::Field { value, at } => &value.as_bytes()[at.clone()],
            Token::Decoded(s) => s.as_bytes(),
        }
    }

    /// The token as text (a field value's bytes are checked again; they are visible ASCII).
    pub fn as_str(&self) -> &str {
        match self {
            Token::Field { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Token::Decoded(s) => s,
        }
    }

    /// The token as an owned string.
    pub fn into_string(self) -> String {
        match self {
            Token::Decoded(s) => s,
            field => field.as_str().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_token_is_the_named_part_of_the_value() {
        let t = Token::Field {
            value: HeaderValue::from_static("Bearer  abc.def "),
            at: 8..15,
        };
        assert_eq!((t.as_bytes(), t.as_str()), (&b"abc.def"[..], "abc.def"));
        assert_eq!(t.into_string(), "abc.def");
        assert_eq!(Token::Decoded("x".into()).as_str(), "x");
    }
}
