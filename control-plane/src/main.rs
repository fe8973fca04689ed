use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let args = control_plane::migrate::MigrateArgs::parse_from(std::env::args().skip(1));
        let moved = control_plane::migrate::run(&args).await?;
        println!(
            "moved configuration version {} ({} entities), {} nodes and {} pairing tokens into PostgreSQL",
            moved.version, moved.entities, moved.nodes, moved.pairing_tokens
        );
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("config") {
        let args = control_plane::deck::ConfigArgs::parse_from(std::env::args().skip(1));
        match control_plane::deck::run(&args).await {
            Ok(outcome) => {
                println!("{}", outcome.text);
                std::process::exit(outcome.status);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    }
    let config = control_plane::Config::parse();
    control_plane::init_logging(config.log_format, config.log_output);
    let listeners = control_plane::Listeners::bind(&config).await?;
    control_plane::run(config, listeners, shutdown_signal()).await
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
