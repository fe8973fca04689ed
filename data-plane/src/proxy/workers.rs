//! Thread-per-core serving: `--workers` threads, each with a single-threaded runtime of its own accepting
//! from the same listening sockets (as nginx workers share theirs), with its own upstream pools, so a
//! request and its upstream exchange stay on one thread from accept to response. The status listener,
//! the sync thread and the configuration thread are not workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::error;

use super::ctx::ProxyCtx;
use super::listen::{serve, ProxyListener};

/// The number of workers `--workers 0` means: the cores this process may run on.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serves `listeners` (the plain and the TLS one) on one worker thread per context in `contexts` until
/// `shutdown` turns true and their in-flight requests have finished (each within `drain`).
pub async fn serve_on_workers(
    listeners: Vec<ProxyListener>,
    contexts: Vec<ProxyCtx>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> Result<()> {
    let listeners = listeners
        .into_iter()
        .map(|l| Ok((l.tcp.into_std()?, l.tls)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot take over the proxy listeners")?;
    let mut done = Vec::with_capacity(contexts.len());
    for (n, ctx) in contexts.into_iter().enumerate() {
        let mut sockets = Vec::with_capacity(listeners.len());
        for (listener, tls) in &listeners {
            let socket = listener
                .try_clone()
                .context("cannot share a proxy listener with a worker")?;
            // Every worker's runtime polls the socket itself: it must never block.
            socket.set_nonblocking(true)?;
            sockets.push((socket, tls.clone()));
        }
        let ctx = Arc::new(ctx);
        let shutdown = shutdown.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{n}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return error!(error = %e, worker = n, "cannot start a proxy worker"),
                };
                rt.block_on(async move {
                    let mut served = Vec::with_capacity(sockets.len());
                    for (socket, tls) in sockets {
                        match TcpListener::from_std(socket) {
                            Ok(tcp) => served.push(serve(
                                ProxyListener { tcp, tls },
                                ctx.clone(),
                                shutdown.clone(),
                                drain,
                            )),
                            Err(e) => {
                                error!(error = %e, worker = n, "a proxy worker cannot listen")
                            }
                        }
                    }
                    futures::future::join_all(served).await;
                });
                let _ = tx.send(());
            })
            .context("cannot start a proxy worker thread")?;
        done.push(rx);
    }
    for rx in done {
        // A worker that ended early (its error is logged) counts as finished.
        let _ = rx.await;
    }
    Ok(())
}
