//! The demo's parts as standalone services, for the container image: the development identity provider,
//! the echo upstream, and a one-shot `configure` that loads a decK file into a control plane and writes
//! an enrollment token for the data planes to a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::echo::EchoUpstream;
use crate::idp::{DemoIdp, IdpSetup};

/// `demo idp`: the development identity provider on its own.
#[derive(Debug, Clone, clap::Args)]
pub struct IdpArgs {
    #[arg(
        long,
        env = "PORTCULLIS_DEMO_IDP_LISTEN",
        default_value = "0.0.0.0:9080"
    )]
    pub listen: SocketAddr,
    /// The issuer identifier, as data planes reach it (default: http://<listen address>).
    #[arg(long, env = "PORTCULLIS_DEMO_IDP_ISSUER")]
    pub issuer: Option<String>,
}

/// `demo echo`: the echo upstream on its own.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    #[arg(
        long,
        env = "PORTCULLIS_DEMO_ECHO_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub listen: SocketAddr,
}

/// `demo configure`: applies a declarative file and writes an enrollment token.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigureArgs {
    /// The control plane's Admin API.
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    pub admin: String,
    /// File holding the admin token.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// decK-style file to apply (YAML or JSON).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Where to write a new enrollment token (owner-only); nothing is written when absent.
    #[arg(long)]
    pub token_out: Option<PathBuf>,
    /// How many nodes the token admits.
    #[arg(long, default_value_t = 100)]
    pub max_uses: u32,
    /// Its lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl: u64,
    /// How long to wait for the control plane to answer, in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
}

/// Runs the identity provider until the process is stopped.
pub async fn idp(args: IdpArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let idp = DemoIdp::start_as(listener, IdpSetup::default(), args.issuer).await;
    tracing::info!(issuer = %idp.issuer, listen = %args.listen, "demo identity provider started");
    crate::shutdown_signal().await;
    Ok(())
}

/// Runs the echo upstream until the process is stopped.
pub async fn echo(args: EchoArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let up = EchoUpstream::start_on(listener).await;
    tracing::info!(url = %up.url, "echo upstream started");
    crate::shutdown_signal().await;
    Ok(())
}

/// Waits for the control plane, applies the file, writes the token.
pub async fn configure(args: ConfigureArgs) -> Result<()> {
    let token = match &args.admin_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let req = |method: reqwest::Method, path: &str| {
        let r = client.request(
            method,
            format!("{}{path}", args.admin.trim_end_matches('/')),
        );
        match &token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    loop {
        match req(reqwest::Method::GET, "/status").send().await {
            Ok(r) if r.status().is_success() => break,
            Ok(r) if r.status().as_u16() == 401 => bail!("the admin API refused the admin token"),
            _ if tokio::time::Instant::now() >= deadline => {
                bail!(
                    "the control plane at {} did not answer within {} s",
                    args.admin,
                    args.wait
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    if let Some(file) = &args.file {
        let body =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let r = req(reqwest::Method::POST, "/config")
            .header("content-type", "application/yaml")
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{} was refused: {}", file.display(), r.text().await?);
        }
        let version = r.json::<Value>().await?["config_version"].clone();
        tracing::info!(file = %file.display(), %version, "configuration applied");
    }
    if let Some(out) = &args.token_out {
        let r = req(reqwest::Method::POST, "/clustering/pairing-tokens")
            .json(&json!({"ttl": args.ttl, "max_uses": args.max_uses, "labels": {"enrolled-by": "configure"}}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the enrollment token was refused: {}", r.text().await?);
        }
        let created: Value = r.json().await?;
        let token = created["token"]
            .as_str()
            .context("no token in the answer")?;
        platform::files::write_private(out, token)?;
        tracing::info!(file = %out.display(), max_uses = args.max_uses, "enrollment token written");
    }
    Ok(())
}
