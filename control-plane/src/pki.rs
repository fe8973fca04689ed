//! The cluster PKI: a CA created on first start, the control plane's server certificate, and node
//! certificates issued from CSRs. Keys are written with owner-only permissions.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// The cluster CA and the control plane's own TLS identity.
pub struct ClusterPki {
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
    /// PEM of the CA certificate, handed to nodes.
    pub ca_pem: String,
    /// DER of the CA certificate.
    pub ca_der: CertificateDer<'static>,
    /// Hex SHA-256 of the CA certificate (DER), carried in pairing tokens.
    pub ca_fingerprint: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_pem: String,
}

/// A certificate issued to a node.
pub struct IssuedCert {
    /// PEM of the node certificate.
    pub pem: String,
    /// Unix seconds when it expires.
    pub not_after: i64,
}

/// Writes `contents` to `path` atomically, readable by the owner only.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let tmp = path.with_extension("tmp");
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

fn pem_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    let mut reader = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der),
        _ => bail!("no certificate in PEM"),
    }
}

/// Unix seconds of the certificate's `notAfter`.
pub fn cert_not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The subject common name of a certificate (the node id for node certificates).
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

impl ClusterPki {
    /// Loads the PKI from `dir` with the CA `source` names: the operator's files (read in place, never
    /// copied), the CA created in `dir` on first start, or one given as PEM (kept in a shared store). The server certificate
    /// is (re)issued when it is missing, expires within 30 days, does not cover `hostnames`, or was issued
    /// by another CA.
    pub fn load_or_create(
        dir: &Path,
        hostnames: &[String],
        source: CaSource<'_>,
    ) -> Result<ClusterPki> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (ca_cert, ca_key, ca_pem) = match source {
            CaSource::Files { cert, key } => load_ca(cert, key)?,
            CaSource::DataDir => own_ca(dir)?,
            CaSource::Pem { cert, key } => {
                ca_from_pem(cert, key).context("the cluster CA kept in the database is unusable")?
            }
        };
        let ca_der = pem_cert_der(&ca_pem)?;
        let ca_fingerprint = shared::digest::sha256_hex(&ca_der);

        let server_cert_path = dir.join("cluster.pem");
        let server_key_path = dir.join("cluster.key");
        let names_path = dir.join("cluster.names");
        let wanted_names = server_names(hostnames);
        // What the server certificate must match: its names and the CA that issued it.
        let issued_for = format!("{}\nca:{ca_fingerprint}", wanted_names.join("\n"));
        let reuse = server_cert_path.exists()
            && server_key_path.exists()
            && fs::read_to_string(&names_path).ok().as_deref() == Some(issued_for.as_str())
            && fs::read_to_string(&server_cert_path)
                .ok()
                .and_then(|pem| pem_cert_der(&pem).ok())
                .and_then(|der| cert_not_after(&der))
                .is_some_and(|exp| exp > OffsetDateTime::now_utc().unix_timestamp() + 30 * 86_400);
        if !reuse {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(wanted_names.clone())?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "Portcullis control plane");
            params.distinguished_name = dn;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.serial_number = Some(random_serial());
            let now = OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(365);
            let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
            write_private(&server_key_path, &key.serialize_pem())?;
            write_private(&server_cert_path, &cert.pem())?;
            write_private(&names_path, &issued_for)?;
        }
        let server_pem = fs::read_to_string(&server_cert_path)?;
        let server_chain = vec![pem_cert_der(&server_pem)?, ca_der.clone()];
        let server_key_pem = fs::read_to_string(&server_key_path)?;
        Ok(ClusterPki {
            ca_cert,
            ca_key,
            ca_pem,
            ca_der,
            ca_fingerprint,
            server_chain,
            server_key_pem,
        })
    }

    /// Signs a node's CSR: the subject becomes the node id, the certificate is for client authentication only.
    pub fn issue_node_cert(
        &self,
        csr_pem: &str,
        node_id: &str,
        lifetime: Duration,
    ) -> Result<IssuedCert> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| anyhow::anyhow!("invalid CSR: {e}"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        dn.push(DnType::OrganizationName, "Portcullis data plane");
        csr.params.distinguished_name = dn;
        csr.params.subject_alt_names = Vec::new();
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        // Backdate a little for clock skew between nodes, but never by more than a tenth of the lifetime, so
        // a node's "renew when a third is left" rule stays meaningful for short lifetimes.
        let backdate = (lifetime.as_secs() as i64 / 10).min(300);
        csr.params.not_before = now - time::Duration::seconds(backdate);
        let not_after = now + time::Duration::seconds(lifetime.as_secs() as i64);
        csr.params.not_after = not_after;
        let cert = csr.signed_by(&self.ca_cert, &self.ca_key)?;
        Ok(IssuedCert {
            pem: cert.pem(),
            not_after: not_after.unix_timestamp(),
        })
    }

    /// The TLS server config of the cluster listener: server chain with the CA, client certificates from the
    /// cluster CA verified when presented (pairing happens before a node has one), ALPN h2.
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("cluster server key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

use rustls::pki_types::pem::PemObject;

type Ca = (rcgen::Certificate, KeyPair, String);

/// Where the cluster CA comes from.
pub enum CaSource<'a> {
    /// The operator's certificate and key files.
    Files {
        /// CA certificate (PEM).
        cert: &'a Path,
        /// CA private key (PEM).
        key: &'a Path,
    },
    /// Created in the data dir on first start.
    DataDir,
    /// Given as PEM (the CA kept in the database, after decryption).
    Pem {
        /// CA certificate.
        cert: &'a str,
        /// CA private key.
        key: &'a str,
    },
}

fn ca_from_pem(ca_pem: &str, key_pem: &str) -> Result<Ca> {
    let ca_key = KeyPair::from_pem(key_pem).context("not a valid private key")?;
    let params =
        CertificateParams::from_ca_cert_pem(ca_pem).context("not a valid CA certificate")?;
    // Re-signing yields an issuer object with the same name and key; the stored PEM stays canonical.
    let ca_cert = params.self_signed(&ca_key)?;
    Ok((ca_cert, ca_key, ca_pem.to_string()))
}

/// A new cluster CA: its certificate and private key, as PEM.
pub fn generate_ca() -> Result<(String, String)> {
    let (_, key, pem) = new_ca()?;
    Ok((pem, key.serialize_pem()))
}

fn new_ca() -> Result<Ca> {
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Portcullis cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let ca_cert = params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    Ok((ca_cert, ca_key, ca_pem))
}

/// The operator's CA: a CA certificate and the private key that matches it.
fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Ca> {
    let key_pem = fs::read_to_string(key_path)
        .with_context(|| format!("cannot read --cluster-ca-key-file {}", key_path.display()))?;
    let ca_key = KeyPair::from_pem(&key_pem).with_context(|| {
        format!(
            "--cluster-ca-key-file {} is not a PEM private key",
            key_path.display()
        )
    })?;
    let ca_pem = fs::read_to_string(cert_path)
        .with_context(|| format!("cannot read --cluster-ca-cert-file {}", cert_path.display()))?;
    let der = pem_cert_der(&ca_pem).with_context(|| {
        format!(
            "--cluster-ca-cert-file {} holds no PEM certificate",
            cert_path.display()
        )
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        anyhow::anyhow!(
            "--cluster-ca-cert-file {}: not a valid certificate: {e}",
            cert_path.display()
        )
    })?;
    if !parsed.is_ca() {
        bail!(
            "--cluster-ca-cert-file {}: the certificate is not a CA (basicConstraints CA:FALSE or missing)",
            cert_path.display()
        );
    }
    if parsed.public_key().raw != ca_key.public_key_der().as_slice() {
        bail!(
            "--cluster-ca-key-file {} does not match the certificate in --cluster-ca-cert-file {}",
            key_path.display(),
            cert_path.display()
        );
    }
    let params = CertificateParams::from_ca_cert_pem(&ca_pem).with_context(|| {
        format!(
            "--cluster-ca-cert-file {} is not a usable CA certificate",
            cert_path.display()
        )
    })?;
    // Re-signing yields an issuer object with the same name and key; the operator's PEM stays canonical.
    let ca_cert = params.self_signed(&ca_key)?;
    Ok((ca_cert, ca_key, ca_pem))
}

/// The CA kept in the data dir, created on first start.
fn own_ca(dir: &Path) -> Result<Ca> {
    let ca_cert_path = dir.join("cluster-ca.pem");
    let ca_key_path = dir.join("cluster-ca.key");
    if ca_cert_path.exists() && ca_key_path.exists() {
        let key_pem = fs::read_to_string(&ca_key_path)?;
        let ca_pem = fs::read_to_string(&ca_cert_path)?;
        return ca_from_pem(&ca_pem, &key_pem)
            .with_context(|| format!("the CA in {} is unusable", dir.display()));
    }
    let (ca_cert, ca_key, ca_pem) = new_ca()?;
    write_private(&ca_key_path, &ca_key.serialize_pem())?;
    write_private(&ca_cert_path, &ca_pem)?;
    Ok((ca_cert, ca_key, ca_pem))
}

fn server_names(hostnames: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hostnames {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    names
}

/// Where the PKI lives inside a control plane's data dir.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}
