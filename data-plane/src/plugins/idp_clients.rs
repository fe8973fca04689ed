//! Pooled HTTP clients to identity providers, one per timeout, keep-alive and TLS-verification setting,
//! shared by every plugin instance and across snapshots so connections stay warm.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Pooled HTTP clients to identity providers, shared across snapshots so connections stay warm.
#[derive(Default)]
pub struct IdpClients {
    clients: Mutex<HashMap<(u64, u64, bool), reqwest::Client>>,
    /// Extra CA certificates (PEM) to trust for identity providers.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl IdpClients {
    /// Clients that also trust the CA certificates in `extra_ca_pem`.
    pub fn new(extra_ca_pem: Option<Vec<u8>>) -> Self {
        IdpClients {
            clients: Mutex::default(),
            extra_ca_pem,
        }
    }

    /// A client with `timeout_ms` per call and `keepalive_ms` idle lifetime of pooled connections.
    pub fn get(
        &self,
        timeout_ms: u64,
        keepalive_ms: u64,
        verify_tls: bool,
    ) -> Result<reqwest::Client, String> {
        let key = (timeout_ms, keepalive_ms, verify_tls);
        let mut clients = self.clients.lock().expect("client pool lock");
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms))
            .pool_idle_timeout(Duration::from_millis(keepalive_ms.max(1)))
            .pool_max_idle_per_host(64)
            .danger_accept_invalid_certs(!verify_tls)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &self.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("identity provider CA file: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        let c = b
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        clients.insert(key, c.clone());
        Ok(c)
    }
}
