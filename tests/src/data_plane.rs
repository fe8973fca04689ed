//! A data plane running in-process for tests, on ephemeral ports, paired to a test control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::{client, eventually, init_logging, try_json, ControlPlane, InProcess, PATIENCE};

/// A data plane running in-process.
pub struct DataPlane {
    pub proxy_url: String,
    /// The TLS proxy listener.
    pub proxy_tls_addr: SocketAddr,
    pub status_url: String,
    pub data_dir: PathBuf,
    pub node_id: Option<String>,
    run: InProcess,
    _dir: Option<tempfile::TempDir>,
}

/// Options of a test data plane.
#[derive(Clone, Default)]
pub struct DpOptions {
    pub pairing_token: Option<String>,
    pub pairing_token_file: Option<PathBuf>,
    pub plugins: Option<Vec<String>>,
    pub max_config_bytes: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub control_plane: Option<String>,
    pub upstream_ca_file: Option<PathBuf>,
    /// Sync features to announce (`--sync-features`); default: all.
    pub sync_features: Option<Vec<String>>,
    /// `--request-id-header`; default `x-request-id`.
    pub request_id_header: Option<String>,
    /// `--workers`; default: one per core.
    pub workers: Option<usize>,
    /// `--proxy-tls-cert-file` and `--proxy-tls-key-file`; default: the node's self-signed certificate.
    pub tls_default: Option<(PathBuf, PathBuf)>,
    /// `--dns-resolver`.
    pub dns_resolver: Option<SocketAddr>,
    /// `--idp-ca-file` (also trusted for Redis servers with `ssl_verify`).
    pub idp_ca_file: Option<PathBuf>,
}

impl DataPlane {
    /// Starts a node paired to `cp` with a fresh token.
    pub async fn start(cp: &ControlPlane) -> DataPlane {
        let token = cp.pairing_token().await;
        Self::start_with(DpOptions {
            pairing_token: Some(token),
            control_plane: Some(cp.cluster_addr.to_string()),
            ..Default::default()
        })
        .await
    }

    /// Starts a node and waits until it knows its identity (when it has a control plane).
    pub async fn start_with(opts: DpOptions) -> DataPlane {
        let mut dp = Self::spawn(opts.clone()).await;
        if opts.control_plane.is_some() {
            let status_url = dp.status_url.clone();
            let id = eventually(PATIENCE, "data plane paired", || {
                let url = status_url.clone();
                async move {
                    let v = try_json(&format!("{url}/status")).await?;
                    v["node_id"].as_str().map(str::to_string)
                }
            })
            .await;
            dp.node_id = Some(id);
        }
        dp
    }

    /// Starts a node without waiting for anything.
    pub async fn spawn(opts: DpOptions) -> DataPlane {
        init_logging();
        let (dir, data_dir) = match opts.data_dir.clone() {
            Some(d) => (None, d),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let p = dir.path().to_path_buf();
                (Some(dir), p)
            }
        };
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let status = TcpListener::bind("127.0.0.1:0").await.expect("bind status");
        let proxy_tls = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS proxy");
        let proxy_tls_addr = proxy_tls.local_addr().unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let status_url = format!("http://{}", status.local_addr().unwrap());
        let config = data_plane::Config {
            data_dir: data_dir.clone(),
            control_plane: opts.control_plane.clone(),
            pairing_token: opts.pairing_token.clone(),
            pairing_token_file: opts.pairing_token_file.clone(),
            proxy_listen: proxy.local_addr().unwrap(),
            proxy_listen_tls: data_plane::config::TlsListen(Some(proxy_tls_addr)),
            proxy_tls_cert_file: opts.tls_default.as_ref().map(|(c, _)| c.clone()),
            proxy_tls_key_file: opts.tls_default.as_ref().map(|(_, k)| k.clone()),
            status_listen: status.local_addr().unwrap(),
            node_name: Some(format!("test-node-{}", proxy.local_addr().unwrap().port())),
            plugins: opts
                .plugins
                .clone()
                .unwrap_or_else(|| vec!["bundled".into()]),
            log_format: data_plane::LogFormat::Text,
            request_id_header: opts
                .request_id_header
                .clone()
                .unwrap_or_else(|| "x-request-id".into()),
            heartbeat_interval_ms: 200,
            heartbeat_timeout_ms: 1500,
            max_config_bytes: opts.max_config_bytes.unwrap_or(256 * 1024 * 1024),
            cache_max_entries: 10_000,
            idp_ca_file: opts.idp_ca_file.clone(),
            upstream_ca_file: opts.upstream_ca_file.clone(),
            drain_timeout_ms: 5_000,
            workers: opts.workers,
            dns_resolver: opts.dns_resolver.map(|a| shared::dns::Nameservers(vec![a])),
            sync_features: opts
                .sync_features
                .clone()
                .unwrap_or_else(|| vec!["delta".into(), "zstd".into()]),
            ..data_plane::Config::defaults()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(data_plane::run(
            config,
            data_plane::Listeners {
                proxy,
                proxy_tls: Some(proxy_tls),
                status,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        DataPlane {
            proxy_url,
            proxy_tls_addr,
            status_url,
            data_dir,
            node_id: None,
            run: InProcess::new(stop, task),
            _dir: dir,
        }
    }

    /// The node's `/status`.
    pub async fn status(&self) -> Result<Value> {
        Ok(client()
            .get(format!("{}/status", self.status_url))
            .send()
            .await?
            .json()
            .await?)
    }

    /// The version of the config the node runs (0 for none).
    pub async fn config_version(&self) -> u64 {
        self.status()
            .await
            .ok()
            .and_then(|s| s["config"]["version"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until the node runs at least `version`.
    pub async fn wait_version(&self, version: u64) {
        eventually(
            PATIENCE,
            &format!("data plane at version {version}"),
            || async { (self.config_version().await >= version).then_some(()) },
        )
        .await
    }

    /// The node's metrics text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.status_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the node's `run` returns, for a node expected to give up (a refused pairing); returns
    /// its error, or `None` when it is still running after `patience`.
    pub async fn exit_error(&mut self, patience: Duration) -> Option<String> {
        let exited = self.run.exited(patience).await?;
        Some(exited.err().map(|e| format!("{e:#}")).unwrap_or_default())
    }

    /// Stops the node and waits for it.
    pub async fn stop(&mut self) {
        self.run.stop("data plane").await;
    }
}
