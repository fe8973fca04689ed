//! The node's command-line flags (each with a `PORTCULLIS_*` environment twin), its listeners, and the
//! checks that turn flags into settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;

pub use platform::{init_logging, LogFormat, LogOutput};

use crate::plugins;

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
    /// TLS proxy address (certificates from the configuration's SNIs), or `off`.
    #[arg(
        long,
        env = "PORTCULLIS_PROXY_LISTEN_TLS",
        default_value = "0.0.0.0:8443"
    )]
    pub proxy_listen_tls: TlsListen,
    /// PEM certificate chain the TLS listener presents when no SNI matches (default: a self-signed
    /// certificate for `localhost` made at start).
    #[arg(
        long,
        env = "PORTCULLIS_PROXY_TLS_CERT_FILE",
        requires = "proxy_tls_key_file"
    )]
    pub proxy_tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--proxy-tls-cert-file`.
    #[arg(
        long,
        env = "PORTCULLIS_PROXY_TLS_KEY_FILE",
        requires = "proxy_tls_cert_file"
    )]
    pub proxy_tls_key_file: Option<PathBuf>,
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
    /// Sync protocol features to announce: `delta` (incremental updates), `zstd` (compressed payloads) and
    /// `parts` (large payloads in several messages), comma-separated, or `none` (full, uncompressed
    /// snapshots only, each in one message).
    #[arg(
        long,
        env = "PORTCULLIS_SYNC_FEATURES",
        value_delimiter = ',',
        default_value = "delta,zstd,parts"
    )]
    pub sync_features: Vec<String>,
    /// Proxy worker threads, each with a single-threaded runtime and its own upstream pools, accepting from
    /// the proxy listener (default: one per core this process may run on); 0 serves the proxy on the
    /// main runtime instead.
    #[arg(long, env = "PORTCULLIS_WORKERS")]
    pub workers: Option<usize>,
    /// Name servers that resolve Target host names, `ip[:port]` separated by commas (default: the
    /// system's `/etc/resolv.conf`; the hosts file is read either way).
    #[arg(long, env = "PORTCULLIS_DNS_RESOLVER")]
    pub dns_resolver: Option<shared::dns::Nameservers>,
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

/// `--proxy-listen-tls`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsListen(pub Option<SocketAddr>);

impl std::str::FromStr for TlsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<TlsListen, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(TlsListen(None));
        }
        s.parse()
            .map(|a| TlsListen(Some(a)))
            .map_err(|e| format!("expected an address such as 0.0.0.0:8443, or off: {e}"))
    }
}

/// Already-bound listeners.
pub struct Listeners {
    pub proxy: TcpListener,
    /// The TLS proxy listener, unless `--proxy-listen-tls off`.
    pub proxy_tls: Option<TcpListener>,
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
            proxy_tls: match config.proxy_listen_tls.0 {
                Some(addr) => Some(
                    TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on TLS proxy address {addr}"))?,
                ),
                None => None,
            },
            status: TcpListener::bind(config.status_listen)
                .await
                .with_context(|| {
                    format!("cannot listen on status address {}", config.status_listen)
                })?,
        })
    }
}

/// The plugins `--plugins` names, with their versions.
pub(crate) fn select_plugins(wanted: &[String]) -> Result<Vec<(&'static str, &'static str)>> {
    let all: Vec<(&'static str, &'static str)> = plugins::registry()
        .iter()
        .map(|r| (r.name, r.version))
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

/// The sync features `--sync-features` names.
pub(crate) fn select_features(wanted: &[String]) -> Result<Vec<String>> {
    let known = [
        proto::payload::FEATURE_DELTA,
        proto::payload::FEATURE_ZSTD,
        proto::payload::FEATURE_PARTS,
    ];
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
