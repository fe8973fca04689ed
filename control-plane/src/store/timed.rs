//! How long the store takes to write: a [`Store`] wrapper that times every write (a configuration commit,
//! a record put, taken or updated, the change log pruned) into one histogram per operation, for the
//! control plane's `/metrics`. Reads and events pass through untimed.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use shared::{Change, ConfigState};
use tokio::sync::broadcast;

use super::{Event, Records, SealedCa, Store, StoreError, WriteGuard};
use crate::cluster::counters::{Histogram, WORK_BUCKETS};

/// The write histograms, one per operation.
#[derive(Debug)]
pub struct StoreTimes {
    commit: Histogram,
    put: Histogram,
    take: Histogram,
    update: Histogram,
    prune: Histogram,
}

impl Default for StoreTimes {
    fn default() -> Self {
        let h = || Histogram::with_bounds(&WORK_BUCKETS);
        StoreTimes {
            commit: h(),
            put: h(),
            take: h(),
            update: h(),
            prune: h(),
        }
    }
}

impl StoreTimes {
    /// Each histogram with its `operation` label.
    pub fn operations(&self) -> [(&'static str, &Histogram); 5] {
        [
            ("commit", &self.commit),
            ("put_record", &self.put),
            ("take_record", &self.take),
            ("update_record", &self.update),
            ("prune_log", &self.prune),
        ]
    }
}

/// A store whose writes are timed into [`StoreTimes`].
pub struct TimedStore {
    inner: Arc<dyn Store>,
    times: Arc<StoreTimes>,
}

impl TimedStore {
    /// Wraps `inner`, timing its writes into `times`.
    pub fn new(inner: Arc<dyn Store>, times: Arc<StoreTimes>) -> TimedStore {
        TimedStore { inner, times }
    }
}

/// Awaits `write`, counting the time it took (failed writes too: a slow failure is still slow).
async fn timed<T>(histogram: &Histogram, write: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = write.await;
    histogram.observe(started.elapsed());
    outcome
}

#[async_trait]
impl Store for TimedStore {
    async fn load(&self) -> Result<(ConfigState, u64), StoreError> {
        self.inner.load().await
    }

    async fn commit(
        &self,
        base: u64,
        changes: &[Change],
        version: u64,
        log_record: &[u8],
    ) -> Result<(), StoreError> {
        let write = self.inner.commit(base, changes, version, log_record);
        timed(&self.times.commit, write).await
    }

    async fn lock_writes(&self) -> Result<Option<WriteGuard>, StoreError> {
        self.inner.lock_writes().await
    }

    async fn load_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.load_log(after).await
    }

    async fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError> {
        timed(&self.times.prune, self.inner.prune_log(oldest_kept)).await
    }

    async fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        self.inner.get_record(records, id).await
    }

    async fn put_record(
        &self,
        records: Records,
        id: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        timed(&self.times.put, self.inner.put_record(records, id, value)).await
    }

    async fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        timed(&self.times.take, self.inner.take_record(records, id)).await
    }

    async fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &(dyn for<'v> Fn(Option<&'v Value>) -> Option<Value> + Sync),
    ) -> Result<Option<Value>, StoreError> {
        timed(&self.times.update, self.inner.update_record(records, id, f)).await
    }

    async fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError> {
        self.inner.list_records(records).await
    }

    async fn healthy(&self) -> bool {
        self.inner.healthy().await
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    async fn announce(&self, event: &Event) -> Result<(), StoreError> {
        self.inner.announce(event).await
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events()
    }

    async fn sealed_ca(&self) -> Result<Option<SealedCa>, StoreError> {
        self.inner.sealed_ca().await
    }

    async fn keep_sealed_ca(&self, ca: &SealedCa) -> Result<SealedCa, StoreError> {
        self.inner.keep_sealed_ca(ca).await
    }
}
