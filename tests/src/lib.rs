//! Test harness: starts the real control plane and data planes in-process on port 0, plus a test identity
//! provider and a recording echo upstream. Every wait has a timeout; [`eventually`] replaces sleeps.

pub mod docker;
pub mod dot;
pub mod idp;
pub mod mount;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod relay;
pub mod silent;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use demo::echo as upstream;
pub use demo::echo::EchoUpstream;
pub use idp::TestIdp;

/// Default patience of [`eventually`].
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Polls `check` until it returns `Some`, or fails after `patience`.
pub async fn eventually<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {patience:?} waiting for: {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Runs a future with a timeout, failing the test with `what` when it expires.
pub async fn within<T>(patience: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {patience:?}: {what}"),
    }
}

/// Sets up logging once for a test binary (level from `RUST_LOG`, default warnings only).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// An HTTP client for tests, with a timeout on every request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client builds")
}

/// GETs `url` and returns its JSON body; any failure fails the test.
pub async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body is not JSON: {e}"))
}

/// GET as JSON, `None` when there is no answer or it is not JSON (for polling).
pub async fn try_json(url: &str) -> Option<Value> {
    client().get(url).send().await.ok()?.json().await.ok()
}

/// A control plane running in-process.
pub struct ControlPlane {
    pub admin_url: String,
    pub cluster_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
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
        }
    }
}

impl ControlPlane {
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
            ..control_plane::Config::defaults()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(control_plane::run(
            config,
            control_plane::Listeners { admin, cluster },
            async move {
                let _ = stopped.await;
            },
        ));
        let cp = ControlPlane {
            admin_url,
            cluster_addr,
            data_dir,
            admin_token: opts.admin_token.clone(),
            http: client(),
            stop: Some(stop),
            task: Some(task),
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
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            within(Duration::from_secs(20), "control plane stops", t)
                .await
                .expect("join")
                .expect("control plane run");
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A data plane running in-process.
pub struct DataPlane {
    pub proxy_url: String,
    /// The TLS proxy listener.
    pub proxy_tls_addr: SocketAddr,
    pub status_url: String,
    pub data_dir: PathBuf,
    pub node_id: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
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
            idp_ca_file: None,
            upstream_ca_file: opts.upstream_ca_file.clone(),
            drain_timeout_ms: 5_000,
            workers: opts.workers,
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
            stop: Some(stop),
            task: Some(task),
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
        let task = self.task.as_mut()?;
        match tokio::time::timeout(patience, task).await {
            Ok(joined) => {
                self.task = None;
                Some(match joined.expect("join") {
                    Ok(()) => String::new(),
                    Err(e) => format!("{e:#}"),
                })
            }
            Err(_) => None,
        }
    }

    /// Stops the node and waits for it.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            within(Duration::from_secs(20), "data plane stops", t)
                .await
                .expect("join")
                .expect("data plane run");
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Reads a metric value (sum over the series whose labels contain every `labels` pair).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            if !labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

/// A TCP port on loopback with nothing listening.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}
