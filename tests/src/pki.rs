//! A private CA for tests that need certificates: server certificates for the TLS listener and for
//! upstreams, client certificates for mutual TLS, an intermediate CA for chain depths, and an HTTPS client
//! that trusts only this CA.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA (root or intermediate) that issues certificates.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// An issued certificate: its PEM and its key's PEM, and the same as DER for a rustls server or to
/// compare with what a server presents.
pub struct Issued {
    pub cert: String,
    pub key: String,
    pub der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
}

impl TestCa {
    /// A self-signed root CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            cert: ca_params(name).self_signed(&key).unwrap(),
            key,
        }
    }

    /// An intermediate CA named `name`, issued by this one.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            cert: ca_params(name)
                .signed_by(&key, &self.cert, &self.key)
                .unwrap(),
            key,
        }
    }

    /// The CA certificate's PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (server or client use).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        self.sign(rcgen::CertificateParams::new(names).unwrap())
    }

    /// A certificate for `names` that expired in 2002.
    pub fn issue_expired(&self, names: &[&str]) -> Issued {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        self.sign(params)
    }

    fn sign(&self, params: rcgen::CertificateParams) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// An HTTPS client trusting only this CA, reaching each of `names` at `addr`.
    pub fn client(&self, names: &[&str], addr: SocketAddr, http1_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap())
            .timeout(Duration::from_secs(10));
        for n in names {
            b = b.resolve(n, addr);
        }
        if http1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    }
}
