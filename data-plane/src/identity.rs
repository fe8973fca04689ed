//! The node's identity: its key (generated here, never sent), its certificate issued by the cluster CA, and
//! the CA itself. Pairing pins the CA by the fingerprint carried in the pairing token.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::control_planes::{Candidate, ControlPlanes};
use anyhow::{anyhow, bail, Context, Result};
use hyper_util::rt::TokioIo;
use platform::files::{private_dir, write_private};
use rcgen::{CertificateParams, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use shared::digest::sha256_hex;
use shared::pairing::PairingToken;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// What a node needs to talk to its control plane.
#[derive(Clone)]
pub struct Identity {
    pub node_id: String,
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
    /// Unix seconds.
    pub cert_not_after: i64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id)
            .field("cert_not_after", &self.cert_not_after)
            .finish_non_exhaustive()
    }
}

fn paths(dir: &Path) -> [PathBuf; 4] {
    [
        dir.join("node-id"),
        dir.join("node.key"),
        dir.join("node.pem"),
        dir.join("cluster-ca.pem"),
    ]
}

/// Unix seconds of a PEM certificate's `notAfter`.
pub fn pem_not_after(pem: &str) -> Result<i64> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("invalid certificate PEM: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// A new key and a CSR for it.
pub fn new_key_and_csr() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    Ok((key.serialize_pem(), csr))
}

impl Identity {
    /// Loads the identity from `dir`; `None` when the node was never paired.
    pub fn load(dir: &Path) -> Result<Option<Identity>> {
        let [id, key, cert, ca] = paths(dir);
        if !id.exists() {
            return Ok(None);
        }
        let read = |p: &Path| {
            fs::read_to_string(p).with_context(|| {
                format!(
                    "cannot read {} (node identity is incomplete; pair again)",
                    p.display()
                )
            })
        };
        let cert_pem = read(&cert)?;
        Ok(Some(Identity {
            node_id: read(&id)?.trim().to_string(),
            key_pem: read(&key)?,
            cert_not_after: pem_not_after(&cert_pem)?,
            cert_pem,
            ca_pem: read(&ca)?,
        }))
    }

    /// Stores the identity in `dir`, owner-only.
    pub fn save(&self, dir: &Path) -> Result<()> {
        private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let [id, key, cert, ca] = paths(dir);
        write_private(&ca, &self.ca_pem)?;
        write_private(&key, &self.key_pem)?;
        write_private(&cert, &self.cert_pem)?;
        write_private(&id, &self.node_id)
    }

    /// TLS config for mutual TLS to the control plane: trust only the cluster CA, present the node certificate.
    pub fn client_tls(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(
            CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
                .map_err(|e| anyhow!("cluster CA: {e}"))?,
        )?;
        let chain = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| anyhow!("node certificate: {e}"))?];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| anyhow!("node key: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Verifies the control plane against the CA whose fingerprint the pairing token carries. The server sends
/// the CA in its chain; only a CA with exactly that fingerprint is accepted as the root.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the control plane's CA does not match the pairing token's fingerprint".into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens a gRPC channel to `cp` (`host:port`) over TLS configured by `tls`, checked with an HTTP/2 PING
/// after [`proto::keepalive_interval`] of `heartbeat_timeout` without a read.
pub async fn connect(
    cp: &Candidate,
    tls: Arc<rustls::ClientConfig>,
    heartbeat_timeout: std::time::Duration,
) -> Result<Channel> {
    let server_name = ServerName::try_from(cp.server_name.clone())
        .map_err(|_| anyhow!("'{}' is not a valid server name", cp.server_name))?;
    let addr = cp.addr;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .http2_keep_alive_interval(proto::keepalive_interval(heartbeat_timeout));
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let tls = tls.clone();
            let server_name = server_name.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(server_name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .with_context(|| format!("cannot connect to the control plane at {cp}"))?;
    Ok(channel)
}

/// Pairs with the first control plane of `cps` that answers, using a one-time token.
pub async fn pair(cps: &ControlPlanes, token: &str, hostname: &str) -> Result<Identity> {
    let mut failures = Vec::new();
    for cp in cps.candidates().await? {
        match pair_with(&cp, token, hostname).await {
            Ok(identity) => return Ok(identity),
            // A refusal is the cluster's answer; another control plane of it would say the same.
            Err(e) if e.to_string().contains("refused by the control plane") => return Err(e),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    bail!(
        "no control plane could be reached to pair: {}",
        failures.join("; ")
    )
}

/// Pairs with the control plane at `cp` using a one-time token, returning the new identity.
async fn pair_with(cp: &Candidate, token: &str, hostname: &str) -> Result<Identity> {
    let token = PairingToken::parse(token).map_err(|e| anyhow!(e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCa {
        fingerprint: token.ca_fingerprint.clone(),
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    // One short call: the least keep-alive interval.
    let channel = connect(cp, Arc::new(tls), std::time::Duration::ZERO).await?;
    let (key_pem, csr_pem) = new_key_and_csr()?;
    let resp = proto::cluster_client::ClusterClient::new(channel)
        .pair(proto::PairRequest {
            token: token.encode(),
            csr_pem,
            hostname: hostname.to_string(),
        })
        .await
        .map_err(|s| anyhow!("pairing refused by the control plane: {}", s.message()))?
        .into_inner();
    let ca_der = CertificateDer::from_pem_slice(resp.ca_pem.as_bytes())
        .map_err(|e| anyhow!("CA from the control plane: {e}"))?;
    if sha256_hex(&ca_der) != token.ca_fingerprint {
        bail!(
            "the CA returned by the control plane does not match the pairing token's fingerprint"
        );
    }
    Ok(Identity {
        node_id: resp.node_id,
        key_pem,
        cert_not_after: pem_not_after(&resp.certificate_pem)?,
        cert_pem: resp.certificate_pem,
        ca_pem: resp.ca_pem,
    })
}

/// Unix seconds of a PEM certificate's `notBefore` and `notAfter`.
pub fn pem_validity(pem: &str) -> Result<(i64, i64)> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("invalid certificate PEM: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    Ok((
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}
