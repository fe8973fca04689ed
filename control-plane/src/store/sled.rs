//! Durable storage of the configuration and the cluster's records.
//!
//! [`Store`] is the seam for other backends (PostgreSQL for several control-plane nodes); [`SledStore`] is
//! the embedded default. Every configuration change commits its entities, the new config version and the
//! version's change-log record (see [`crate::changelog`]) in one transaction and is flushed to disk before
//! the caller is told it succeeded.

//! The embedded store: sled, for a single control plane.

use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;
use shared::{Change, ConfigState, Kind};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{Event, Records, SealedCa, Store, StoreError, WriteGuard};

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

/// The embedded sled store: one tree for the configuration (entities and version), one per record kind.
pub struct SledStore {
    db: sled::Db,
    config: sled::Tree,
    events: broadcast::Sender<Event>,
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
        Ok(SledStore {
            db,
            config,
            events: broadcast::channel(256).0,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn stored_version(tree: &sled::Tree) -> Result<u64, StoreError> {
        match tree.get(VERSION_KEY)? {
            Some(v) => decode_version(&v),
            None => Ok(0),
        }
    }
}

fn decode_version(v: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        key: "meta/version".into(),
        reason: format!("expected 8 bytes, found {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_record(records: Records, id: &str, bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{}/{id}", records.name()),
        reason: e.to_string(),
    })
}

#[async_trait]
impl Store for SledStore {
    async fn load(&self) -> Result<(ConfigState, u64), StoreError> {
        let mut state = ConfigState::default();
        for kind in Kind::ALL {
            let prefix = format!("e/{}/", kind.collection());
            for item in self.config.scan_prefix(prefix.as_bytes()) {
                let (k, v) = item?;
                super::insert_stored(&mut state, kind, &String::from_utf8_lossy(&k), &v)?;
            }
        }
        Ok((state, Self::stored_version(&self.config)?))
    }

    async fn commit(
        &self,
        base: u64,
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
        let record = log_record.to_vec();
        let (db, config) = (self.db.clone(), self.config.clone());
        // The transaction and the flush wait for the disk: off the async workers.
        tokio::task::spawn_blocking(move || {
            config.transaction(|tx| {
                let stored = match tx.get(VERSION_KEY)? {
                    Some(v) => decode_version(&v).map_err(ConflictableTransactionError::Abort)?,
                    None => 0,
                };
                if stored != base {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                        stored,
                    }));
                }
                for (k, v) in &encoded {
                    match v {
                        Some(v) => tx.insert(k.as_slice(), v.as_slice())?,
                        None => tx.remove(k.as_slice())?,
                    };
                }
                tx.insert(VERSION_KEY, &version.to_be_bytes())?;
                tx.insert(log_key.as_slice(), record.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })?;
            db.flush()?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::Io(format!("store task failed: {e}")))??;
        let _ = self.events.send(Event::Committed(version));
        Ok(())
    }

    async fn lock_writes(&self) -> Result<Option<WriteGuard>, StoreError> {
        Ok(None)
    }

    async fn load_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let start = log_key(after.saturating_add(1));
        for item in self
            .config
            .range(start..)
            .take_while(|i| i.as_ref().map_or(true, |(k, _)| k.starts_with(LOG_PREFIX)))
        {
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

    async fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError> {
        let end = log_key(oldest_kept);
        for item in self.config.range(LOG_PREFIX.to_vec()..end) {
            self.config.remove(item?.0)?;
        }
        Ok(())
    }

    async fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.name())?;
        tree.get(id.as_bytes())?
            .map(|v| decode_record(records, id, &v))
            .transpose()
    }

    async fn put_record(
        &self,
        records: Records,
        id: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        let tree = self.db.open_tree(records.name())?;
        tree.insert(
            id.as_bytes(),
            serde_json::to_vec(value).expect("json serialises"),
        )?;
        self.flush()
    }

    async fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.name())?;
        let old = tree.remove(id.as_bytes())?;
        self.flush()?;
        old.map(|v| decode_record(records, id, &v)).transpose()
    }

    async fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &(dyn for<'v> Fn(Option<&'v Value>) -> Option<Value> + Sync),
    ) -> Result<Option<Value>, StoreError> {
        let tree = self.db.open_tree(records.name())?;
        let decode = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
        let old = tree.fetch_and_update(id.as_bytes(), |current| {
            let value = current.and_then(decode);
            f(value.as_ref()).map(|v| serde_json::to_vec(&v).expect("json serialises"))
        })?;
        self.flush()?;
        Ok(old.as_deref().and_then(decode))
    }

    async fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError> {
        let tree = self.db.open_tree(records.name())?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let value = decode_record(records, &key, &v)?;
            out.push((key, value));
        }
        Ok(out)
    }

    async fn healthy(&self) -> bool {
        self.config.get(VERSION_KEY).is_ok()
    }

    fn shared(&self) -> bool {
        false
    }

    async fn announce(&self, event: &Event) -> Result<(), StoreError> {
        let _ = self.events.send(event.clone());
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn sealed_ca(&self) -> Result<Option<SealedCa>, StoreError> {
        Ok(None)
    }

    async fn keep_sealed_ca(&self, _ca: &SealedCa) -> Result<SealedCa, StoreError> {
        Err(StoreError::Io(
            "the embedded store keeps its CA in the data dir, not sealed".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Entity, ParseCtx, Service};

    /// Opens the store at `dir` again in this process. The dropped store's database lock goes with the
    /// last reference to it, which a blocking-pool thread that ran its commit may still hold for a moment
    /// after the commit answered: wait for the lock, for at most 10 s.
    fn reopen(dir: &std::path::Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledStore::open(dir) {
                Ok(store) => return store,
                Err(e)
                    if std::time::Instant::now() < deadline && e.to_string().contains("lock") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("reopening the store: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn commit_then_reload() {
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
                .commit(0, &[Change::Put(Entity::Service(svc.clone()))], 7, b"seven")
                .await
                .unwrap();
        }
        let store = reopen(&dir);
        let (loaded, version) = store.load().await.unwrap();
        assert_eq!(version, 7);
        assert_eq!(loaded.services[&svc.id], svc);
        assert!(matches!(
            store.commit(6, &[], 8, b"stale").await,
            Err(StoreError::Conflict { stored: 7 })
        ));
        store
            .commit(7, &[Change::Delete(Kind::Service, svc.id)], 8, b"eight")
            .await
            .unwrap();
        let (loaded, version) = store.load().await.unwrap();
        assert!(loaded.is_empty());
        assert_eq!(version, 8);
        assert_eq!(
            store.load_log(0).await.unwrap(),
            vec![(7, b"seven".to_vec()), (8, b"eight".to_vec())]
        );
        assert_eq!(
            store.load_log(7).await.unwrap(),
            vec![(8, b"eight".to_vec())]
        );
        store.prune_log(8).await.unwrap();
        assert_eq!(
            store.load_log(0).await.unwrap(),
            vec![(8, b"eight".to_vec())]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
