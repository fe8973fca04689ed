//! A Service's own TLS settings toward its upstream, resolved once per snapshot: the client certificate it
//! presents (`client_certificate`, mutual TLS), the CA certificates it trusts instead of the node's roots
//! (`ca_certificates`) and the longest chain it accepts (`tls_verify_depth`: at most that many
//! intermediates between the upstream's certificate and a trusted root).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use shared::tls::ca_der;
use shared::{ConfigState, Service};

use super::certificates::ServerCertificates;

/// The TLS settings a Service adds to the node's defaults. Services with equal settings share a pool:
/// [`UpstreamTls::key`] digests them.
pub struct UpstreamTls {
    key: [u8; 32],
    client: Option<Arc<CertifiedKey>>,
    roots: Option<Arc<RootCertStore>>,
    depth: Option<u32>,
}

impl UpstreamTls {
    /// The settings of `service` in `state`, or `None` when it sets none of them; its client certificate
    /// comes parsed from `certificates`.
    pub fn of(
        service: &Service,
        state: &ConfigState,
        certificates: &ServerCertificates,
    ) -> Result<Option<UpstreamTls>, String> {
        if service.client_certificate.is_none()
            && service.ca_certificates.is_none()
            && service.tls_verify_depth.is_none()
        {
            return Ok(None);
        }
        let what = |field: &str| format!("service {}: {field}", service.id);
        let mut key = Sha256::new();
        let client = match service.client_certificate {
            Some(fk) => {
                let c = state.certificates.get(&fk.id).ok_or_else(|| {
                    format!("{} {} does not exist", what("client_certificate"), fk.id)
                })?;
                key.update(c.cert.as_bytes());
                key.update(c.key.as_bytes());
                let pair = certificates.certificate(&fk.id).ok_or_else(|| {
                    format!("{} {} is not parsed", what("client_certificate"), fk.id)
                })?;
                Some(pair)
            }
            None => None,
        };
        key.update([0]);
        let roots = match &service.ca_certificates {
            // An empty list keeps the node's roots, as no list does.
            Some(ids) if !ids.is_empty() => {
                let mut roots = RootCertStore::empty();
                for id in ids {
                    let ca = state.ca_certificates.get(id).ok_or_else(|| {
                        format!("{} {id} does not exist", what("ca_certificates"))
                    })?;
                    key.update(ca.cert_digest.as_bytes());
                    let (der, _) = ca_der(&ca.cert)
                        .map_err(|e| format!("{}: {e}", what("ca_certificates")))?;
                    roots
                        .add(der)
                        .map_err(|e| format!("{}: {e}", what("ca_certificates")))?;
                }
                Some(Arc::new(roots))
            }
            _ => None,
        };
        key.update([0]);
        key.update(service.tls_verify_depth.unwrap_or(u32::MAX).to_be_bytes());
        Ok(Some(UpstreamTls {
            key: key.finalize().into(),
            client,
            roots,
            depth: service.tls_verify_depth,
        }))
    }

    /// Equal for equal settings: the pool key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The rustls client configuration: these settings on top of the node's `default_roots`, verifying
    /// the upstream unless `verify` is false (then with `no_verification`).
    pub(crate) fn client_config(
        &self,
        default_roots: &Arc<RootCertStore>,
        verify: bool,
        provider: Arc<rustls::crypto::CryptoProvider>,
        no_verification: Arc<dyn ServerCertVerifier>,
    ) -> rustls::ClientConfig {
        let verifier: Arc<dyn ServerCertVerifier> = if verify {
            let roots = self.roots.clone().unwrap_or_else(|| default_roots.clone());
            // Building fails only without trust anchors: the node's roots always hold the Mozilla set and
            // a Service's own list is used only when it names at least one CA certificate.
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .expect("a non-empty root store");
            match self.depth {
                Some(depth) => Arc::new(DepthLimited {
                    inner: webpki,
                    depth,
                }),
                None => webpki,
            }
        } else {
            no_verification
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match &self.client {
            Some(certified) => {
                builder.with_client_cert_resolver(Arc::new(ClientCertificate(certified.clone())))
            }
            None => builder.with_no_client_auth(),
        }
    }
}

/// Presents the Service's client certificate whenever the upstream asks for one.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Refuses upstream chains with more than `depth` intermediates, then verifies as usual.
#[derive(Debug)]
struct DepthLimited {
    inner: Arc<WebPkiServerVerifier>,
    depth: u32,
}

impl ServerCertVerifier for DepthLimited {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.len() > self.depth as usize {
            return Err(rustls::Error::General(format!(
                "the upstream's chain has {} intermediate certificates, more than tls_verify_depth {}",
                intermediates.len(),
                self.depth
            )));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
