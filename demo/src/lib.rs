//! The Portcullis quickstart: one command to a running local cluster (control plane, two data planes, a
//! development identity provider and an echo upstream), configured through the real Admin API.

pub mod echo;
pub mod idp;
pub mod quickstart;
pub mod services;

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
