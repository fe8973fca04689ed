//! What the node streams of this control plane have done since it started, for its `/metrics`: sessions
//! opened, configurations acknowledged (by how they arrived, with the bytes the nodes received) and
//! refused, session revocations received. Plain atomics, bumped by the stream handlers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the node streams.
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub sessions: AtomicU64,
    pub acks_full: AtomicU64,
    pub acks_delta: AtomicU64,
    pub bytes_full: AtomicU64,
    pub bytes_delta: AtomicU64,
    pub nacks: AtomicU64,
    /// Session revocations (back-channel logout) received from nodes.
    pub session_revocations: AtomicU64,
}

impl SyncCounters {
    /// An acknowledged configuration that arrived as `kind` (`full` or `delta`) in `bytes`.
    pub fn acked(&self, kind: &str, bytes: u64) {
        let (acks, sent) = match kind {
            "delta" => (&self.acks_delta, &self.bytes_delta),
            _ => (&self.acks_full, &self.bytes_full),
        };
        acks.fetch_add(1, Ordering::Relaxed);
        sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
