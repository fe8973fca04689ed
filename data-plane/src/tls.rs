//! TLS termination: the rustls resolver that picks a server certificate per handshake from whatever
//! certificates are current (so a new snapshot's certificates serve the next handshake and open
//! connections keep theirs), and the node's default certificate for names no SNI covers.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use shared::tls::KeyPair;
use tokio_rustls::TlsAcceptor;

use crate::runtime::ServerCertificates;
/// Picks the server certificate of each handshake from the current configuration, or the default.
struct Resolver {
    certificates: Certificates,
    default: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = match (hello.server_name(), (self.certificates)()) {
            (Some(name), Some(current)) => {
                current.lookup(&name.to_ascii_lowercase(), hello.signature_schemes())
            }
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

/// The server certificates current at a handshake, if a configuration is loaded.
pub type Certificates = Box<dyn Fn() -> Option<Arc<ServerCertificates>> + Send + Sync>;

/// A TLS acceptor for the proxy: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, certificates chosen per
/// handshake by SNI from the `certificates` current then, else `default`.
pub fn acceptor(certificates: Certificates, default: Arc<CertifiedKey>) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            certificates,
            default,
        }));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
