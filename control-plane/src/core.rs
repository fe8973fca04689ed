//! The control plane's write path: every change is applied to a copy of the current state, validated,
//! committed durably with a new config version, and only then made visible and handed to the publisher.

use std::sync::Arc;

use shared::{Change, ConfigState};
use tokio::sync::{watch, Mutex};

use crate::store::{Store, StoreError};

/// A configuration with the version it was committed as.
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    /// Monotonically increasing config version (0: nothing committed yet).
    pub version: u64,
    /// The committed state.
    pub state: Arc<ConfigState>,
}

/// Shared state of one control plane.
pub struct Core {
    store: Arc<dyn Store>,
    write_lock: Mutex<()>,
    current: watch::Sender<Arc<Versioned>>,
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
    /// Loads the committed state from `store`.
    pub fn open(store: Arc<dyn Store>) -> Result<Core, StoreError> {
        let (state, version) = store.load()?;
        let (current, _) = watch::channel(Arc::new(Versioned {
            version,
            state: Arc::new(state),
        }));
        Ok(Core {
            store,
            write_lock: Mutex::new(()),
            current,
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
        let version = cur.version + 1;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.commit(&changes, version))
            .await
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))??;
        self.current.send_replace(Arc::new(Versioned {
            version,
            state: Arc::new(next),
        }));
        Ok((out, version))
    }

    /// Replaces the whole configuration (declarative config) durably, as one new version.
    pub async fn replace(&self, state: ConfigState) -> Result<u64, StoreError> {
        let _guard = self.write_lock.lock().await;
        let version = self.current().version + 1;
        let state = Arc::new(state);
        let store = self.store.clone();
        let to_store = state.clone();
        tokio::task::spawn_blocking(move || store.replace(&to_store, version))
            .await
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))??;
        self.current
            .send_replace(Arc::new(Versioned { version, state }));
        Ok(version)
    }
}
