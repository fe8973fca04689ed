//! The snapshot's certificates, parsed once per configuration: served by the TLS listener by SNI name
//! ([`ServerCertificates`]) and presented by Services as client certificates.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use shared::tls::KeyPair;
use shared::ConfigState;

/// A Certificate ready to serve: its primary pair and, when it has one, its pair of another key type.
#[derive(Clone)]
struct Served {
    primary: Arc<CertifiedKey>,
    alt: Option<Arc<CertifiedKey>>,
}

impl Served {
    /// The primary pair unless the client cannot verify its key type and the alternative suits it.
    fn choose(&self, schemes: &[SignatureScheme]) -> Arc<CertifiedKey> {
        match &self.alt {
            Some(alt)
                if self.primary.key.choose_scheme(schemes).is_none()
                    && alt.key.choose_scheme(schemes).is_some() =>
            {
                alt.clone()
            }
            _ => self.primary.clone(),
        }
    }
}

/// The server certificates of one configuration, by SNI name: exact names, `*.example.com` (one leading
/// label) and `example.*` (one trailing label), looked up in that order.
#[derive(Default)]
pub struct ServerCertificates {
    by_name: HashMap<String, Served>,
    /// Every Certificate, parsed, by id: also what Services present as their client certificate.
    by_id: HashMap<uuid::Uuid, Served>,
}

impl ServerCertificates {
    /// Parses every Certificate of `state` once (with the code the control plane validated them with)
    /// and indexes it under its SNIs. A Certificate that does not parse rejects the configuration.
    pub fn build(state: &ConfigState) -> Result<ServerCertificates, String> {
        let mut parsed: HashMap<uuid::Uuid, Served> = HashMap::new();
        for c in state.certificates.values() {
            let pair = |cert: &str, key: &str| {
                KeyPair::parse(cert, key)
                    .map(|p| p.certified)
                    .map_err(|e| format!("certificate {}: {e}", c.id))
            };
            let alt = match (&c.cert_alt, &c.key_alt) {
                (Some(cert), Some(key)) => Some(pair(cert, key)?),
                _ => None,
            };
            parsed.insert(
                c.id,
                Served {
                    primary: pair(&c.cert, &c.key)?,
                    alt,
                },
            );
        }
        let mut by_name = HashMap::with_capacity(state.snis.len());
        for sni in state.snis.values() {
            let served = parsed.get(&sni.certificate.id).ok_or_else(|| {
                format!(
                    "sni {}: certificate {} does not exist",
                    sni.name, sni.certificate.id
                )
            })?;
            by_name.insert(sni.name.clone(), served.clone());
        }
        Ok(ServerCertificates {
            by_name,
            by_id: parsed,
        })
    }

    /// Certificate `id`'s primary pair, parsed when the configuration was built.
    pub fn certificate(&self, id: &uuid::Uuid) -> Option<Arc<CertifiedKey>> {
        self.by_id.get(id).map(|s| s.primary.clone())
    }

    /// Number of server names served.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when no SNI is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn find(&self, name: &str) -> Option<&Served> {
        if let Some(s) = self.by_name.get(name) {
            return Some(s);
        }
        let (_, rest) = name.split_once('.')?;
        if let Some(s) = self.by_name.get(&format!("*.{rest}")) {
            return Some(s);
        }
        let (head, _) = name.rsplit_once('.')?;
        self.by_name.get(&format!("{head}.*"))
    }

    /// The certificate for server name `name` (lower case) and a client offering `schemes`, if an SNI
    /// covers it.
    pub fn lookup(&self, name: &str, schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.find(name).map(|s| s.choose(schemes))
    }
}

#[cfg(test)]
mod tests;
