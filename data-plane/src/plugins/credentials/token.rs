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

/// Who a credential is, for counting its requests: the first 128 bits of the SHA-256 of its token, never
/// the token itself. Auth plugins that already hash the token for their caches reuse that digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId(pub [u8; 16]);

impl CredentialId {
    /// The id of a token whose SHA-256 is `digest`.
    pub fn from_sha256(digest: &[u8; 32]) -> CredentialId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        CredentialId(id)
    }

    /// The id of `token`.
    pub fn of(token: &[u8]) -> CredentialId {
        use sha2::Digest;
        CredentialId::from_sha256(&sha2::Sha256::digest(token).into())
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hex = [0u8; 32];
        hex::encode_to_slice(self.0, &mut hex).map_err(|_| std::fmt::Error)?;
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}
