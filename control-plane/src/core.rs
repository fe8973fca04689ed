//! The control plane's write path: every change is applied to a copy of the current state, validated,
//! committed durably with a new config version and its change-log record, and only then made visible and
//! handed to the publisher.
//!
//! When several control planes share the store, another one may have committed since this one last
//! looked: the store then refuses the commit ([`StoreError::Conflict`]), this control plane catches up by
//! reading the versions it missed from the store's change log, and validates the change again on the
//! caught-up state. [`Core::refresh`] does the same catching up when another control plane announces a
//! commit.

use std::sync::{Arc, Mutex};

use shared::{Change, ConfigState, StateDigest};
use tokio::sync::{watch, Mutex as AsyncMutex};
use tracing::{info, warn};

use crate::changelog::{self, ChangeLog, LogEntry, LogLimits};
use crate::store::{Store, StoreError, WriteGuard};

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
    limits: LogLimits,
}

/// How many times a write is validated again after other control planes committed first.
const WRITE_ATTEMPTS: usize = 8;

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
    pub async fn open(store: Arc<dyn Store>, limits: LogLimits) -> Result<Core, StoreError> {
        let (state, version) = store.load().await?;
        let digest = StateDigest::of(&state);
        let mut log = ChangeLog::new(limits);
        for (v, bytes) in store.load_log(0).await? {
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
            limits,
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
    /// `op` may run more than once: again on the caught-up state when another control plane committed
    /// first.
    pub async fn write<T, E>(
        &self,
        mut op: impl FnMut(&mut ConfigState) -> Result<(Vec<Change>, T), E>,
    ) -> Result<(T, u64), WriteError<E>> {
        let _guard = self.write_lock.lock().await;
        let _shared = self.lock_shared().await?;
        let mut attempt = 0;
        loop {
            let cur = self.current();
            let mut next = (*cur.state).clone();
            let (changes, out) = op(&mut next).map_err(WriteError::Rejected)?;
            if changes.is_empty() {
                return Ok((out, cur.version));
            }
            match self.commit(&cur, next, changes).await {
                Ok(version) => return Ok((out, version)),
                Err(StoreError::Conflict { .. }) if attempt + 1 < WRITE_ATTEMPTS => {
                    attempt += 1;
                    self.catch_up().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Replaces the whole configuration (declarative config) durably, as one new version whose change-log
    /// record holds the difference.
    pub async fn replace(&self, state: ConfigState) -> Result<u64, StoreError> {
        let _guard = self.write_lock.lock().await;
        let _shared = self.lock_shared().await?;
        let mut attempt = 0;
        loop {
            let cur = self.current();
            let changes = cur.state.diff(&state);
            match self.commit(&cur, state.clone(), changes).await {
                Err(StoreError::Conflict { .. }) if attempt + 1 < WRITE_ATTEMPTS => {
                    attempt += 1;
                    self.catch_up().await?;
                }
                other => return other,
            }
        }
    }

    /// Takes the write lock shared with other control planes (if any) and catches up with what they
    /// committed, so the change is validated against the newest state. The local write lock is held.
    async fn lock_shared(&self) -> Result<Option<WriteGuard>, StoreError> {
        let guard = self.store.lock_writes().await?;
        if guard.is_some() {
            self.catch_up().await?;
        }
        Ok(guard)
    }

    /// Catches up with versions other control planes committed; returns the current version. Cheap when
    /// nothing is new (one read of the change log after the current version).
    pub async fn refresh(&self) -> Result<u64, StoreError> {
        let _guard = self.write_lock.lock().await;
        self.catch_up().await
    }

    /// Applies the stored versions after the current one. The write lock is held.
    async fn catch_up(&self) -> Result<u64, StoreError> {
        let cur = self.current();
        let records = self.store.load_log(cur.version).await?;
        if records.is_empty() {
            return Ok(cur.version);
        }
        let mut state = (*cur.state).clone();
        let mut digest = cur.digest.clone();
        let mut entries = Vec::with_capacity(records.len());
        let mut expected = cur.version + 1;
        for (v, bytes) in &records {
            let entry = match changelog::decode_record(*v, bytes) {
                Ok(entry) if *v == expected => entry,
                // A gap (pruned records) or an unreadable record: read the whole state instead.
                _ => return self.reload().await,
            };
            if state.apply_changes(&entry.changes).is_err() {
                return self.reload().await;
            }
            digest.apply(&entry.changes);
            if digest.hex() != entry.hash {
                warn!(
                    version = v,
                    "change-log record disagrees with the stored state; reloading it"
                );
                return self.reload().await;
            }
            entries.push(entry);
            expected += 1;
        }
        let version = expected - 1;
        {
            let mut log = self.log.lock().expect("log lock");
            for entry in entries {
                log.push(entry);
            }
        }
        self.make_current(version, state, digest);
        Ok(version)
    }

    fn make_current(&self, version: u64, state: ConfigState, digest: StateDigest) {
        let hash = digest.hex();
        self.current.send_replace(Arc::new(Versioned {
            version,
            state: Arc::new(state),
            digest,
            hash,
        }));
    }

    /// Reads the whole stored state and makes it current, starting the change log afresh.
    async fn reload(&self) -> Result<u64, StoreError> {
        let (state, version) = self.store.load().await?;
        info!(version, "configuration reloaded from the store");
        *self.log.lock().expect("log lock") = ChangeLog::new(self.limits);
        let digest = StateDigest::of(&state);
        self.make_current(version, state, digest);
        Ok(version)
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
        let record = changelog::encode_record(&hash, &changes);
        self.store
            .commit(cur.version, &changes, version, &record)
            .await?;
        let bytes = record.len();
        let dropped = self.log.lock().expect("log lock").push(LogEntry {
            version,
            hash: hash.clone(),
            changes,
            bytes,
        });
        if let Some(oldest) = dropped {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.prune_log(oldest).await {
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
