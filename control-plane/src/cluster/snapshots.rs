//! Builds one immutable, encoded snapshot per committed version and shares the same bytes with every node.
//! Bursts of writes are coalesced: while a build runs, newer versions collapse into the next build.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{error, info};

use crate::core::Versioned;

/// How long the publisher waits after a change for more changes to arrive.
const DEBOUNCE: Duration = Duration::from_millis(5);

/// A published snapshot: what every node receives, encoded once.
#[derive(Debug)]
pub struct EncodedSnapshot {
    /// Config version.
    pub version: u64,
    /// Hex SHA-256 of `payload`.
    pub hash: String,
    /// The encoded `shared::ConfigState`.
    pub payload: Bytes,
    /// Plugins the snapshot uses; a node must support all of them.
    pub plugins: BTreeSet<String>,
    /// Number of routes (for status pages).
    pub routes: usize,
}

/// What the publisher last did.
#[derive(Debug, Clone, Default)]
pub struct PublishStatus {
    /// The version that failed the consistency check, with the problems found.
    pub rejected: Option<(u64, String)>,
}

/// Publishes snapshots of every committed version until `committed` closes.
pub async fn run_publisher(
    mut committed: watch::Receiver<Arc<Versioned>>,
    published: watch::Sender<Option<Arc<EncodedSnapshot>>>,
    status: watch::Sender<PublishStatus>,
) {
    loop {
        let current = committed.borrow_and_update().clone();
        let already = published.borrow().as_ref().map(|s| s.version);
        if already != Some(current.version) && current.version > 0 {
            let started = Instant::now();
            let build = tokio::task::spawn_blocking(move || build(&current)).await;
            match build {
                Ok(Ok(snapshot)) => {
                    info!(
                        version = snapshot.version,
                        hash = %snapshot.hash,
                        bytes = snapshot.payload.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot published"
                    );
                    status.send_replace(PublishStatus::default());
                    published.send_replace(Some(Arc::new(snapshot)));
                }
                Ok(Err((version, problems))) => {
                    error!(version, %problems, "snapshot failed the consistency check; not published");
                    status.send_replace(PublishStatus {
                        rejected: Some((version, problems)),
                    });
                }
                Err(e) => error!(error = %e, "snapshot build task failed"),
            }
        }
        if committed.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

fn build(v: &Versioned) -> Result<EncodedSnapshot, (u64, String)> {
    v.state.check().map_err(|p| (v.version, p.join("; ")))?;
    let payload = shared::state::encode(&v.state);
    let hash = shared::state::hash(&payload);
    let plugins = v
        .state
        .plugins
        .values()
        .filter(|p| p.enabled)
        .map(|p| p.name.clone())
        .collect();
    Ok(EncodedSnapshot {
        version: v.version,
        hash,
        payload: Bytes::from(payload),
        plugins,
        routes: v.state.routes.len(),
    })
}
