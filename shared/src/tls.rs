//! TLS entities: a Certificate (a PEM certificate chain and its private key, optionally a second pair
//! with another key type), an SNI (a server name selecting a Certificate) and a CA Certificate (trusted
//! when a Service verifies its upstream), and [`KeyPair::parse`] and [`ca_der`], the one reading of their
//! PEM that both planes use: the control plane refuses exactly what a node could not load.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entity::{
    finish, read_common, read_ref, validate_host_name, ForeignKey, Kind, ParseCtx, References,
};
use crate::error::StateError;
use crate::schema::Fields;

/// A server certificate with its private key. `key` and `key_alt` are secrets: the Admin API reads them
/// back redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    pub id: Uuid,
    pub cert: String,
    pub key: String,
    pub cert_alt: Option<String>,
    pub key_alt: Option<String>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A server name (exact, `*.example.com` or `example.*`) that selects a Certificate during the TLS
/// handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sni {
    pub id: Uuid,
    pub name: String,
    pub certificate: ForeignKey,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A CA certificate a Service may trust for its upstream (`ca_certificates`). `cert_digest` is the hex
/// SHA-256 of the certificate's DER, computed when absent and unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaCertificate {
    pub id: Uuid,
    pub cert: String,
    pub cert_digest: String,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The DER of a PEM holding exactly one CA certificate (basic constraints `CA:TRUE`), and its `notAfter`.
pub fn ca_der(pem: &str) -> Result<(CertificateDer<'static>, i64), String> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    let [der] = <[_; 1]>::try_from(certs).map_err(|certs: Vec<_>| {
        format!(
            "expected exactly one PEM 'CERTIFICATE' block, found {}",
            certs.len()
        )
    })?;
    let not_after = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) if !cert.is_ca() => {
            return Err(
                "not a CA certificate: the basic constraints extension must say CA:TRUE".into(),
            )
        }
        Ok((_, cert)) => cert.validity().not_after.timestamp(),
        Err(e) => return Err(format!("invalid certificate: {e}")),
    };
    Ok((der, not_after))
}

impl CaCertificate {
    /// Parses and validates a CA Certificate: one PEM CA certificate, not expired; `cert_digest`, when
    /// given, must be its digest.
    pub fn parse(v: &serde_json::Value, ctx: &ParseCtx<'_>) -> Result<CaCertificate, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let cert = f.string("cert").unwrap_or_default();
        let given = f.opt_string("cert_digest");
        let mut cert_digest = String::new();
        if !cert.is_empty() {
            match ca_der(&cert) {
                Ok((_, not_after)) if not_after < ctx.now => f.error(
                    "cert",
                    format!("the certificate expired (notAfter {not_after} Unix seconds)"),
                ),
                Ok((der, _)) => {
                    cert_digest = crate::digest::sha256_hex(&der);
                    if given
                        .as_ref()
                        .is_some_and(|g| !g.eq_ignore_ascii_case(&cert_digest))
                    {
                        f.error("cert_digest", "is not the SHA-256 of the certificate");
                    }
                }
                Err(m) => f.error("cert", m),
            }
        }
        let c = CaCertificate {
            id,
            cert,
            cert_digest,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, References::new(), c)
    }
}

/// The kind of a private key; a Certificate's two pairs must differ in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
    Ed25519,
    Other,
}

/// A certificate chain and its private key, parsed and checked against each other.
pub struct KeyPair {
    /// Ready for a TLS server.
    pub certified: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
    /// The private key's kind.
    pub kind: KeyKind,
}

/// Which of the two PEM fields a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// The certificate PEM.
    Cert(String),
    /// The private key PEM, or its match with the certificate.
    Key(String),
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairError::Cert(m) => write!(f, "cert: {m}"),
            PairError::Key(m) => write!(f, "key: {m}"),
        }
    }
}

impl KeyPair {
    /// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1), and
    /// checks that the key belongs to the leaf certificate.
    pub fn parse(cert_pem: &str, key_pem: &str) -> Result<KeyPair, PairError> {
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| PairError::Cert(format!("invalid PEM: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(PairError::Cert(
                "no certificate found: expected a PEM 'CERTIFICATE' block".into(),
            ));
        };
        let not_after = match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => cert.validity().not_after.timestamp(),
            Err(e) => return Err(PairError::Cert(format!("invalid certificate: {e}"))),
        };
        let key: PrivateKeyDer<'static> = match rustls_pemfile::private_key(&mut key_pem.as_bytes())
        {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Err(PairError::Key(
                    "no private key found: expected a PEM 'PRIVATE KEY' block".into(),
                ))
            }
            // The parser's message may quote a line of the key: it is not repeated.
            Err(_) => {
                return Err(PairError::Key(
                    "invalid PEM: the private key block is malformed".into(),
                ))
            }
        };
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| PairError::Key(format!("unsupported private key: {e}")))?;
        let kind = match signing.algorithm() {
            rustls::SignatureAlgorithm::RSA => KeyKind::Rsa,
            rustls::SignatureAlgorithm::ECDSA => KeyKind::Ecdsa,
            rustls::SignatureAlgorithm::ED25519 => KeyKind::Ed25519,
            _ => KeyKind::Other,
        };
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(PairError::Key(
                    "the private key does not match the certificate".into(),
                ))
            }
        }
        Ok(KeyPair {
            certified: Arc::new(certified),
            not_after,
            kind,
        })
    }
}

/// Reads one certificate/key pair into `f`, naming the fields of any problem; `now` refuses an expired
/// certificate.
fn check_pair(
    f: &mut Fields<'_>,
    fields: (&str, &str),
    pem: (&str, &str),
    now: i64,
) -> Option<KeyKind> {
    match KeyPair::parse(pem.0, pem.1) {
        Ok(pair) if pair.not_after < now => {
            f.error(
                fields.0,
                format!(
                    "the certificate expired (notAfter {} Unix seconds)",
                    pair.not_after
                ),
            );
            None
        }
        Ok(pair) => Some(pair.kind),
        Err(PairError::Cert(m)) => {
            f.error(fields.0, m);
            None
        }
        Err(PairError::Key(m)) => {
            f.error(fields.1, m);
            None
        }
    }
}

impl Certificate {
    /// Parses and validates a Certificate: both PEMs parse, each key matches its certificate, neither
    /// certificate has expired, and an alternative pair comes whole with a key of another kind.
    pub fn parse(v: &serde_json::Value, ctx: &ParseCtx<'_>) -> Result<Certificate, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let cert = f.string("cert").unwrap_or_default();
        let key = f.string("key").unwrap_or_default();
        let cert_alt = f.opt_string("cert_alt");
        let key_alt = f.opt_string("key_alt");
        let primary = if cert.is_empty() || key.is_empty() {
            None
        } else {
            check_pair(&mut f, ("cert", "key"), (&cert, &key), ctx.now)
        };
        match (&cert_alt, &key_alt) {
            (Some(c), Some(k)) => {
                let alt = check_pair(&mut f, ("cert_alt", "key_alt"), (c, k), ctx.now);
                if let (Some(a), Some(b)) = (primary, alt) {
                    if a == b {
                        f.error(
                            "cert_alt",
                            "the alternative certificate must have another key type than 'cert' (e.g. RSA and ECDSA)",
                        );
                    }
                }
            }
            (Some(_), None) => f.error("key_alt", "required when 'cert_alt' is set"),
            (None, Some(_)) => f.error("cert_alt", "required when 'key_alt' is set"),
            (None, None) => {}
        }
        let c = Certificate {
            id,
            cert,
            key,
            cert_alt,
            key_alt,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, References::new(), c)
    }

    /// A copy whose private keys are replaced by [`crate::plugins::REDACTED`].
    pub fn redacted(&self) -> Certificate {
        let mut c = self.clone();
        c.key = crate::plugins::REDACTED.to_string();
        if c.key_alt.is_some() {
            c.key_alt = Some(crate::plugins::REDACTED.to_string());
        }
        c
    }
}

impl Sni {
    /// Parses and validates an SNI: a host name (one leading or trailing `*` label, no port) and the
    /// Certificate it selects.
    pub fn parse(v: &serde_json::Value, ctx: &ParseCtx<'_>) -> Result<Sni, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = f.string("name").unwrap_or_default();
        if !name.is_empty() {
            if name.contains(':') {
                f.error("name", "must not have a port");
            } else if let Err(m) = validate_host_name(&name) {
                f.error("name", m);
            } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
                f.error("name", "must not be an IP address");
            }
        }
        let certificate = read_ref(&mut f, &mut refs, ctx, "certificate", Kind::Certificate);
        if certificate.is_none() && !f.has("certificate") {
            f.error("certificate", "required field missing");
        }
        let sni = Sni {
            id,
            name: name.to_ascii_lowercase(),
            certificate: certificate.unwrap_or(ForeignKey { id: Uuid::nil() }),
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, refs, sni)
    }
}

#[cfg(test)]
mod tests;
