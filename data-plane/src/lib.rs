//! The Portcullis data plane: a reverse proxy with authentication plugins and per-node caches, configured by
//! snapshots streamed from the control plane and kept on disk as last-known-good.
//!
//! [`run`] takes already-bound listeners and a shutdown signal, so tests start the real thing on port 0.

pub mod background;
pub mod body;
pub mod cache;
pub mod config;
pub mod control_planes;
pub mod dns;
pub mod header_block;
pub mod health;
pub mod identity;
pub mod lkg;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod proxy;
pub mod router;
pub mod runtime;
pub mod status;
pub mod sync;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use config::{init_logging, Config, Listeners, LogFormat, LogOutput};
pub use node::{Applied, CpStatus, LastSync, Node, Persisted, Settings, Update};
pub use platform::unix_now;

/// Runs the data plane until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // A data dir that cannot be created or tightened (a read-only or full disk) does not stop the node:
    // it serves what it can read and what the control plane sends, and reports that nothing persists.
    if let Err(e) = platform::files::private_dir(&config.data_dir) {
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
    let settings = Settings {
        identity_dir: config.data_dir.join("identity"),
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
        plugins: config::select_plugins(&config.plugins)?,
        sync_features: config::select_features(&config.sync_features)?,
        dns_resolver: config.dns_resolver.clone(),
    };
    let node = Arc::new(Node::new(
        settings,
        &config.data_dir.join("lkg"),
        config.cache_max_entries,
        extra_ca_pem,
    )?);

    // Serve the last-known-good config at once.
    node.restore_lkg();

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let proxy_addr = listeners.proxy.local_addr()?;
    let proxy_tls_addr = match &listeners.proxy_tls {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let mut proxy_listeners = vec![proxy::ProxyListener {
        tcp: listeners.proxy,
        tls: None,
    }];
    if let Some(tcp) = listeners.proxy_tls {
        let files = config
            .proxy_tls_cert_file
            .as_deref()
            .zip(config.proxy_tls_key_file.as_deref());
        let acceptor = tls::acceptor(node.certificates_view(), tls::default_certificate(files)?)?;
        proxy_listeners.push(proxy::ProxyListener {
            tcp,
            tls: Some(acceptor),
        });
    }
    let status_addr = listeners.status.local_addr()?;
    // One context per worker (each with its own upstream pools), or one for the main runtime.
    let workers = config.workers.unwrap_or_else(proxy::workers::default_count);
    let contexts = (0..workers.max(1))
        .map(|_| {
            Ok(proxy::ProxyCtx::new(
                node.config_cell(),
                node.metrics().clone(),
                proxy::UpstreamClients::new(upstream_ca_pem.as_deref())?,
                node.settings().request_id_header.clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let proxy_task = if workers == 0 {
        let (ctx, stop) = (
            Arc::new(contexts.into_iter().next().expect("one context")),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let served = proxy_listeners
                .into_iter()
                .map(|l| proxy::serve(l, ctx.clone(), stop.clone(), drain));
            futures::future::join_all(served).await;
            Ok(())
        })
    } else {
        tokio::spawn(proxy::workers::serve_on_workers(
            proxy_listeners,
            contexts,
            stop_rx.clone(),
            drain,
        ))
    };
    let health_task = tokio::spawn(health::follow(node.balancers_view(), stop_rx.clone()));
    let dns_task = tokio::spawn(node.follow_dns(stop_rx.clone()));
    let status_task = tokio::spawn(status::serve(
        listeners.status,
        node.clone(),
        stop_rx.clone(),
    ));
    let proxy_tls = proxy_tls_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    info!(proxy = %proxy_addr, proxy_tls, status = %status_addr, node = %node_name, workers, "data plane started");

    let sync_task = match &config.control_plane {
        Some(list) => {
            let cps = control_planes::ControlPlanes::parse(list)?;
            if node.identity().is_none() {
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
                info!(node_id = %paired.node_id, "paired with the control plane");
                node.adopt_identity(paired);
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

    if let Ok(Err(e)) = proxy_task.await {
        error!(error = %format!("{e:#}"), "the proxy could not be served");
    }
    let _ = status_task.await;
    let _ = health_task.await;
    let _ = dns_task.await;
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
