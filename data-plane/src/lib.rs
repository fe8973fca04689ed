//! The Portcullis data plane: a reverse proxy with authentication plugins and per-node caches, configured by
//! snapshots streamed from the control plane and kept on disk as last-known-good.
//!
//! [`run`] takes already-bound listeners and a shutdown signal, so tests start the real thing on port 0.

pub mod background;
pub mod cache;
pub mod control_planes;
pub mod fsutil;
pub mod identity;
pub mod lkg;
pub mod metrics;
pub mod plugins;
pub mod proxy;
pub mod router;
pub mod runtime;
pub mod status;
pub mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use cache::Caches;
use identity::Identity;
use lkg::{Lkg, StoredSnapshot};
use metrics::Metrics;
use plugins::IdpClients;
use runtime::RuntimeConfig;

pub use shared::unix_now;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogOutput {
    Stderr,
    /// Containers collect stdout.
    Stdout,
}

/// Data-plane settings; every flag has a `PORTCULLIS_*` environment twin.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "data-plane", version, about = "Portcullis data plane")]
pub struct Config {
    /// Where the node identity and the last-known-good config live.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = "./dp-data")]
    pub data_dir: PathBuf,
    /// The control planes' cluster addresses: `host:port`, or several separated by commas; a host may be a
    /// DNS name with several addresses. Connection attempts go round all of them, so the node moves to
    /// another control plane when its own is gone. Without it the node serves its last-known-good config.
    #[arg(long, env = "PORTCULLIS_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// Pairing (enrollment) token; needed on the first start only.
    #[arg(long, env = "PORTCULLIS_PAIRING_TOKEN", hide_env_values = true)]
    pub pairing_token: Option<String>,
    /// File holding the pairing token (a container secret), read on the first start only.
    #[arg(
        long,
        env = "PORTCULLIS_PAIRING_TOKEN_FILE",
        conflicts_with = "pairing_token"
    )]
    pub pairing_token_file: Option<PathBuf>,
    /// Proxy address.
    #[arg(long, env = "PORTCULLIS_PROXY_LISTEN", default_value = "0.0.0.0:8000")]
    pub proxy_listen: SocketAddr,
    /// Status and metrics address.
    #[arg(
        long,
        env = "PORTCULLIS_STATUS_LISTEN",
        default_value = "127.0.0.1:8100"
    )]
    pub status_listen: SocketAddr,
    /// Name reported to the control plane (default: the host name).
    #[arg(long, env = "PORTCULLIS_NODE_NAME")]
    pub node_name: Option<String>,
    /// Plugins this node runs: `bundled` (all) or a comma-separated list, like Kong's `plugins` property.
    #[arg(
        long,
        env = "PORTCULLIS_PLUGINS",
        value_delimiter = ',',
        default_value = "bundled"
    )]
    pub plugins: Vec<String>,
    /// Log format.
    #[arg(
        long,
        env = "PORTCULLIS_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Where logs go (the container image sets stdout).
    #[arg(
        long,
        env = "PORTCULLIS_LOG_OUTPUT",
        value_enum,
        default_value = "stderr"
    )]
    pub log_output: LogOutput,
    /// Header carrying the request id (added when absent, sent upstream and back).
    #[arg(
        long,
        env = "PORTCULLIS_REQUEST_ID_HEADER",
        default_value = "x-request-id"
    )]
    pub request_id_header: String,
    /// Milliseconds between heartbeats to the control plane.
    #[arg(long, env = "PORTCULLIS_HEARTBEAT_INTERVAL_MS", default_value_t = 2000)]
    pub heartbeat_interval_ms: u64,
    /// Milliseconds of silence after which the control plane is considered gone and the node reconnects.
    #[arg(long, env = "PORTCULLIS_HEARTBEAT_TIMEOUT_MS", default_value_t = 6000)]
    pub heartbeat_timeout_ms: u64,
    /// Largest config message (a full snapshot or a delta, after decompression) this node accepts, in
    /// bytes; larger ones are rejected (NACK).
    #[arg(long, env = "PORTCULLIS_MAX_CONFIG_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_config_bytes: usize,
    /// Entries per plugin cache.
    #[arg(long, env = "PORTCULLIS_CACHE_MAX_ENTRIES", default_value_t = 100_000)]
    pub cache_max_entries: u64,
    /// Extra CA certificates (PEM) trusted for identity providers.
    #[arg(long, env = "PORTCULLIS_IDP_CA_FILE")]
    pub idp_ca_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for HTTPS upstreams.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Sync protocol features to announce: `delta` (incremental updates) and `zstd` (compressed payloads),
    /// comma-separated, or `none` (full, uncompressed snapshots only).
    #[arg(
        long,
        env = "PORTCULLIS_SYNC_FEATURES",
        value_delimiter = ',',
        default_value = "delta,zstd"
    )]
    pub sync_features: Vec<String>,
    /// Milliseconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "PORTCULLIS_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
}

impl Config {
    /// Every setting at its default (or its `PORTCULLIS_*` environment value), for embedding the data
    /// plane in another program or a test.
    pub fn defaults() -> Config {
        <Config as clap::Parser>::parse_from(["data-plane"])
    }
}

/// Already-bound listeners.
pub struct Listeners {
    pub proxy: TcpListener,
    pub status: TcpListener,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners> {
        Ok(Listeners {
            proxy: TcpListener::bind(config.proxy_listen)
                .await
                .with_context(|| {
                    format!("cannot listen on proxy address {}", config.proxy_listen)
                })?,
            status: TcpListener::bind(config.status_listen)
                .await
                .with_context(|| {
                    format!("cannot listen on status address {}", config.status_listen)
                })?,
        })
    }
}

/// Sets up `tracing` to stderr or stdout; the level comes from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat, output: LogOutput) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = move || -> Box<dyn std::io::Write> {
        match output {
            LogOutput::Stderr => Box::new(std::io::stderr()),
            LogOutput::Stdout => Box::new(std::io::stdout()),
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Settings the running node needs.
pub struct Settings {
    pub data_dir: PathBuf,
    pub node_name: String,
    pub request_id_header: http::HeaderName,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_config_bytes: usize,
    /// Plugins this node runs, with versions.
    pub plugins: Vec<(&'static str, &'static str)>,
    /// Protocol features announced in the hello (`delta`, `zstd`).
    pub sync_features: Vec<String>,
}

/// Whether an applied snapshot is stored as last-known-good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    /// Stored durably.
    Yes,
    /// Not asked for (the snapshot came from the store itself).
    NotAsked,
    /// Applied and served, but storing failed for this reason: a restart would lose it.
    Failed(String),
}

/// What the node knows about its control-plane connection.
#[derive(Debug, Clone, Default)]
pub struct CpStatus {
    pub node_id: Option<String>,
    pub connected: bool,
    /// The control plane of the current (or last) stream.
    pub address: Option<String>,
    pub last_error: Option<String>,
    pub last_rejected: Option<String>,
    pub lkg_error: Option<String>,
    /// Why the node's identity (key and certificate) could not be stored, while that is so.
    pub identity_error: Option<String>,
    /// The last update applied from the control plane.
    pub last_sync: Option<LastSync>,
}

/// How the last update from the control plane arrived and what it cost.
#[derive(Debug, Clone)]
pub struct LastSync {
    /// `full` or `delta`.
    pub kind: &'static str,
    pub version: u64,
    /// Bytes on the wire (compressed when it was).
    pub received_bytes: u64,
    /// Time to decode, check and build it.
    pub apply_micros: u64,
    /// CPU time of that work.
    pub apply_cpu_micros: u64,
}

/// A running node.
pub struct Node {
    pub settings: Settings,
    pub runtime: Arc<ArcSwapOption<RuntimeConfig>>,
    pub metrics: Arc<Metrics>,
    pub caches: Arc<Caches>,
    pub clients: Arc<IdpClients>,
    pub lkg: Lkg,
    pub identity: Mutex<Option<Identity>>,
    pub cp_status: Mutex<CpStatus>,
    pub started: Instant,
    /// Where snapshots are built and stored and replaced configs are freed (see [`background`]).
    pub background: background::Background,
}

/// A configuration as the control plane sends it, its payload already decompressed.
#[derive(Debug, Clone)]
pub enum Update {
    /// The whole configuration (`shared::state::encode`).
    Full {
        version: u64,
        hash: String,
        payload: Vec<u8>,
    },
    /// The changes (`shared::delta`) from the config `base_version`/`base_hash` to `version`/`hash`.
    Delta {
        base_version: u64,
        base_hash: String,
        version: u64,
        hash: String,
        changes: Vec<u8>,
    },
}

impl Update {
    /// The version this update brings the node to.
    pub fn version(&self) -> u64 {
        match self {
            Update::Full { version, .. } | Update::Delta { version, .. } => *version,
        }
    }

    /// The content hash of the config this update brings the node to.
    pub fn hash(&self) -> &str {
        match self {
            Update::Full { hash, .. } | Update::Delta { hash, .. } => hash,
        }
    }

    /// `full` or `delta`.
    pub fn kind(&self) -> &'static str {
        match self {
            Update::Full { .. } => "full",
            Update::Delta { .. } => "delta",
        }
    }
}

/// The outcome of an applied update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub persisted: Persisted,
    /// Time spent decoding, checking and building, in microseconds (0 when already live).
    pub micros: u64,
    /// CPU time the configuration thread spent on it, in microseconds.
    pub cpu_micros: u64,
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Node {
    /// Decodes, checks and builds an update, swaps it in, and (when `persist`) stores it as
    /// last-known-good: a full config as a new snapshot, a delta as a journal record (or a new snapshot
    /// when the journal is due for compaction or the stored chain is broken). On error the current config
    /// stays live. An update that is applied but cannot be stored is still served; the answer says why it
    /// is not persisted (and the ACK carries it).
    pub fn apply(&self, update: &Update, persist: bool) -> Result<Applied, String> {
        let version = update.version();
        let hash = update.hash();
        let already_live = self
            .runtime
            .load_full()
            .is_some_and(|cur| cur.hash == hash && cur.version == version);
        let (mut micros, mut cpu_micros) = (0, 0);
        if !already_live {
            let started = Instant::now();
            let cpu_started = thread_cpu_time();
            let rt = match self.build(update) {
                Ok(rt) => rt,
                Err(reason) => {
                    self.metrics.config_rejected.fetch_add(1, Ordering::Relaxed);
                    warn!(version, kind = update.kind(), %reason, "config rejected; keeping the current config");
                    return Err(reason);
                }
            };
            let routes = rt.routes.len();
            let rt = Arc::new(rt);
            if let Some(old) = self.runtime.swap(Some(rt.clone())) {
                self.background.retire(old);
            }
            self.metrics.config_applied.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .config_version
                .store(version, Ordering::Relaxed);
            micros = started.elapsed().as_micros() as u64;
            cpu_micros = thread_cpu_time().saturating_sub(cpu_started).as_micros() as u64;
            info!(
                version,
                hash,
                kind = update.kind(),
                routes,
                elapsed_us = micros,
                cpu_us = cpu_micros,
                "config applied"
            );
        }
        if !persist {
            return Ok(Applied {
                persisted: Persisted::NotAsked,
                micros,
                cpu_micros,
            });
        }
        if already_live && self.lkg_error().is_none() {
            return Ok(Applied {
                persisted: Persisted::Yes,
                micros,
                cpu_micros,
            });
        }
        let outcome = self.persist(update);
        self.metrics
            .lkg_degraded
            .store(u64::from(outcome.is_err()), Ordering::Relaxed);
        let mut st = self.cp_status.lock().expect("cp status lock");
        let persisted = match outcome {
            Ok(()) => {
                st.lkg_error = None;
                Persisted::Yes
            }
            Err(e) => {
                self.metrics
                    .lkg_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                error!(error = %e, version, "cannot store the last-known-good config; serving it anyway");
                st.lkg_error = Some(e.clone());
                Persisted::Failed(e)
            }
        };
        Ok(Applied {
            persisted,
            micros,
            cpu_micros,
        })
    }

    /// Stores the live config after `update`: a delta as a journal record when the journal continues the
    /// stored chain, otherwise the whole config as a snapshot.
    fn persist(&self, update: &Update) -> Result<(), String> {
        let chain_intact = self.lkg_error().is_none();
        match update {
            Update::Delta {
                base_version,
                base_hash,
                version,
                hash,
                changes,
            } if chain_intact && !self.lkg.compaction_due() => self
                .lkg
                .append(&lkg::StoredDelta {
                    base_version: *base_version,
                    base_hash: base_hash.clone(),
                    version: *version,
                    hash: hash.clone(),
                    changes: changes.clone(),
                })
                .map_err(|e| format!("{e:#}")),
            Update::Full {
                version,
                hash,
                payload,
            } => self
                .lkg
                .save(&StoredSnapshot {
                    version: *version,
                    hash: hash.clone(),
                    payload: payload.clone(),
                })
                .map_err(|e| format!("{e:#}")),
            Update::Delta { .. } => {
                let Some(rt) = self.runtime.load_full() else {
                    return Err("no config is live".into());
                };
                self.lkg
                    .save(&StoredSnapshot {
                        version: rt.version,
                        hash: rt.hash.clone(),
                        payload: shared::state::encode(&rt.state),
                    })
                    .map_err(|e| format!("{e:#}"))
            }
        }
    }

    /// Records whether the identity was stored; a node whose identity is only in memory keeps working
    /// and reports it (it would need a new pairing token after a restart).
    pub fn record_identity_saved(&self, saved: Result<()>) {
        let error = saved.err().map(|e| format!("{e:#}"));
        if let Some(e) = &error {
            error!(error = %e, "cannot store the node identity; keeping it in memory");
        }
        self.cp_status
            .lock()
            .expect("cp status lock")
            .identity_error = error;
    }

    /// Why the last-known-good config could not be stored, while that is so.
    pub fn lkg_error(&self) -> Option<String> {
        self.cp_status
            .lock()
            .expect("cp status lock")
            .lkg_error
            .clone()
    }

    fn build(&self, update: &Update) -> Result<RuntimeConfig, String> {
        let resources = self.resources();
        match update {
            Update::Full {
                version,
                hash,
                payload,
            } => {
                if payload.len() > self.settings.max_config_bytes {
                    return Err(format!(
                        "snapshot is {} bytes, larger than this node's limit of {} bytes (--max-config-bytes)",
                        payload.len(),
                        self.settings.max_config_bytes
                    ));
                }
                if let Some(cur) = self.runtime.load_full().filter(|cur| cur.hash == *hash) {
                    // The same content under a new version number: nothing to rebuild.
                    let (state, digest) = (cur.state.clone(), cur.digest.clone());
                    return cur.updated(*version, state, digest, &Default::default(), &resources);
                }
                let (state, digest) = shared::state::decode(payload, hash)?;
                RuntimeConfig::build(*version, Arc::new(state), digest, &resources)
            }
            Update::Delta {
                base_version,
                base_hash,
                version,
                hash,
                changes,
            } => {
                let cur = self.runtime.load_full().ok_or_else(|| {
                    format!("delta from version {base_version}, but this node runs no config")
                })?;
                cur.with_delta(
                    (*base_version, base_hash),
                    (*version, hash),
                    changes,
                    &resources,
                )
            }
        }
    }

    fn resources(&self) -> runtime::Resources {
        runtime::Resources {
            caches: self.caches.clone(),
            metrics: self.metrics.clone(),
            clients: self.clients.clone(),
            allowed: self.settings.plugins.iter().map(|(n, _)| *n).collect(),
        }
    }

    /// The lifetime the current certificate was issued for, in seconds.
    pub fn cert_lifetime_hint(&self, identity: &Identity) -> i64 {
        identity::pem_validity(&identity.cert_pem)
            .map(|(nb, na)| na - nb)
            .unwrap_or(86_400)
    }
}

fn select_plugins(wanted: &[String]) -> Result<Vec<(&'static str, &'static str)>> {
    let all: Vec<(&'static str, &'static str)> = plugins::registry()
        .iter()
        .map(|(n, v, _)| (*n, *v))
        .collect();
    if wanted.iter().any(|w| w == "bundled") {
        return Ok(all);
    }
    let mut out = Vec::new();
    for w in wanted.iter().filter(|w| !w.is_empty() && *w != "off") {
        match all.iter().find(|(n, _)| n == w) {
            Some(p) => out.push(*p),
            None => bail!(
                "--plugins names unknown plugin '{w}' (known: {})",
                all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(out)
}

fn select_features(wanted: &[String]) -> Result<Vec<String>> {
    let known = [proto::payload::FEATURE_DELTA, proto::payload::FEATURE_ZSTD];
    let mut out = Vec::new();
    for w in wanted
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty() && *w != "none")
    {
        if !known.contains(&w) {
            bail!(
                "--sync-features names unknown feature '{w}' (known: {}, or none)",
                known.join(", ")
            );
        }
        if !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    Ok(out)
}

/// Applies the stored snapshot and the journal's deltas after it. A journal that ends early (a torn or
/// damaged record, or a delta that does not apply) is folded into a fresh snapshot of what did apply, so
/// later deltas are appended to a chain that holds.
fn restore_lkg(node: &Node) {
    let stored = match node.lkg.load() {
        Ok(Some(stored)) => stored,
        Ok(None) => return info!("no last-known-good config yet"),
        Err(e) => {
            return error!(error = %format!("{e:#}"), "cannot read the last-known-good config; waiting for the control plane")
        }
    };
    let snap = stored.snapshot;
    let full = Update::Full {
        version: snap.version,
        hash: snap.hash,
        payload: snap.payload,
    };
    if let Err(reason) = node.apply(&full, false) {
        return error!(%reason, "the stored last-known-good config is unusable; waiting for the control plane");
    }
    let mut broken = stored.journal_damage;
    for d in stored.deltas {
        let update = Update::Delta {
            base_version: d.base_version,
            base_hash: d.base_hash,
            version: d.version,
            hash: d.hash,
            changes: d.changes,
        };
        if let Err(reason) = node.apply(&update, false) {
            broken = Some(format!("version {}: {reason}", d.version));
            break;
        }
    }
    if let Some(rt) = node.runtime.load_full() {
        info!(version = rt.version, "serving the last-known-good config");
        if let Some(why) = broken {
            warn!(%why, version = rt.version, "the last-known-good journal ends early; storing what applied as a snapshot");
            let snap = StoredSnapshot {
                version: rt.version,
                hash: rt.hash.clone(),
                payload: shared::state::encode(&rt.state),
            };
            if let Err(e) = node.lkg.save(&snap) {
                warn!(error = %format!("{e:#}"), "cannot rewrite the last-known-good snapshot");
            }
        }
    }
}

/// Runs the data plane until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // A data dir that cannot be created or tightened (a read-only or full disk) does not stop the node:
    // it serves what it can read and what the control plane sends, and reports that nothing persists.
    if let Err(e) = fsutil::private_dir(&config.data_dir) {
        error!(error = %e, dir = %config.data_dir.display(), "cannot prepare the data dir; starting without persistence");
    }
    let node_name = config.node_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "data-plane".into())
    });
    let extra_ca_pem = match &config.idp_ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .with_context(|| format!("cannot read --idp-ca-file {}", p.display()))?,
        ),
        None => None,
    };
    let upstream_ca_pem = match &config.upstream_ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .with_context(|| format!("cannot read --upstream-ca-file {}", p.display()))?,
        ),
        None => None,
    };
    let identity = Identity::load(&config.data_dir.join("identity"))?;
    let node = Arc::new(Node {
        settings: Settings {
            data_dir: config.data_dir.join("identity"),
            node_name: node_name.clone(),
            request_id_header: http::HeaderName::from_bytes(
                config.request_id_header.to_ascii_lowercase().as_bytes(),
            )
            .with_context(|| {
                format!(
                    "--request-id-header '{}' is not a valid header name",
                    config.request_id_header
                )
            })?,
            heartbeat_interval: Duration::from_millis(config.heartbeat_interval_ms.max(10)),
            heartbeat_timeout: Duration::from_millis(config.heartbeat_timeout_ms.max(30)),
            max_config_bytes: config.max_config_bytes,
            plugins: select_plugins(&config.plugins)?,
            sync_features: select_features(&config.sync_features)?,
        },
        runtime: Arc::new(ArcSwapOption::empty()),
        metrics: Arc::new(Metrics::default()),
        caches: Arc::new(Caches::new(config.cache_max_entries)),
        clients: Arc::new(IdpClients::new(extra_ca_pem)),
        lkg: Lkg::open(&config.data_dir.join("lkg")),
        identity: Mutex::new(identity.clone()),
        cp_status: Mutex::new(CpStatus {
            node_id: identity.as_ref().map(|i| i.node_id.clone()),
            ..Default::default()
        }),
        started: Instant::now(),
        background: background::Background::start()
            .context("cannot start the configuration thread")?,
    });

    // Serve the last-known-good config at once.
    restore_lkg(&node);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let proxy_addr = listeners.proxy.local_addr()?;
    let status_addr = listeners.status.local_addr()?;
    let ctx = Arc::new(proxy::ProxyCtx::new(
        node.runtime.clone(),
        node.metrics.clone(),
        proxy::UpstreamClients::new(upstream_ca_pem.as_deref())?,
        node.settings.request_id_header.clone(),
    ));
    let proxy_task = tokio::spawn(proxy::serve(
        listeners.proxy,
        ctx,
        stop_rx.clone(),
        Duration::from_millis(config.drain_timeout_ms),
    ));
    let status_task = tokio::spawn(status::serve(
        listeners.status,
        node.clone(),
        stop_rx.clone(),
    ));
    info!(proxy = %proxy_addr, status = %status_addr, node = %node_name, "data plane started");

    let sync_task = match &config.control_plane {
        Some(list) => {
            let cps = control_planes::ControlPlanes::parse(list)?;
            if node.identity.lock().expect("identity lock").is_none() {
                let token = match (&config.pairing_token, &config.pairing_token_file) {
                    (Some(t), _) => t.trim().to_string(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .with_context(|| {
                            format!("cannot read --pairing-token-file {}", file.display())
                        })?
                        .trim()
                        .to_string(),
                    (None, None) => bail!(
                        "this node has no identity in {}: start it once with --pairing-token or --pairing-token-file",
                        config.data_dir.display()
                    ),
                };
                let token = &token;
                let mut stop = stop_rx.clone();
                let paired = tokio::select! {
                    r = identity::pair(&cps, token, &node_name) => r?,
                    _ = stop.changed() => return Ok(()),
                };
                node.record_identity_saved(paired.save(&node.settings.data_dir));
                info!(node_id = %paired.node_id, "paired with the control plane");
                node.cp_status.lock().expect("cp status lock").node_id =
                    Some(paired.node_id.clone());
                *node.identity.lock().expect("identity lock") = Some(paired);
            }
            Some(
                sync::spawn(node.clone(), cps, stop_rx.clone())
                    .context("cannot start the sync thread")?,
            )
        }
        None => {
            warn!("no --control-plane given: serving the last-known-good config only");
            None
        }
    };

    let _ = proxy_task.await;
    let _ = status_task.await;
    if let Some(t) = sync_task {
        // The sync loop sees the same shutdown signal and returns within one select.
        let joined = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || t.join()),
        )
        .await;
        if joined.is_err() {
            warn!("the sync thread did not stop within 5 s");
        }
    }
    info!("data plane stopped");
    Ok(())
}
