//! Test harness: starts the real control plane and data planes in-process on port 0, plus a test identity
//! provider and a recording echo upstream. Every wait has a timeout; [`eventually`] replaces sleeps.

pub mod browser;
mod control_plane;
mod data_plane;
pub mod dns;
pub mod docker;
pub mod dot;
pub mod grpc;
pub mod headless;
pub mod idp;
pub mod mount;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod raw;
pub mod redis;
pub mod relay;
pub mod silent;
pub mod ws;

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

pub use control_plane::{ControlPlane, CpOptions};
pub use data_plane::{DataPlane, DpOptions};
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

/// Binds an ephemeral loopback port and hands every connection accepted on it to `handle`, on a task
/// of its own, for as long as the test runs; returns the port.
pub async fn serve_each<F, Fut>(handle: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(handle(tcp));
        }
    });
    port
}

/// A plane's `run` task in this process and the signal that stops it (sent on drop too).
pub(crate) struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    pub(crate) fn new(
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    ) -> InProcess {
        InProcess {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signals the plane to stop and waits (at most 20 s) for `run` to return without an error.
    pub(crate) async fn stop(&mut self, what: &str) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            within(Duration::from_secs(20), &format!("{what} stops"), t)
                .await
                .expect("join")
                .unwrap_or_else(|e| panic!("{what} run: {e:#}"));
        }
    }

    /// Waits at most `patience` for `run` to return by itself; its result, or `None` when it is still
    /// running (or already joined).
    pub(crate) async fn exited(&mut self, patience: Duration) -> Option<anyhow::Result<()>> {
        let task = self.task.as_mut()?;
        let joined = tokio::time::timeout(patience, task).await.ok()?;
        self.task = None;
        Some(joined.expect("join"))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A TCP port on loopback with nothing listening.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}
