//! The Portcullis control plane: Admin API, durable store, cluster CA, and snapshot distribution to data
//! planes over mutually authenticated gRPC.
//!
//! [`run`] takes already-bound listeners and a shutdown signal, so tests start the real thing on port 0.

pub mod admin;
pub mod ca_seal;
pub mod changelog;
pub mod cluster;
pub mod console;
pub mod core;
pub mod database;
pub mod deck;
pub mod migrate;
pub mod pki;
pub mod sharing;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tracing::info;

use cluster::{Cluster, ClusterSettings};
pub use database::{DatabaseArgs, DatabaseTls, DatabaseUrl};
pub use platform::{init_logging, LogFormat, LogOutput};

/// Control-plane settings; every flag has a `PORTCULLIS_*` environment twin.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "control-plane", version, about = "Portcullis control plane")]
pub struct Config {
    /// Where the store, the cluster CA and the server certificate live.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = "./cp-data")]
    pub data_dir: PathBuf,
    /// Admin API address; without an admin token only a loopback address is allowed.
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_LISTEN",
        default_value = "127.0.0.1:8001"
    )]
    pub admin_listen: SocketAddr,
    /// Operator console address (Kong Manager's port), or `off`; without an admin token only a loopback
    /// address is allowed.
    #[arg(
        long,
        env = "PORTCULLIS_MANAGER_LISTEN",
        default_value = "127.0.0.1:8002"
    )]
    pub manager_listen: console::ManagerListen,
    /// Cluster (gRPC, mTLS) address that data planes dial.
    #[arg(
        long,
        env = "PORTCULLIS_CLUSTER_LISTEN",
        default_value = "0.0.0.0:8005"
    )]
    pub cluster_listen: SocketAddr,
    /// Names (DNS or IP) data planes use to reach the cluster listener; put in its certificate.
    #[arg(
        long = "cluster-hostname",
        env = "PORTCULLIS_CLUSTER_HOSTNAME",
        value_delimiter = ','
    )]
    pub cluster_hostnames: Vec<String>,
    /// The cluster CA's certificate (PEM), when the operator provides the CA; with
    /// `--cluster-ca-key-file`. Several control planes given the same CA are one cluster to nodes. Without
    /// it the control plane creates a CA in its data dir on first start.
    #[arg(
        long,
        env = "PORTCULLIS_CLUSTER_CA_CERT_FILE",
        requires = "cluster_ca_key_file"
    )]
    pub cluster_ca_cert_file: Option<PathBuf>,
    /// The cluster CA's private key (PEM), read in place and never copied; with `--cluster-ca-cert-file`.
    #[arg(
        long,
        env = "PORTCULLIS_CLUSTER_CA_KEY_FILE",
        requires = "cluster_ca_cert_file"
    )]
    pub cluster_ca_key_file: Option<PathBuf>,
    /// File holding the admin token (`Authorization: Bearer <token>` or `Kong-Admin-Token`).
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Browser origin allowed to call the Admin API (CORS), as Kong's `admin_gui_url`: a URL whose origin
    /// is allowed, or `*` for any origin (Kong's default). Unset: no origin is allowed.
    #[arg(long, env = "PORTCULLIS_ADMIN_CORS_ORIGIN")]
    pub admin_cors_origin: Option<admin::cors::CorsOrigin>,
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
    /// The nodes' heartbeat interval, in milliseconds: how often this control plane shares the live status
    /// of its nodes through a shared store, and (three times it) how long one silent is still taken for
    /// alive. A node's heartbeat is answered at once, whatever this says.
    #[arg(long, env = "PORTCULLIS_HEARTBEAT_INTERVAL_MS", default_value_t = 2000)]
    pub heartbeat_interval_ms: u64,
    /// Milliseconds of silence after which a data plane is considered disconnected.
    #[arg(long, env = "PORTCULLIS_HEARTBEAT_TIMEOUT_MS", default_value_t = 6000)]
    pub heartbeat_timeout_ms: u64,
    /// Lifetime of node certificates in seconds; nodes renew in-band when a third of it is left.
    #[arg(long, env = "PORTCULLIS_CERT_LIFETIME_SECS", default_value_t = 86_400)]
    pub cert_lifetime_secs: u64,
    /// Largest body `POST /config` accepts, in bytes (a 10,000-route document is about 5 MB).
    #[arg(long, env = "PORTCULLIS_MAX_CONFIG_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_config_body_bytes: usize,
    /// Versions of changes kept for incremental sync: a node at most this many versions behind is sent
    /// only the changes, others a full snapshot.
    #[arg(long, env = "PORTCULLIS_SYNC_LOG_VERSIONS", default_value_t = 1000)]
    pub sync_log_versions: usize,
    /// Bytes of encoded changes kept for incremental sync (the newest version is always kept).
    #[arg(long, env = "PORTCULLIS_SYNC_LOG_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub sync_log_bytes: usize,
    /// PostgreSQL, when several control planes share the configuration.
    #[command(flatten)]
    pub database: database::DatabaseArgs,
    /// With `--database-url` and no CA files: a file holding 64 hex digits, the key that seals the cluster
    /// CA kept in the database. Every control plane of the cluster is given the same file.
    #[arg(long, env = "PORTCULLIS_CLUSTER_CA_ENCRYPTION_KEY_FILE")]
    pub cluster_ca_encryption_key_file: Option<PathBuf>,
    /// A file holding 64 hex digits, the key that seals Certificates' private keys in the store. Default:
    /// `--cluster-ca-encryption-key-file`; with the embedded store, `<data-dir>/secrets.key`, made on
    /// first start. Control planes sharing a database are all given the same file.
    #[arg(long, env = "PORTCULLIS_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// This control plane's name in the node view (default: the first cluster hostname, or the host's
    /// name, with the cluster port).
    #[arg(long, env = "PORTCULLIS_CONTROL_PLANE_NAME")]
    pub control_plane_name: Option<String>,
    /// Name servers Target host names are checked against when written, `ip[:port]` separated by commas
    /// (default: the system's `/etc/resolv.conf`; the hosts file is read either way). Give the nodes
    /// the same.
    #[arg(long, env = "PORTCULLIS_DNS_RESOLVER")]
    pub dns_resolver: Option<shared::dns::Nameservers>,
}

impl Config {
    /// Every setting at its default (or its `PORTCULLIS_*` environment value), for embedding the control
    /// plane in another program or a test.
    pub fn defaults() -> Config {
        <Config as clap::Parser>::parse_from(["control-plane"])
    }
}

/// Already-bound listeners.
pub struct Listeners {
    /// Admin API.
    pub admin: TcpListener,
    /// Cluster gRPC.
    pub cluster: TcpListener,
    /// The operator console, when it is served.
    pub manager: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners> {
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on admin address {}", config.admin_listen))?;
        let cluster = TcpListener::bind(config.cluster_listen)
            .await
            .with_context(|| {
                format!("cannot listen on cluster address {}", config.cluster_listen)
            })?;
        let manager = match config.manager_listen {
            console::ManagerListen::Off => None,
            console::ManagerListen::At(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on console address {addr}"))?,
            ),
        };
        Ok(Listeners {
            admin,
            cluster,
            manager,
        })
    }
}

fn read_admin_token(config: &Config) -> Result<Option<String>> {
    let Some(path) = &config.admin_token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read admin token file {}", path.display()))?
        .trim()
        .to_string();
    if token.len() < 16 {
        bail!(
            "admin token in {} is shorter than 16 characters",
            path.display()
        );
    }
    Ok(Some(token))
}

/// Opens PostgreSQL when `--database-url` is given, else the embedded store in the data dir; either way
/// its writes are timed into `times` ([`store::TimedStore`]) and Certificates' private keys are sealed in
/// it ([`store::SealingStore`]).
async fn open_store(
    config: &Config,
    times: Arc<store::StoreTimes>,
) -> Result<Arc<dyn store::Store>> {
    let opened: Arc<dyn store::Store> = match config.database.settings()? {
        None => {
            let dir = config.data_dir.join("store");
            Arc::new(store::SledStore::open(&dir).with_context(|| {
                format!("cannot open the store in {}", config.data_dir.display())
            })?)
        }
        Some(settings) => Arc::new(
            store::PgStore::connect(settings)
                .await
                .context("cannot open the PostgreSQL store")?,
        ),
    };
    let inner: Arc<dyn store::Store> = Arc::new(store::TimedStore::new(opened, times));
    let key = store::sealing_key(
        config.secrets_key_file.as_deref(),
        config.cluster_ca_encryption_key_file.as_deref(),
        &config.data_dir,
        inner.shared(),
    )?;
    if key.is_none() {
        tracing::warn!(
            "no --secrets-key-file: Certificates (TLS private keys) cannot be stored until every control \
             plane is given one"
        );
    }
    Ok(Arc::new(store::SealingStore::new(inner, key)))
}

/// The name other control planes and the node view know this one by.
fn control_plane_name(config: &Config, cluster_addr: SocketAddr) -> String {
    if let Some(name) = &config.control_plane_name {
        return name.clone();
    }
    let host = config
        .cluster_hostnames
        .first()
        .cloned()
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "control-plane".into())
        });
    format!("{host}:{}", cluster_addr.port())
}

/// Runs the control plane until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let admin_addr = listeners.admin.local_addr()?;
    let cluster_addr = listeners.cluster.local_addr()?;
    let admin_token = read_admin_token(&config)?;
    if admin_token.is_none() && !admin_addr.ip().is_loopback() {
        bail!("the admin API listens on {admin_addr}, which is not a loopback address: set --admin-token-file");
    }
    let manager_addr = listeners
        .manager
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    if let (None, Some(addr)) = (&admin_token, manager_addr) {
        if !addr.ip().is_loopback() {
            bail!("the console listens on {addr}, which is not a loopback address: set --admin-token-file");
        }
    }
    platform::files::private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let store_times = Arc::new(store::StoreTimes::default());
    let store = open_store(&config, store_times.clone()).await?;
    let core = Arc::new(
        core::Core::open(
            store.clone(),
            changelog::LogLimits {
                versions: config.sync_log_versions,
                bytes: config.sync_log_bytes,
            },
        )
        .await
        .context("cannot load the configuration from the store")?,
    );
    let (ca_kind, shared_ca) = match (
        &config.cluster_ca_cert_file,
        &config.cluster_ca_encryption_key_file,
    ) {
        (Some(_), _) => ("operator", None),
        (None, Some(key_file)) if store.shared() => {
            let key = ca_seal::read_key(key_file)?;
            ("database", Some(ca_seal::shared_ca(store.as_ref(), &key).await?))
        }
        (None, Some(_)) => bail!("--cluster-ca-encryption-key-file is for a CA kept in the database: give --database-url too"),
        (None, None) if store.shared() => bail!(
            "control planes sharing a database need one cluster CA: give --cluster-ca-cert-file and \
             --cluster-ca-key-file, or --cluster-ca-encryption-key-file to keep it in the database"
        ),
        (None, None) => ("generated", None),
    };
    let ca_source = match (
        &config.cluster_ca_cert_file,
        &config.cluster_ca_key_file,
        &shared_ca,
    ) {
        (Some(cert), Some(key), _) => pki::CaSource::Files { cert, key },
        (_, _, Some((cert, key))) => pki::CaSource::Pem { cert, key },
        _ => pki::CaSource::DataDir,
    };
    let pki = pki::ClusterPki::load_or_create(
        &pki::pki_dir(&config.data_dir),
        &config.cluster_hostnames,
        ca_source,
    )?;
    let tls = pki.server_tls_config()?;

    let (published_tx, published_rx) = watch::channel(None);
    let (status_tx, status_rx) = watch::channel(Default::default());
    let encode_times = Arc::new(cluster::counters::EncodeTimes::default());
    let publisher = tokio::spawn(cluster::snapshots::run_publisher(
        core.subscribe(),
        core.log().clone(),
        encode_times.clone(),
        published_tx,
        status_tx,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let cluster = Arc::new(Cluster {
        pki,
        nodes: cluster::nodes::Nodes::load(
            store.clone(),
            control_plane_name(&config, cluster_addr),
        )
        .await?,
        settings: ClusterSettings {
            heartbeat_interval: Duration::from_millis(config.heartbeat_interval_ms.max(10)),
            heartbeat_timeout: Duration::from_millis(config.heartbeat_timeout_ms.max(30)),
            cert_lifetime: Duration::from_secs(config.cert_lifetime_secs.max(2)),
        },
        snapshots: published_rx,
        publish_status: status_rx,
        encode_times,
        purges: broadcast::channel(1024).0,
        revocations: broadcast::channel(1024).0,
        shutdown: stop_rx.clone(),
    });
    let ctx = Arc::new(admin::AdminCtx {
        core: core.clone(),
        cluster: cluster.clone(),
        admin_token,
        cors_origin: config.admin_cors_origin.clone(),
        server_stats: Default::default(),
        store_times,
        configuration: json!({
            "admin_listen": admin_addr.to_string(),
            "manager_listen": manager_addr.map(|a| a.to_string()),
            "cluster_listen": cluster_addr.to_string(),
            "cluster_hostnames": config.cluster_hostnames,
            "cluster_ca": ca_kind,
            "database": if store.shared() { "postgres" } else { "embedded" },
            "control_plane_name": cluster.nodes.name(),
            "data_dir": config.data_dir.display().to_string(),
            "admin_token_required": config.admin_token_file.is_some(),
            "heartbeat_interval_ms": cluster.settings.heartbeat_interval.as_millis() as u64,
            "heartbeat_timeout_ms": cluster.settings.heartbeat_timeout.as_millis() as u64,
            "cert_lifetime_secs": cluster.settings.cert_lifetime.as_secs(),
            "max_config_body_bytes": config.max_config_body_bytes,
            "sync_log_versions": config.sync_log_versions,
            "sync_log_bytes": config.sync_log_bytes,
            "ca_fingerprint": cluster.pki.ca_fingerprint,
            "dns_resolver": config.dns_resolver.as_ref().map(|n| n.0.iter().map(ToString::to_string).collect::<Vec<_>>()),
        }),
        issuers: Default::default(),
        config_body_limit: config.max_config_body_bytes,
        targets: admin::targets::TargetResolver::new(config.dns_resolver.as_ref()),
    });

    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Both end when the shutdown begins; they are awaited below, so the store is released on return.
    let mut sharing_tasks = vec![tokio::spawn(sharing::follow(
        core.clone(),
        cluster.clone(),
        stop_rx.clone(),
    ))];
    if store.shared() {
        sharing_tasks.push(tokio::spawn(sharing::report(
            core.clone(),
            cluster.clone(),
            cluster.settings.heartbeat_interval,
            stop_rx.clone(),
        )));
    }
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let console_server = listeners.manager.map(|listener| {
        let console = Arc::new(console::ConsoleCtx {
            admin: console::AdminClient::new(admin::router(ctx.clone()), ctx.admin_token.clone()),
            admin_token: ctx.admin_token.clone(),
            sessions: Default::default(),
        });
        axum::serve(listener, console::router(console))
            .with_graceful_shutdown(stopped(stop_rx.clone()))
    });
    let admin_listener =
        admin::server_stats::CountingListener::new(listeners.admin, ctx.server_stats.clone());
    let admin_server = axum::serve(admin_listener, admin::router(ctx))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let keepalive = proto::keepalive_interval(cluster.settings.heartbeat_timeout);
    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(keepalive))
        .add_service(
            proto::cluster_server::ClusterServer::new(cluster::service::ClusterService::new(
                cluster.clone(),
            ))
            .max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(
            cluster::transport::incoming(listeners.cluster, tls),
            stopped(stop_rx.clone()),
        );
    if let Some(addr) = manager_addr {
        info!(console = %format!("http://{addr}/"), "operator console listening");
    }
    info!(admin = %admin_addr, cluster = %cluster_addr, version = core.current().version, ca_fingerprint = %cluster.pki.ca_fingerprint, "control plane started");

    let (a, m, g) = tokio::join!(
        async { admin_server.await.context("admin API server failed") },
        async {
            match console_server {
                Some(server) => server.await.context("console server failed"),
                None => Ok(()),
            }
        },
        async {
            // Long-lived sync streams end when the sessions see the shutdown; once shutdown has begun, bound
            // the wait for them (and only then: the server itself runs for as long as the process).
            tokio::pin!(grpc);
            tokio::select! {
                r = &mut grpc => r.context("cluster server failed"),
                _ = stopped(stop_rx.clone()) => match tokio::time::timeout(Duration::from_secs(10), &mut grpc).await {
                    Ok(r) => r.context("cluster server failed"),
                    Err(_) => Ok(()),
                },
            }
        }
    );
    publisher.abort();
    let _ = publisher.await;
    for task in sharing_tasks {
        let _ = task.await;
    }
    // Sync sessions end on their own once they see the shutdown; the store (and the embedded store's
    // lock on its files) is released when the last of them is gone, so a restart in the same process can
    // open it again. Bounded: a stuck task must not keep the process from exiting.
    let store_in_use = Arc::downgrade(&store);
    drop((store, core, cluster));
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        while store_in_use.strong_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if released.is_err() {
        tracing::warn!("the store was still in use 10 s after the shutdown began");
    }
    info!("control plane stopped");
    a.and(m).and(g)
}
