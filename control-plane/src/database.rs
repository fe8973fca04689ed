//! The PostgreSQL flags, shared by the control plane and `control-plane migrate`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::store::PgSettings;

/// How to reach PostgreSQL; every flag has a `PORTCULLIS_*` twin.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL shared by several control planes (`postgres://user:password@host:port/database`);
    /// without it the configuration lives in the embedded store in the data dir.
    #[arg(long, env = "PORTCULLIS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
    /// A file holding the database URL (a container secret), instead of `--database-url`.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,
    /// Most PostgreSQL connections in the pool.
    #[arg(long, env = "PORTCULLIS_DATABASE_POOL_SIZE", default_value_t = 8)]
    pub database_pool_size: usize,
    /// TLS to PostgreSQL: `disable`, or `verify-full` (certificate and host name checked).
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_TLS",
        value_enum,
        default_value = "disable"
    )]
    pub database_tls: DatabaseTls,
    /// CA certificates (PEM) for `--database-tls verify-full`; the public web roots without it.
    #[arg(long, env = "PORTCULLIS_DATABASE_TLS_CA_FILE")]
    pub database_tls_ca_file: Option<PathBuf>,
    /// Longest a database statement may run, in milliseconds.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub database_statement_timeout_ms: u64,
    /// Longest a database connection attempt (or a wait for a pooled connection) may take, in ms.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_CONNECT_TIMEOUT_MS",
        default_value_t = 3000
    )]
    pub database_connect_timeout_ms: u64,
    /// How often to check the database for changes in case a notification was missed, in ms.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_POLL_INTERVAL_MS",
        default_value_t = 5000
    )]
    pub database_poll_interval_ms: u64,
}

impl DatabaseArgs {
    /// The store settings, or `None` when no database is configured (the URL given directly or read
    /// from `--database-url-file`).
    pub fn settings(&self) -> Result<Option<PgSettings>> {
        let from_file = match &self.database_url_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read --database-url-file {}", path.display())
                })?;
                let url = text
                    .trim()
                    .parse::<DatabaseUrl>()
                    .map_err(|e| anyhow::anyhow!("--database-url-file {}: {e}", path.display()))?;
                Some(url)
            }
            None => None,
        };
        let Some(url) = self.database_url.as_ref().or(from_file.as_ref()) else {
            return Ok(None);
        };
        Ok(Some(PgSettings {
            url: url.0.clone(),
            pool_size: self.database_pool_size,
            tls: self.database_tls == DatabaseTls::VerifyFull,
            tls_ca_file: self.database_tls_ca_file.clone(),
            statement_timeout: Duration::from_millis(self.database_statement_timeout_ms),
            connect_timeout: Duration::from_millis(self.database_connect_timeout_ms.max(100)),
            poll_interval: Duration::from_millis(self.database_poll_interval_ms.max(50)),
        }))
    }
}

/// A database URL. It holds the password, so it is never printed.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DatabaseUrl(s.to_string()))
        } else {
            Err("expected postgres://user:password@host:port/database".into())
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres://[redacted]")
    }
}

/// TLS to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatabaseTls {
    /// Clear text (a private network or a local socket).
    Disable,
    /// TLS with the server's certificate and name verified.
    VerifyFull,
}
