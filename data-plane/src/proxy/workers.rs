//! Thread-per-core serving: `--workers` threads, each with a single-threaded runtime of its own accepting
//! from the same listening socket (as nginx workers share theirs), with its own upstream pools, so a
//! request and its upstream exchange stay on one thread from accept to response. The status listener,
//! the sync thread and the configuration thread are not workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::error;

use super::{serve, ProxyCtx};

/// The number of workers `--workers 0` means: the cores this process may run on.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serves `listener` on one worker thread per context in `contexts` until `shutdown` turns true and their
/// in-flight requests have finished (each within `drain`).
pub async fn serve_on_workers(
    listener: TcpListener,
    contexts: Vec<ProxyCtx>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> Result<()> {
    let listener = listener
        .into_std()
        .context("cannot take over the proxy listener")?;
    let mut done = Vec::with_capacity(contexts.len());
    for (n, ctx) in contexts.into_iter().enumerate() {
        let socket = listener
            .try_clone()
            .context("cannot share the proxy listener with a worker")?;
        // Every worker's runtime polls the socket itself: it must never block.
        socket.set_nonblocking(true)?;
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
                    match TcpListener::from_std(socket) {
                        Ok(listener) => serve(listener, ctx, shutdown, drain).await,
                        Err(e) => error!(error = %e, worker = n, "a proxy worker cannot listen"),
                    }
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
