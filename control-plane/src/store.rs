//! Durable storage of the configuration and the cluster's records.
//!
//! [`Store`] is the seam for other backends (PostgreSQL for several control-plane nodes); [`SledStore`] is
//! the embedded default. Every configuration change commits its entities, the new config version and the
//! version's change-log record (see [`crate::changelog`]) in one transaction and is flushed to disk before
//! the caller is told it succeeded.

use std::path::Path;

use serde_json::Value;
use shared::{Change, ConfigState, Entity, Kind};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use uuid::Uuid;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk or the database engine failed (full disk, I/O error).
    #[error("store i/o failed: {0}")]
    Io(String),
    /// A stored record cannot be decoded; the data dir was damaged or written by an incompatible version.
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Io(e.to_string()),
        }
    }
}

/// A named collection of small JSON records (pairing tokens, nodes, revocations).
#[derive(Debug, Clone, Copy)]
pub enum Records {
    /// Pairing tokens by id (hash of the secret, expiry, labels).
    PairingTokens,
    /// Paired nodes by id.
    Nodes,
}

impl Records {
    fn tree(self) -> &'static str {
        match self {
            Records::PairingTokens => "pairing_tokens",
            Records::Nodes => "nodes",
        }
    }
}

/// Durable storage for the control plane.
pub trait Store: Send + Sync + 'static {
    /// Loads the whole configuration and its version.
    fn load(&self) -> Result<(ConfigState, u64), StoreError>;
    /// Applies `changes`, sets the config version to `version` and stores `log_record` as that version's
    /// change-log record, atomically and durably.
    fn commit(&self, changes: &[Change], version: u64, log_record: &[u8])
        -> Result<(), StoreError>;
    /// Every change-log record kept, oldest first.
    fn load_log(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Drops the change-log records of versions below `oldest_kept`.
    fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError>;
    /// Reads a record.
    fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError>;
    /// Writes a record durably.
    fn put_record(&self, records: Records, id: &str, value: &Value) -> Result<(), StoreError>;
    /// Removes a record durably; returns it if it existed. Atomic: of two concurrent takers only one gets it.
    fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError>;
    /// Replaces a record with `f(current)` atomically (`None` removes it) and returns the record as it
    /// was: of two concurrent updaters each sees the other's result, so `f` can hand out a bounded
    /// resource (uses of an enrollment token) exactly once per unit. `f` may run more than once.
    fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &dyn Fn(Option<&Value>) -> Option<Value>,
    ) -> Result<Option<Value>, StoreError>;
    /// Every record of a collection.
    fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError>;
    /// True when the store answers reads and writes.
    fn healthy(&self) -> bool;
}

/// The embedded sled store: one tree for the configuration (entities and version), one per record kind.
pub struct SledStore {
    db: sled::Db,
    config: sled::Tree,
}

const VERSION_KEY: &[u8] = b"meta/version";
const LOG_PREFIX: &[u8] = b"log/";

fn log_key(version: u64) -> Vec<u8> {
    let mut k = LOG_PREFIX.to_vec();
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn entity_key(kind: Kind, id: &Uuid) -> Vec<u8> {
    format!("e/{}/{}", kind.collection(), id).into_bytes()
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let config = db.open_tree("config")?;
        Ok(SledStore { db, config })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<(ConfigState, u64), StoreError> {
        let mut state = ConfigState::default();
        for kind in Kind::ALL {
            let prefix = format!("e/{}/", kind.collection());
            for item in self.config.scan_prefix(prefix.as_bytes()) {
                let (k, v) = item?;
                let key = String::from_utf8_lossy(&k).to_string();
                let corrupt = |reason: String| StoreError::Corrupt {
                    key: key.clone(),
                    reason,
                };
                let json: Value = serde_json::from_slice(&v).map_err(|e| corrupt(e.to_string()))?;
                let entity = Entity::from_stored(kind, json).map_err(|e| corrupt(e.to_string()))?;
                match entity {
                    Entity::Service(e) => state.services.insert(e.id, e).map(|_| ()),
                    Entity::Route(e) => state.routes.insert(e.id, e).map(|_| ()),
                    Entity::Consumer(e) => state.consumers.insert(e.id, e).map(|_| ()),
                    Entity::Plugin(e) => state.plugins.insert(e.id, e).map(|_| ()),
                };
            }
        }
        let version = match self.config.get(VERSION_KEY)? {
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: "meta/version".into(),
                    reason: format!("expected 8 bytes, found {}", v.len()),
                })?;
                u64::from_be_bytes(bytes)
            }
            None => 0,
        };
        Ok((state, version))
    }

    fn commit(
        &self,
        changes: &[Change],
        version: u64,
        log_record: &[u8],
    ) -> Result<(), StoreError> {
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes
            .iter()
            .map(|c| match c {
                Change::Put(e) => (
                    entity_key(e.kind(), &e.id()),
                    Some(serde_json::to_vec(&e.to_json()).expect("entities serialise")),
                ),
                Change::Delete(kind, id) => (entity_key(*kind, id), None),
            })
            .collect();
        let log_key = log_key(version);
        self.config.transaction(|tx| {
            for (k, v) in &encoded {
                match v {
                    Some(v) => tx.insert(k.as_slice(), v.as_slice())?,
                    None => tx.remove(k.as_slice())?,
                };
            }
            tx.insert(VERSION_KEY, &version.to_be_bytes())?;
            tx.insert(log_key.as_slice(), log_record)?;
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        self.flush()
    }

    fn load_log(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.config.scan_prefix(LOG_PREFIX) {
            let (k, v) = item?;
            let version = k[LOG_PREFIX.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).to_string(),
                    reason: "a change-log key must end in 8 bytes".into(),
                })?;
            out.push((version, v.to_vec()));
        }
        Ok(out)
    }

    fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError> {
        let end = log_key(oldest_kept);
        for item in self.config.range(LOG_PREFIX.to_vec()..end) {
            self.config.remove(item?.0)?;
        }
        Ok(())
    }

    fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.tree())?;
        match tree.get(id.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("{}/{id}", records.tree()),
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    fn put_record(&self, records: Records, id: &str, value: &Value) -> Result<(), StoreError> {
        let tree = self.db.open_tree(records.tree())?;
        tree.insert(
            id.as_bytes(),
            serde_json::to_vec(value).expect("json serialises"),
        )?;
        self.flush()
    }

    fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.tree())?;
        let old = tree.remove(id.as_bytes())?;
        self.flush()?;
        match old {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("{}/{id}", records.tree()),
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &dyn Fn(Option<&Value>) -> Option<Value>,
    ) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.tree())?;
        let decode = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
        let old = tree.fetch_and_update(id.as_bytes(), |current| {
            let value = current.and_then(decode);
            f(value.as_ref()).map(|v| serde_json::to_vec(&v).expect("json serialises"))
        })?;
        self.flush()?;
        Ok(old.as_deref().and_then(decode))
    }

    fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError> {
        let tree = self.db.open_tree(records.tree())?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let value = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("{}/{key}", records.tree()),
                reason: e.to_string(),
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn healthy(&self) -> bool {
        self.config.get(VERSION_KEY).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ParseCtx, Service};

    #[test]
    fn commit_then_reload() {
        let dir = std::env::temp_dir().join(format!("portcullis-store-{}", Uuid::new_v4()));
        let state = ConfigState::default();
        let svc = Service::parse(
            &serde_json::json!({"name": "a", "url": "http://up"}),
            &ParseCtx {
                id: Uuid::new_v4(),
                now: 1,
                created_at: None,
                resolver: &state,
            },
        )
        .unwrap();
        {
            let store = SledStore::open(&dir).unwrap();
            store
                .commit(&[Change::Put(Entity::Service(svc.clone()))], 7, b"seven")
                .unwrap();
        }
        let store = SledStore::open(&dir).unwrap();
        let (loaded, version) = store.load().unwrap();
        assert_eq!(version, 7);
        assert_eq!(loaded.services[&svc.id], svc);
        store
            .commit(&[Change::Delete(Kind::Service, svc.id)], 8, b"eight")
            .unwrap();
        let (loaded, version) = store.load().unwrap();
        assert!(loaded.is_empty());
        assert_eq!(version, 8);
        assert_eq!(
            store.load_log().unwrap(),
            vec![(7, b"seven".to_vec()), (8, b"eight".to_vec())]
        );
        store.prune_log(8).unwrap();
        assert_eq!(store.load_log().unwrap(), vec![(8, b"eight".to_vec())]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
