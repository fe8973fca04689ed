use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = data_plane::Config::parse();
    data_plane::init_logging(config.log_format, config.log_output);
    let listeners = data_plane::Listeners::bind(&config).await?;
    data_plane::run(config, listeners, shutdown_signal()).await
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
