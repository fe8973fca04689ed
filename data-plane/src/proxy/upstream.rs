//! Upstream connections: one pooled client per (connect timeout, retries, scheme, verification, a
//! Service's own TLS settings), kept across snapshots so pools stay warm, with connection retries inside
//! the connector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::connector::{ConnectFailed, RetryingConnector};
use super::h1::H1Pool;
use crate::body::ProxyBody;
use crate::runtime::upstream_tls::UpstreamTls;
use crate::runtime::ServiceEntry;

/// A pooled client for one kind of upstream. Plain-HTTP Services get a client without the TLS layer,
/// which costs about a tenth of the proxy's throughput per request even when it only passes bytes through.
#[derive(Clone)]
pub(super) enum Upstream {
    Plain(Client<RetryingConnector, ProxyBody>),
    Tls(Client<hyper_rustls::HttpsConnector<RetryingConnector>, ProxyBody>),
}

impl Upstream {
    pub(super) fn request(
        &self,
        req: Request<ProxyBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            Upstream::Plain(c) => c.request(req),
            Upstream::Tls(c) => c.request(req),
        }
    }
}

/// How many connection attempts a failed upstream request made (1 when the error does not say).
pub(super) fn connect_attempts(e: &hyper_util::client::legacy::Error) -> usize {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(failed) = s.downcast_ref::<ConnectFailed>() {
            return failed.attempts();
        }
        source = s.source();
    }
    1
}

/// How a Service's upstream is reached: what picks (or builds) its pooled client.
pub(super) struct Dial<'a> {
    pub connect_timeout_ms: u64,
    /// Connection attempts after the first.
    pub retries: u32,
    pub https: bool,
    /// Whether an HTTPS upstream's certificate is verified.
    pub verify: bool,
    /// The Service's own client certificate, trusted CAs and chain depth.
    pub own: Option<&'a UpstreamTls>,
    pub versions: Versions,
}

/// The HTTP versions an upstream connection may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Versions {
    /// HTTP/1.1 in clear; over TLS, HTTP/2 when the upstream offers it by ALPN.
    Any,
    /// HTTP/1.1 only: protocol upgrades (WebSocket) exist only there.
    Http1,
    /// HTTP/2 only (gRPC): with prior knowledge in clear, by ALPN over TLS.
    Http2,
}

impl Dial<'_> {
    /// How `target`'s Service is reached, trying a failed connection again `retries` times; `upgrade`
    /// when the request asks for a protocol upgrade.
    pub fn of(target: &ServiceEntry, retries: u32, upgrade: bool) -> Dial<'_> {
        let service = &target.service;
        Dial {
            connect_timeout_ms: service.connect_timeout,
            retries,
            https: service.protocol.is_tls(),
            verify: service.tls_verify.unwrap_or(true),
            own: target.tls.as_deref(),
            versions: match (upgrade, service.protocol.is_grpc()) {
                (true, _) => Versions::Http1,
                (false, true) => Versions::Http2,
                (false, false) => Versions::Any,
            },
        }
    }
}

/// Connect timeout (ms), retries, for HTTPS whether the certificate is verified, the digest of the
/// Service's own TLS settings, and the HTTP versions.
type ClientKey = (u64, u32, Option<bool>, Option<[u8; 32]>, Versions);

/// Upstream clients by connect timeout, retries, scheme and certificate verification, shared across
/// snapshots so pools stay warm. HTTPS upstreams are verified against the Mozilla roots plus
/// `--upstream-ca-file`, unless the Service sets `tls_verify: false`; HTTP/2 is used when the upstream
/// offers it by ALPN.
pub struct UpstreamClients {
    clients: Mutex<HashMap<ClientKey, Upstream>>,
    /// Kept connections of the in-task HTTP/1.1 path.
    pub(super) h1: Arc<H1Pool>,
    roots: Arc<rustls::RootCertStore>,
}

impl UpstreamClients {
    /// Clients trusting the Mozilla roots and the certificates in `extra_ca_pem`.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> anyhow::Result<UpstreamClients> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(cert.map_err(|e| anyhow::anyhow!("--upstream-ca-file: {e}"))?)?;
                n += 1;
            }
            anyhow::ensure!(n > 0, "--upstream-ca-file holds no certificate");
        }
        Ok(UpstreamClients {
            clients: Mutex::default(),
            h1: Arc::default(),
            roots: Arc::new(roots),
        })
    }

    /// The client for a Service: `https` gets TLS, with `verify` deciding certificate checks and `own`
    /// the Service's client certificate, trusted CAs and chain depth; a failed connection is tried again
    /// up to `retries` times; `versions` as the request needs them.
    pub(super) fn get(&self, dial: &Dial<'_>) -> Upstream {
        let Dial {
            connect_timeout_ms,
            retries,
            https,
            verify,
            own,
            versions,
        } = *dial;
        let own = own.filter(|_| https);
        let mut clients = self.clients.lock().expect("upstream clients lock");
        clients
            .entry((
                connect_timeout_ms,
                retries,
                https.then_some(verify),
                own.map(UpstreamTls::key),
                versions,
            ))
            .or_insert_with(|| {
                let http = RetryingConnector::new(
                    Duration::from_millis(connect_timeout_ms),
                    retries as usize + 1,
                );
                let pooled = || {
                    let mut b = Client::builder(TokioExecutor::new());
                    b.pool_idle_timeout(Duration::from_secs(60))
                        .pool_max_idle_per_host(256)
                        .http2_only(versions == Versions::Http2);
                    b
                };
                if !https {
                    return Upstream::Plain(pooled().build(http));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions");
                let tls = if let Some(own) = own {
                    let none = Arc::new(NoVerification(provider.clone()));
                    own.client_config(&self.roots, verify, provider, none)
                } else if verify {
                    builder
                        .with_root_certificates(self.roots.clone())
                        .with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                        .with_no_client_auth()
                };
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http();
                let connector = match versions {
                    Versions::Http2 => connector.enable_http2().wrap_connector(http),
                    Versions::Http1 => connector.enable_http1().wrap_connector(http),
                    Versions::Any => connector.enable_http1().enable_http2().wrap_connector(http),
                };
                Upstream::Tls(pooled().build(connector))
            })
            .clone()
    }
}

/// Accepts any upstream certificate: only for Services that set `tls_verify: false`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
