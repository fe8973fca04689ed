//! Pairing tokens: `pct1.<id>.<secret>.<ca-fingerprint>`.
//!
//! The token carries the SHA-256 fingerprint of the cluster CA certificate (DER), so a new node needs only
//! the control plane's address and the token: it pins the CA by that fingerprint. The control plane stores
//! only the SHA-256 of the secret.

const PREFIX: &str = "pct1";

/// A parsed pairing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingToken {
    /// Public identifier of the token (listed by the Admin API).
    pub id: String,
    /// The secret part; only its hash is stored on the control plane.
    pub secret: String,
    /// Hex SHA-256 of the cluster CA certificate (DER).
    pub ca_fingerprint: String,
}

impl PairingToken {
    /// Renders the token string handed to operators.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}.{}.{}.{}",
            self.id, self.secret, self.ca_fingerprint
        )
    }

    /// Parses a token string, saying what is wrong with it (never echoing the secret).
    pub fn parse(s: &str) -> Result<PairingToken, String> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        if parts.len() != 4 || parts[0] != PREFIX {
            return Err(
                "malformed pairing token: expected pct1.<id>.<secret>.<ca-fingerprint>".into(),
            );
        }
        let hex_ok =
            |p: &str, len: usize| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_ok(parts[1], 16) {
            return Err("malformed pairing token: bad id".into());
        }
        if !hex_ok(parts[2], 64) {
            return Err("malformed pairing token: bad secret".into());
        }
        if !hex_ok(parts[3], 64) {
            return Err("malformed pairing token: bad CA fingerprint".into());
        }
        Ok(PairingToken {
            id: parts[1].to_string(),
            secret: parts[2].to_string(),
            ca_fingerprint: parts[3].to_ascii_lowercase(),
        })
    }

    /// Hex SHA-256 of the secret, which is what the control plane stores.
    pub fn secret_hash(&self) -> String {
        crate::digest::sha256_hex(self.secret.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let t = PairingToken {
            id: "0123456789abcdef".into(),
            secret: "a".repeat(64),
            ca_fingerprint: "b".repeat(64),
        };
        assert_eq!(PairingToken::parse(&t.encode()).unwrap(), t);
        assert!(PairingToken::parse("nope")
            .unwrap_err()
            .contains("malformed"));
        let forged = t.encode().replace("pct1.0123", "pct1.zz23");
        assert!(PairingToken::parse(&forged).is_err());
    }
}
