//! `control-plane migrate`: moves a configuration from the embedded store into an empty PostgreSQL
//! database, with its ids, timestamps and config version kept, and the paired nodes and pairing tokens with
//! it. Given the old control plane's CA as files (`<data-dir>/pki/cluster-ca.pem` and `.key`), the control
//! planes on PostgreSQL are the same cluster to the nodes, which stay in sync without re-pairing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shared::{Change, Kind, StateDigest};

use crate::changelog;
use crate::database::DatabaseArgs;
use crate::store::{PgStore, Records, SealingStore, SledStore, Store};

/// `control-plane migrate` arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "control-plane migrate",
    about = "Copy an embedded-store configuration into an empty PostgreSQL database"
)]
pub struct MigrateArgs {
    /// The data dir of the control plane whose configuration moves (stopped).
    #[arg(long)]
    pub from_data_dir: PathBuf,
    /// The PostgreSQL database to fill (its configuration must be empty).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The key the control planes on the database seal private keys with (`--secrets-key-file`);
    /// needed when the configuration holds Certificates.
    #[arg(long, env = "PORTCULLIS_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
}

/// What was moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub version: u64,
    pub entities: usize,
    pub nodes: usize,
    pub pairing_tokens: usize,
}

/// Copies the configuration, node records and pairing tokens.
pub async fn run(args: &MigrateArgs) -> Result<Moved> {
    let store_dir = args.from_data_dir.join("store");
    if !store_dir.is_dir() {
        bail!(
            "{} holds no embedded store (expected {})",
            args.from_data_dir.display(),
            store_dir.display()
        );
    }
    let from = SledStore::open(&store_dir)
        .with_context(|| format!("cannot open the store in {}", store_dir.display()))?;
    // The embedded store's own key, if it ever sealed one.
    let from_key = args.from_data_dir.join("secrets.key");
    let from_key = match from_key.exists() {
        true => Some(crate::ca_seal::read_key_flag(&from_key, "secrets.key")?),
        false => None,
    };
    let from = SealingStore::new(Arc::new(from), from_key);
    let (state, version) = from.load().await?;
    let nodes = from.list_records(Records::Nodes).await?;
    let tokens = from.list_records(Records::PairingTokens).await?;

    let settings = args
        .database
        .settings()?
        .context("give the database to fill: --database-url or --database-url-file")?;
    let to = PgStore::connect(settings)
        .await
        .context("cannot open the PostgreSQL store")?;
    if !state.certificates.is_empty() && args.secrets_key_file.is_none() {
        bail!(
            "the configuration holds Certificates: give --secrets-key-file, the key the control planes on \
             the database will seal their private keys with"
        );
    }
    let to_key = match &args.secrets_key_file {
        Some(path) => Some(crate::ca_seal::read_key_flag(path, "--secrets-key-file")?),
        None => None,
    };
    let to = SealingStore::new(Arc::new(to), to_key);
    let _lock = to.lock_writes().await?;
    let (existing, existing_version) = to.load().await?;
    if existing_version != 0 || !existing.is_empty() {
        bail!(
            "the database already holds configuration version {existing_version}; migrate into an \
             empty database"
        );
    }
    let changes: Vec<Change> = Kind::ALL
        .into_iter()
        .flat_map(|kind| state.list(kind))
        .map(Change::Put)
        .collect();
    let hash = StateDigest::of(&state).hex();
    // The same version and content: nodes at it stay in sync.
    let record = changelog::encode_record(&hash, &changes);
    to.commit(0, &changes, version.max(1), &record).await?;
    for (id, value) in &nodes {
        to.put_record(Records::Nodes, id, value).await?;
    }
    for (id, value) in &tokens {
        to.put_record(Records::PairingTokens, id, value).await?;
    }
    Ok(Moved {
        version: version.max(1),
        entities: changes.len(),
        nodes: nodes.len(),
        pairing_tokens: tokens.len(),
    })
}
