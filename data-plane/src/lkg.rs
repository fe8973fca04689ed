//! The last-known-good configuration on the node's disk (sled): the snapshot the node last applied, so it
//! can serve at once after a restart, with or without the control plane.

use std::path::Path;

use anyhow::{Context, Result};

/// A stored snapshot.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    pub version: u64,
    pub hash: String,
    pub payload: Vec<u8>,
}

/// The node's durable store.
pub struct Lkg {
    db: sled::Db,
}

impl Lkg {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Lkg> {
        // The store holds one snapshot; sled's default 1 GiB page cache would only add resident memory.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .with_context(|| {
                format!("cannot open the last-known-good store in {}", dir.display())
            })?;
        Ok(Lkg { db })
    }

    /// The stored snapshot, if any. A damaged record is reported, never half-used.
    pub fn load(&self) -> Result<Option<StoredSnapshot>> {
        let (Some(version), Some(hash), Some(payload)) = (
            self.db.get("version")?,
            self.db.get("hash")?,
            self.db.get("payload")?,
        ) else {
            return Ok(None);
        };
        let version = u64::from_be_bytes(
            version
                .as_ref()
                .try_into()
                .context("stored snapshot version is corrupt")?,
        );
        let hash = String::from_utf8(hash.to_vec()).context("stored snapshot hash is corrupt")?;
        Ok(Some(StoredSnapshot {
            version,
            hash,
            payload: payload.to_vec(),
        }))
    }

    /// Replaces the stored snapshot atomically and durably.
    pub fn save(&self, snap: &StoredSnapshot) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert("version", &snap.version.to_be_bytes());
        batch.insert("hash", snap.hash.as_bytes());
        batch.insert("payload", snap.payload.as_slice());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}
