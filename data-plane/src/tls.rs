//! TLS termination: the snapshot's server certificates by name ([`ServerCertificates`], built with the
//! configuration off the request path), the rustls resolver that picks one per handshake from whatever
//! configuration is current (so a new snapshot's certificates serve the next handshake and open
//! connections keep theirs), and the node's default certificate for names no SNI covers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use shared::tls::KeyPair;
use shared::ConfigState;
use tokio_rustls::TlsAcceptor;

use crate::runtime::RuntimeConfig;

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

/// Picks the server certificate of each handshake from the current configuration, or the default.
struct Resolver {
    config: Arc<ArcSwapOption<RuntimeConfig>>,
    default: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = match (hello.server_name(), self.config.load().as_ref()) {
            (Some(name), Some(rt)) => rt
                .tls
                .lookup(&name.to_ascii_lowercase(), hello.signature_schemes()),
            _ => None,
        };
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

/// The node's default certificate: the operator's (`--proxy-tls-cert-file` and `--proxy-tls-key-file`),
/// or a self-signed one for `localhost` made at start.
pub fn default_certificate(files: Option<(&Path, &Path)>) -> Result<Arc<CertifiedKey>> {
    let (cert, key) = match files {
        Some((cert, key)) => (
            std::fs::read_to_string(cert)
                .with_context(|| format!("cannot read --proxy-tls-cert-file {}", cert.display()))?,
            std::fs::read_to_string(key)
                .with_context(|| format!("cannot read --proxy-tls-key-file {}", key.display()))?,
        ),
        None => {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
                .context("cannot make the default TLS certificate")?;
            (made.cert.pem(), made.key_pair.serialize_pem())
        }
    };
    KeyPair::parse(&cert, &key)
        .map(|p| p.certified)
        .map_err(|e| anyhow::anyhow!("the default TLS certificate is unusable: {e}"))
}

/// A TLS acceptor for the proxy: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, certificates chosen per
/// handshake from `config`'s SNIs, else `default`.
pub fn acceptor(
    config: Arc<ArcSwapOption<RuntimeConfig>>,
    default: Arc<CertifiedKey>,
) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { config, default }));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

#[cfg(test)]
mod tests;
