//! What the node streams of this control plane have done since it started, for its `/metrics`: sessions
//! opened, configurations acknowledged (by how they arrived, with the bytes the nodes received, and how
//! long each took from being sent to being acknowledged) and refused, enrollments made and refused, nodes
//! revoked, session revocations received. Plain atomics, bumped by the stream handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets of the time from sending a configuration to its ACK.
pub const ACK_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds, in seconds, of the buckets of work done once per change: encoding a configuration for
/// the nodes, writing to the store.
pub const WORK_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram with fixed bucket bounds ([`ACK_BUCKETS`] unless made with others).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at most each bound (not cumulative; summed when read).
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&ACK_BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram with `bounds` (ascending, in seconds).
    pub fn with_bounds(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// The upper bounds of the buckets, in seconds.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The cumulative count of each bucket, the count of all observations and their sum in seconds.
    pub fn read(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, self.count.load(Ordering::Relaxed), sum)
    }
}

/// Counters of the node streams.
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub sessions: AtomicU64,
    pub acks_full: AtomicU64,
    pub acks_delta: AtomicU64,
    pub bytes_full: AtomicU64,
    pub bytes_delta: AtomicU64,
    /// Configurations refused, by the NACK's `kind`.
    pub nacks: NackCounts,
    /// Session revocations (back-channel logout) received from nodes.
    pub session_revocations: AtomicU64,
    /// Nodes paired with an enrollment token, and pairings refused.
    pub enrollments: AtomicU64,
    pub enrollments_refused: AtomicU64,
    /// Nodes revoked through the Admin API.
    pub revocations: AtomicU64,
    /// From sending a configuration on a stream to the node's ACK of it.
    pub ack_latency: Histogram,
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

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// How long encoding configurations for the nodes took, done once per version (a full snapshot, plain
/// and compressed) or per version and base (a delta), whatever the number of nodes.
#[derive(Debug)]
pub struct EncodeTimes {
    /// A full snapshot, plain.
    pub full: Histogram,
    /// A full snapshot compressed with zstd (after its plain encoding).
    pub full_zstd: Histogram,
    /// The changes from one base version, compressed when the nodes at that base read zstd.
    pub delta: Histogram,
}

impl Default for EncodeTimes {
    fn default() -> Self {
        EncodeTimes {
            full: Histogram::with_bounds(&WORK_BUCKETS),
            full_zstd: Histogram::with_bounds(&WORK_BUCKETS),
            delta: Histogram::with_bounds(&WORK_BUCKETS),
        }
    }
}

impl EncodeTimes {
    /// Each histogram with its `kind` label.
    pub fn kinds(&self) -> [(&'static str, &Histogram); 3] {
        [
            ("full", &self.full),
            ("full_zstd", &self.full_zstd),
            ("delta", &self.delta),
        ]
    }
}

/// Refused configurations by reason. The reason is the label a node sends, kept only when it is a short
/// lower-case word and among the first [`NackCounts::KINDS`] seen, so a node cannot grow the series
/// without bound; anything else is `other`, and nodes that send none are `unknown`.
#[derive(Debug, Default)]
pub struct NackCounts(std::sync::Mutex<std::collections::BTreeMap<String, u64>>);

impl NackCounts {
    /// Most distinct reasons kept as their own label.
    pub const KINDS: usize = 32;
    /// Longest reason kept as a label, in bytes.
    pub const KIND_BYTES: usize = 32;

    /// Counts one refusal sent with `kind`.
    pub fn refused(&self, kind: &str) {
        let mut counts = self.0.lock().expect("nack counts lock");
        let word = !kind.is_empty()
            && kind.len() <= Self::KIND_BYTES
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let label = match kind {
            "" => "unknown",
            k if word && (counts.contains_key(k) || counts.len() < Self::KINDS) => k,
            _ => "other",
        };
        *counts.entry(label.to_string()).or_default() += 1;
    }

    /// Every reason with its count.
    pub fn read(&self) -> Vec<(String, u64)> {
        let counts = self.0.lock().expect("nack counts lock");
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_counts_into_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(70));
        h.observe(Duration::from_secs(60));
        let (buckets, count, sum) = h.read();
        assert_eq!(buckets[0], 1, "≤ 5 ms");
        assert_eq!(buckets[3], 1, "≤ 50 ms");
        assert_eq!(buckets[4], 2, "≤ 100 ms");
        assert_eq!(*buckets.last().unwrap(), 2, "the minute is only in +Inf");
        assert_eq!(count, 3);
        assert!((sum - 60.073).abs() < 1e-6);
    }

    #[test]
    fn refusals_are_counted_by_a_bounded_set_of_reasons() {
        let n = NackCounts::default();
        n.refused("too_large");
        n.refused("too_large");
        n.refused("");
        n.refused("Not A Label");
        n.refused(&"x".repeat(NackCounts::KIND_BYTES + 1));
        for i in 0..NackCounts::KINDS * 2 {
            n.refused(&format!("kind_{}", (b'a' + (i % 26) as u8) as char).repeat(1 + i / 26));
        }
        let read: std::collections::BTreeMap<String, u64> = n.read().into_iter().collect();
        assert_eq!(read["too_large"], 2);
        assert_eq!(read["unknown"], 1);
        assert!(read["other"] >= 2);
        assert!(read.len() <= NackCounts::KINDS + 1, "{read:?}");
    }
}
