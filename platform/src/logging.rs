//! Log output of both planes: `tracing` as text or JSON lines, to stderr or stdout.

/// How logs are written.
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

/// Sets up `tracing` to `output` in `format`; the level comes from `RUST_LOG` (default `info`). A second
/// call (tests start several planes in one process) keeps the first setup.
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
