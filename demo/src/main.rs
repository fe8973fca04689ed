use clap::{Parser, Subcommand};

use demo::services::{ConfigureArgs, EchoArgs, IdpArgs};

/// The Portcullis quickstart; its parts run alone as subcommands (as the container image does).
#[derive(Parser)]
#[command(name = "demo", version)]
struct Cli {
    #[command(subcommand)]
    service: Option<Service>,
    #[command(flatten)]
    quickstart: demo::quickstart::Options,
}

#[derive(Subcommand)]
enum Service {
    /// The development identity provider alone (users alex/doe, bob/builder; clients kong, app).
    Idp(IdpArgs),
    /// The echo upstream alone.
    Echo(EchoArgs),
    /// Apply a decK file to a control plane and write an enrollment token for data planes.
    Configure(ConfigureArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json_logs = std::env::var("PORTCULLIS_LOG_FORMAT").is_ok_and(|f| f == "json");
    let format = if json_logs {
        control_plane::LogFormat::Json
    } else {
        control_plane::LogFormat::Text
    };
    let output = match std::env::var("PORTCULLIS_LOG_OUTPUT").as_deref() {
        Ok("stdout") => control_plane::LogOutput::Stdout,
        _ => control_plane::LogOutput::Stderr,
    };
    control_plane::init_logging(format, output);
    match cli.service {
        Some(Service::Idp(args)) => demo::services::idp(args).await,
        Some(Service::Echo(args)) => demo::services::echo(args).await,
        Some(Service::Configure(args)) => demo::services::configure(args).await,
        None => {
            let running = demo::quickstart::start(&cli.quickstart).await?;
            println!("{}", running.banner());
            demo::shutdown_signal().await;
            println!("stopping…");
            running.stop().await
        }
    }
}
