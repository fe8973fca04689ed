//! A control plane running in-process for tests, on ephemeral ports, with its Admin API client.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{client, eventually, init_logging, InProcess, PATIENCE};

/// A control plane running in-process.
pub struct ControlPlane {
    pub admin_url: String,
    /// The operator console.
    pub console_url: String,
    pub cluster_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    http: reqwest::Client,
    run: InProcess,
    _dir: Option<tempfile::TempDir>,
}

/// Options of a test control plane.
#[derive(Clone)]
pub struct CpOptions {
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub cert_lifetime_secs: u64,
    pub admin_token: Option<String>,
    /// Reuse this data dir instead of a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// Versions the change log keeps (`--sync-log-versions`).
    pub sync_log_versions: usize,
    /// The operator's cluster CA: certificate and key files.
    pub cluster_ca: Option<(PathBuf, PathBuf)>,
    /// `--database-url` (PostgreSQL shared with other control planes).
    pub database_url: Option<String>,
    /// `--cluster-ca-encryption-key-file`.
    pub ca_encryption_key_file: Option<PathBuf>,
    /// `--database-tls verify-full` with this CA file.
    pub database_tls_ca_file: Option<PathBuf>,
    /// `--dns-resolver`.
    pub dns_resolver: Option<SocketAddr>,
    /// `--admin-cors-origin`.
    pub cors_origin: Option<String>,
}

impl Default for CpOptions {
    fn default() -> Self {
        CpOptions {
            heartbeat_interval_ms: 200,
            heartbeat_timeout_ms: 1500,
            cert_lifetime_secs: 86_400,
            admin_token: None,
            data_dir: None,
            sync_log_versions: 1000,
            cluster_ca: None,
            database_url: None,
            ca_encryption_key_file: None,
            database_tls_ca_file: None,
            dns_resolver: None,
            cors_origin: None,
        }
    }
}

impl ControlPlane {
    /// Two control planes sharing the PostgreSQL database `url`, started at the same time (both apply
    /// the schema's migrations), the cluster CA sealed under a key written in `key_dir`.
    pub async fn pair_on_postgres(
        url: &str,
        key_dir: &std::path::Path,
    ) -> (ControlPlane, ControlPlane) {
        let key_file = key_dir.join("ca-key");
        std::fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
        let opts = CpOptions {
            database_url: Some(url.to_string()),
            ca_encryption_key_file: Some(key_file),
            ..Default::default()
        };
        tokio::join!(
            ControlPlane::start_with(opts.clone()),
            ControlPlane::start_with(opts)
        )
    }

    /// Starts a control plane with default test options.
    pub async fn start() -> ControlPlane {
        Self::start_with(CpOptions::default()).await
    }

    /// Starts a control plane.
    pub async fn start_with(opts: CpOptions) -> ControlPlane {
        init_logging();
        let (dir, data_dir) = match opts.data_dir.clone() {
            Some(d) => (None, d),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let cluster = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind cluster");
        let manager = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind console");
        let console_url = format!("http://{}", manager.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let cluster_addr = cluster.local_addr().unwrap();
        let token_file = opts.admin_token.as_ref().map(|t| {
            let p = data_dir.join("admin-token");
            std::fs::create_dir_all(&data_dir).unwrap();
            std::fs::write(&p, t).unwrap();
            p
        });
        let config = control_plane::Config {
            data_dir: data_dir.clone(),
            admin_listen: admin.local_addr().unwrap(),
            cluster_listen: cluster_addr,
            cluster_hostnames: vec![],
            admin_token_file: token_file,
            log_format: control_plane::LogFormat::Text,
            heartbeat_interval_ms: opts.heartbeat_interval_ms,
            heartbeat_timeout_ms: opts.heartbeat_timeout_ms,
            cert_lifetime_secs: opts.cert_lifetime_secs,
            sync_log_versions: opts.sync_log_versions,
            cluster_ca_cert_file: opts.cluster_ca.as_ref().map(|c| c.0.clone()),
            cluster_ca_key_file: opts.cluster_ca.as_ref().map(|c| c.1.clone()),
            database: control_plane::DatabaseArgs {
                database_url: opts
                    .database_url
                    .as_ref()
                    .map(|u| u.parse().expect("a postgres:// URL")),
                database_poll_interval_ms: 1000,
                database_connect_timeout_ms: 1000,
                database_tls: if opts.database_tls_ca_file.is_some() {
                    control_plane::DatabaseTls::VerifyFull
                } else {
                    control_plane::DatabaseTls::Disable
                },
                database_tls_ca_file: opts.database_tls_ca_file.clone(),
                ..control_plane::Config::defaults().database
            },
            cluster_ca_encryption_key_file: opts.ca_encryption_key_file.clone(),
            dns_resolver: opts.dns_resolver.map(|a| shared::dns::Nameservers(vec![a])),
            admin_cors_origin: opts
                .cors_origin
                .as_ref()
                .map(|o| o.parse().expect("a CORS origin")),
            ..control_plane::Config::defaults()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(control_plane::run(
            config,
            control_plane::Listeners {
                admin,
                cluster,
                manager: Some(manager),
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let cp = ControlPlane {
            admin_url,
            console_url,
            cluster_addr,
            data_dir,
            admin_token: opts.admin_token.clone(),
            http: client(),
            run: InProcess::new(stop, task),
            _dir: dir,
        };
        eventually(PATIENCE, "control plane answers", || async {
            cp.get("/status").await.ok()
        })
        .await;
        cp
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{}", self.admin_url, path));
        match &self.admin_token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request and returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    /// GET expecting 200.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await?;
        if s != 200 {
            bail!("GET {path}: {s} {v}");
        }
        Ok(v)
    }

    /// POST expecting 201 (or 200).
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self
            .call(reqwest::Method::POST, path, Some(body))
            .await
            .expect("admin request");
        assert!(s == 201 || s == 200, "POST {path}: {s} {v}");
        v
    }

    /// A new pairing token.
    pub async fn pairing_token(&self) -> String {
        let v = self
            .post("/clustering/pairing-tokens", json!({"ttl": 600}))
            .await;
        v["token"].as_str().expect("token").to_string()
    }

    /// The current config version.
    pub async fn version(&self) -> u64 {
        self.get("/status").await.expect("status")["config_version"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The node list.
    pub async fn nodes(&self) -> Vec<Value> {
        self.get("/clustering/data-planes")
            .await
            .map(|v| v["data"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until every node in `ids` applied the latest committed config.
    pub async fn wait_in_sync(&self, ids: &[String]) {
        let ids = ids.to_vec();
        let version = self.version().await;
        eventually(PATIENCE, "all nodes in sync", || {
            let ids = ids.clone();
            async move {
                let list = self.get("/clustering/data-planes").await.ok()?;
                if version > 0 && list["latest_config"]["version"].as_u64() != Some(version) {
                    return None;
                }
                let nodes = list["data"].as_array().cloned().unwrap_or_default();
                let ok = ids.iter().all(|id| {
                    nodes.iter().any(|n| {
                        n["id"] == json!(id)
                            && n["sync_status"] == "in_sync"
                            && n["status"] == "connected"
                    })
                });
                ok.then_some(())
            }
        })
        .await
    }

    /// Stops the control plane and waits for it.
    pub async fn stop(&mut self) {
        self.run.stop("control plane").await;
    }
}
