//! Publishes one immutable [`Published`] config per committed version and shares its encodings with every
//! node: the full snapshot is encoded (and compressed) once, on first demand, and the delta from each base
//! version is encoded once for all the nodes at that base. Bursts of writes are coalesced: while a check
//! runs, newer versions collapse into the next publication.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shared::ConfigState;
use tokio::sync::{watch, OnceCell};
use tracing::{error, info};

use super::counters::{EncodeTimes, Histogram};
use crate::changelog::ChangeLog;
use crate::core::Versioned;

/// How long the publisher waits after a change for more changes to arrive.
const DEBOUNCE: Duration = Duration::from_millis(5);

/// Encoded deltas kept per published version (one per distinct base; nodes are usually at one or two).
const DELTA_MEMO: usize = 64;

/// A published version: what nodes are brought to.
pub struct Published {
    /// Config version.
    pub version: u64,
    /// Content hash (`shared::StateDigest`).
    pub hash: String,
    pub state: Arc<ConfigState>,
    /// Plugins the config uses; a node must support all of them.
    pub plugins: BTreeSet<String>,
    /// Number of routes (for status pages).
    pub routes: usize,
    log: Arc<Mutex<ChangeLog>>,
    /// Where the time each encoding took is counted.
    times: Arc<EncodeTimes>,
    plain: OnceCell<Bytes>,
    zstd: OnceCell<Bytes>,
    deltas: Mutex<HashMap<(u64, String, bool), Option<Bytes>>>,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("version", &self.version)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Published {
    /// The full snapshot, plain or zstd-compressed; encoded once per version, off the runtime's threads.
    pub async fn full(&self, zstd: bool) -> Bytes {
        let plain = self
            .plain
            .get_or_init(|| {
                let (state, times) = (self.state.clone(), self.times.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        timed(&times.full, || shared::state::encode(&state))
                    })
                    .await
                    .expect("encoding a config cannot fail")
                }
            })
            .await
            .clone();
        if !zstd {
            return plain;
        }
        let times = self.times.clone();
        self.zstd
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    timed(&times.full_zstd, || proto::payload::compress(&plain))
                })
                .await
                .expect("compressing into memory cannot fail")
            })
            .await
            .clone()
    }

    /// The encoded changes from the node's config (`base_version` with `base_hash`) to this version, when
    /// the change log still covers that span; encoded once per base for all the nodes there.
    pub fn delta(&self, base_version: u64, base_hash: &str, zstd: bool) -> Option<Bytes> {
        let key = (base_version, base_hash.to_string(), zstd);
        if let Some(known) = self.deltas.lock().expect("delta memo lock").get(&key) {
            return known.clone();
        }
        let encoded = self
            .log
            .lock()
            .expect("log lock")
            .between(base_version, base_hash, self.version)
            .filter(|changes| !replaces_most(changes.len(), &self.state))
            .map(|changes| {
                timed(&self.times.delta, || {
                    let plain = shared::delta::encode_changes(&changes);
                    match zstd {
                        true => proto::payload::compress(&plain),
                        false => plain,
                    }
                })
            });
        let mut memo = self.deltas.lock().expect("delta memo lock");
        if memo.len() < DELTA_MEMO {
            memo.insert(key, encoded.clone());
        }
        encoded
    }
}

/// Runs `encode`, counting the time it took in `histogram`.
fn timed(histogram: &Histogram, encode: impl FnOnce() -> Vec<u8>) -> Bytes {
    let started = Instant::now();
    let bytes = encode();
    histogram.observe(started.elapsed());
    Bytes::from(bytes)
}

/// Changes that touch more entities than half the configuration holds (a declarative replacement, say)
/// are cheaper for a node as a full snapshot: it decodes one state instead of holding its old state, the
/// new one and every change at once. Small configurations always take deltas.
fn replaces_most(changes: usize, state: &shared::ConfigState) -> bool {
    changes > 64 && changes * 2 > state.len()
}

/// What the publisher last did.
#[derive(Debug, Clone, Default)]
pub struct PublishStatus {
    /// The version that failed the consistency check, with the problems found.
    pub rejected: Option<(u64, String)>,
}

/// Publishes every committed version until `committed` closes.
pub async fn run_publisher(
    mut committed: watch::Receiver<Arc<Versioned>>,
    log: Arc<Mutex<ChangeLog>>,
    times: Arc<EncodeTimes>,
    published: watch::Sender<Option<Arc<Published>>>,
    status: watch::Sender<PublishStatus>,
) {
    loop {
        let current = committed.borrow_and_update().clone();
        let previous = published
            .borrow()
            .as_ref()
            .map(|s| (s.version, s.hash.clone()));
        if previous.as_ref().map(|p| p.0) != Some(current.version) && current.version > 0 {
            let started = Instant::now();
            let (log, times) = (log.clone(), times.clone());
            let build =
                tokio::task::spawn_blocking(move || publish(&current, previous, log, times)).await;
            match build {
                Ok(Ok(p)) => {
                    info!(
                        version = p.version,
                        hash = %p.hash,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "config published"
                    );
                    status.send_replace(PublishStatus::default());
                    published.send_replace(Some(Arc::new(p)));
                }
                Ok(Err((version, problems))) => {
                    error!(version, %problems, "config failed the consistency check; not published");
                    status.send_replace(PublishStatus {
                        rejected: Some((version, problems)),
                    });
                }
                Err(e) => error!(error = %e, "publishing task failed"),
            }
        }
        if committed.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// Checks `v` (the changes since the previous publication when the log has them, else everything) and
/// wraps it for the sessions.
fn publish(
    v: &Versioned,
    previous: Option<(u64, String)>,
    log: Arc<Mutex<ChangeLog>>,
    times: Arc<EncodeTimes>,
) -> Result<Published, (u64, String)> {
    let since =
        previous.and_then(|(pv, ph)| log.lock().expect("log lock").between(pv, &ph, v.version));
    match since {
        Some(changes) => v.state.check_delta(&changes),
        None => v.state.check().map_err(|p| p.join("; ")),
    }
    .map_err(|p| (v.version, p))?;
    let plugins = v
        .state
        .plugins
        .values()
        .filter(|p| p.enabled)
        .map(|p| p.name.clone())
        .collect();
    Ok(Published {
        version: v.version,
        hash: v.hash.clone(),
        state: v.state.clone(),
        plugins,
        routes: v.state.routes.len(),
        log,
        times,
        plain: OnceCell::new(),
        zstd: OnceCell::new(),
        deltas: Mutex::new(HashMap::new()),
    })
}
