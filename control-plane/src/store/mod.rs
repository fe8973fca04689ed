//! Durable storage of the configuration and the cluster's records.
//!
//! [`Store`] has two implementations: [`SledStore`], the embedded default for one control plane, and
//! [`PgStore`], PostgreSQL shared by several control planes. Every configuration change commits its
//! entities, the new config version and the version's change-log record (see [`crate::changelog`]) in one
//! transaction, on the condition that the stored version is still the one the change was validated
//! against; the caller is told it succeeded only after the commit.
//!
//! Control planes sharing a store learn of each other's commits, node changes and cache purges through
//! [`Store::events`] (see [`crate::sharing`]).

mod postgres;
mod sealed;
mod sled;
mod timed;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{Change, ConfigState, Entity, Kind};
use tokio::sync::broadcast;

pub use self::postgres::{PgSettings, PgStore};
pub use self::sealed::{sealing_key, SealingStore};
pub use self::sled::SledStore;
pub use self::timed::{StoreTimes, TimedStore};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk or the database engine failed (full disk, I/O error, a failed statement).
    #[error("store i/o failed: {0}")]
    Io(String),
    /// The database cannot be reached; writes are refused until it is back.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// Another control plane committed a newer version first; the change was not stored.
    #[error("another control plane committed version {stored} first")]
    Conflict {
        /// The version found in the store.
        stored: u64,
    },
    /// A stored record cannot be decoded; the data was damaged or written by an incompatible version.
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A named collection of small JSON records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// Pairing tokens by id (hash of the secret, expiry, labels, uses left).
    PairingTokens,
    /// Paired nodes by id (identity, labels, revocation).
    Nodes,
    /// The live status of each node, written by the control plane holding its stream (shared stores).
    NodeStatus,
    /// The control planes sharing the store, each with the time it last said it was alive.
    ControlPlanes,
    /// Sessions ended by identity providers (back-channel logout), kept until no session they end can
    /// still be alive (see [`crate::cluster::revocations`]).
    SessionRevocations,
}

impl Records {
    /// The collection's name in the store.
    pub fn name(self) -> &'static str {
        match self {
            Records::PairingTokens => "pairing_tokens",
            Records::Nodes => "nodes",
            Records::NodeStatus => "node_status",
            Records::ControlPlanes => "control_planes",
            Records::SessionRevocations => "session_revocations",
        }
    }
}

/// Something one control plane tells every control plane sharing its store (itself included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A configuration version was committed.
    Committed(u64),
    /// A node's durable record changed (revoked, renewed); re-read it.
    NodeChanged(String),
    /// A cache purge for every node.
    Purge {
        /// Which cache.
        cache: String,
        /// Hex SHA-256 of the token, or empty for the whole cache.
        key: String,
    },
    /// Sessions an identity provider ended, for every node.
    SessionRevoked(crate::cluster::revocations::SessionRevocation),
    /// Events may have been missed (the listener reconnected, or the periodic check is due): compare the
    /// stored version and re-read the node records.
    Resync,
}

/// Durable storage for the control plane.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads the whole configuration and its version.
    async fn load(&self) -> Result<(ConfigState, u64), StoreError>;
    /// Applies `changes`, sets the config version to `version` and stores `log_record` as that version's
    /// change-log record, atomically and durably — provided the stored version is still `base`; otherwise
    /// nothing is written and [`StoreError::Conflict`] says what is stored.
    async fn commit(
        &self,
        base: u64,
        changes: &[Change],
        version: u64,
        log_record: &[u8],
    ) -> Result<(), StoreError>;
    /// Makes writers on every control plane sharing the store wait for each other, first come first
    /// served, until the returned guard is dropped (nothing for a store with one writer).
    async fn lock_writes(&self) -> Result<Option<WriteGuard>, StoreError>;
    /// The change-log records of versions after `after`, oldest first.
    async fn load_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Drops the change-log records of versions below `oldest_kept`.
    async fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError>;
    /// Reads a record.
    async fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError>;
    /// Writes a record durably.
    async fn put_record(&self, records: Records, id: &str, value: &Value)
        -> Result<(), StoreError>;
    /// Removes a record durably; returns it if it existed. Atomic: of two concurrent takers only one gets it.
    async fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError>;
    /// Replaces a record with `f(current)` atomically (`None` removes it) and returns the record as it
    /// was: of two concurrent updaters (on any control plane) each sees the other's result, so `f` can
    /// hand out a bounded resource (uses of an enrollment token) exactly once per unit.
    async fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &(dyn for<'v> Fn(Option<&'v Value>) -> Option<Value> + Sync),
    ) -> Result<Option<Value>, StoreError>;
    /// Every record of a collection.
    async fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError>;
    /// True when the store answers reads and writes.
    async fn healthy(&self) -> bool;
    /// True when other control planes may share this store.
    fn shared(&self) -> bool;
    /// Tells every control plane sharing the store, this one included, of `event`.
    async fn announce(&self, event: &Event) -> Result<(), StoreError>;
    /// Events announced through this store (and [`Event::Resync`] when some may have been missed).
    fn events(&self) -> broadcast::Receiver<Event>;
    /// The cluster CA kept in the store, sealed, if one is kept.
    async fn sealed_ca(&self) -> Result<Option<SealedCa>, StoreError>;
    /// Keeps `ca` unless a CA is already kept; returns the one kept (of control planes racing, the first).
    async fn keep_sealed_ca(&self, ca: &SealedCa) -> Result<SealedCa, StoreError>;
}

/// Holds the store's write lock until dropped.
pub struct WriteGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

/// The cluster CA as a shared store keeps it: the certificate, and the private key encrypted with a key
/// only the operator holds (see [`crate::ca_seal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCa {
    /// CA certificate (PEM).
    pub cert_pem: String,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// The private key (PEM), encrypted and authenticated together with the certificate.
    pub sealed_key: Vec<u8>,
}

/// Decodes a stored entity (`bytes`, its JSON) of `kind` into `state`; `key` names it in errors.
fn insert_stored(
    state: &mut ConfigState,
    kind: Kind,
    key: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let json: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    state.insert_entity(Entity::from_stored(kind, json).map_err(|e| corrupt(e.to_string()))?);
    Ok(())
}
