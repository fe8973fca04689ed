//! The control plane's write path: every change is applied to a copy of the current state, validated,
//! committed durably with a new config version and its change-log record, and only then made visible and
//! handed to the publisher.

use std::sync::{Arc, Mutex};

use shared::{Change, ConfigState, StateDigest};
use tokio::sync::{watch, Mutex as AsyncMutex};
use tracing::warn;

use crate::changelog::{self, ChangeLog, LogEntry, LogLimits};
use crate::store::{Store, StoreError};

/// A configuration with the version it was committed as.
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    /// Monotonically increasing config version (0: nothing committed yet).
    pub version: u64,
    /// The committed state (persistent maps: clones share it).
    pub state: Arc<ConfigState>,
    /// Its content digest, kept up to date change by change.
    pub digest: StateDigest,
    /// `digest.hex()`, computed once.
    pub hash: String,
}

/// Shared state of one control plane.
pub struct Core {
    store: Arc<dyn Store>,
    write_lock: AsyncMutex<()>,
    current: watch::Sender<Arc<Versioned>>,
    log: Arc<Mutex<ChangeLog>>,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The change was refused by validation; nothing was written.
    #[error(transparent)]
    Rejected(E),
    /// The store failed; nothing is visible and the previous state stays current.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Core {
    /// Loads the committed state and the change log's window from `store`.
    pub fn open(store: Arc<dyn Store>, limits: LogLimits) -> Result<Core, StoreError> {
        let (state, version) = store.load()?;
        let digest = StateDigest::of(&state);
        let mut log = ChangeLog::new(limits);
        for (v, bytes) in store.load_log()? {
            match changelog::decode_record(v, &bytes) {
                Ok(entry) => {
                    log.push(entry);
                }
                Err(reason) => {
                    // Only deltas are lost: nodes behind this version get full snapshots.
                    warn!(version = v, %reason, "change-log record unreadable; starting the log after it");
                    log = ChangeLog::new(limits);
                }
            }
        }
        if log.span().is_some_and(|(_, newest)| newest != version) {
            log = ChangeLog::new(limits);
        }
        let hash = digest.hex();
        let (current, _) = watch::channel(Arc::new(Versioned {
            version,
            state: Arc::new(state),
            digest,
            hash,
        }));
        Ok(Core {
            store,
            write_lock: AsyncMutex::new(()),
            current,
            log: Arc::new(Mutex::new(log)),
        })
    }

    /// The current committed configuration.
    pub fn current(&self) -> Arc<Versioned> {
        self.current.borrow().clone()
    }

    /// A receiver that sees every committed version (the snapshot publisher listens here).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Versioned>> {
        self.current.subscribe()
    }

    /// The change log's window (shared with the sync sessions).
    pub fn log(&self) -> &Arc<Mutex<ChangeLog>> {
        &self.log
    }

    /// The store behind this control plane.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs `op` on a copy of the current state. When it succeeds with at least one change, the changes and
    /// a new version are committed durably before the new state becomes current.
    pub async fn write<T, E>(
        &self,
        op: impl FnOnce(&mut ConfigState) -> Result<(Vec<Change>, T), E>,
    ) -> Result<(T, u64), WriteError<E>> {
        let _guard = self.write_lock.lock().await;
        let cur = self.current();
        let mut next = (*cur.state).clone();
        let (changes, out) = op(&mut next).map_err(WriteError::Rejected)?;
        if changes.is_empty() {
            return Ok((out, cur.version));
        }
        let version = self.commit(&cur, next, changes).await?;
        Ok((out, version))
    }

    /// Replaces the whole configuration (declarative config) durably, as one new version whose change-log
    /// record holds the difference.
    pub async fn replace(&self, state: ConfigState) -> Result<u64, StoreError> {
        let _guard = self.write_lock.lock().await;
        let cur = self.current();
        let changes = cur.state.diff(&state);
        self.commit(&cur, state, changes).await
    }

    /// Commits `next` (= `cur` + `changes`) as the next version. The write lock is held.
    async fn commit(
        &self,
        cur: &Versioned,
        next: ConfigState,
        changes: Vec<Change>,
    ) -> Result<u64, StoreError> {
        let version = cur.version + 1;
        let mut digest = cur.digest.clone();
        digest.apply(&changes);
        let hash = digest.hex();
        let store = self.store.clone();
        let record = changelog::encode_record(&hash, &changes);
        let changes = tokio::task::spawn_blocking(move || {
            store
                .commit(&changes, version, &record)
                .map(|()| (changes, record.len()))
        })
        .await
        .map_err(|e| StoreError::Io(format!("store task failed: {e}")))?;
        let (changes, bytes) = changes?;
        let dropped = self.log.lock().expect("log lock").push(LogEntry {
            version,
            hash: hash.clone(),
            changes,
            bytes,
        });
        if let Some(oldest) = dropped {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.prune_log(oldest) {
                    warn!(error = %e, "cannot drop old change-log records; they are dropped on a later write");
                }
            });
        }
        self.current.send_replace(Arc::new(Versioned {
            version,
            state: Arc::new(next),
            digest,
            hash,
        }));
        Ok(version)
    }
}
