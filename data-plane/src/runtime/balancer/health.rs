//! Each peer's health and load on this node: counted from real traffic (passive checks) and probes
//! (active checks), flipped at the Upstream's thresholds, and kept in a registry that outlives snapshots
//! and is shared by every worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::upstream::{Healthy, Unhealthy};
use uuid::Uuid;

/// What one exchange with a peer (a request or an active probe) showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer answered with this status.
    Status(u16),
    /// No connection could be made.
    TcpFailure,
    /// No answer in time.
    Timeout,
}

#[derive(Debug, Default)]
struct Counts {
    successes: u32,
    http_failures: u32,
    tcp_failures: u32,
    timeouts: u32,
}

/// One Target's health and load on this node.
#[derive(Debug)]
pub struct PeerHealth {
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    counts: Mutex<Counts>,
}

impl Default for PeerHealth {
    fn default() -> PeerHealth {
        PeerHealth {
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            counts: Mutex::default(),
        }
    }
}

impl PeerHealth {
    /// Whether the peer takes traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Requests in flight to the peer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts `outcome` under `rules` (an Upstream's active or passive checks) and flips the peer's
    /// health when a threshold is reached; returns the new health when it changed. A status in neither
    /// list counts for nothing; a threshold of 0 never flips.
    pub fn report(&self, outcome: Outcome, rules: (&Healthy, &Unhealthy)) -> Option<bool> {
        let (healthy, unhealthy) = rules;
        let mut c = self.counts.lock().expect("peer health lock");
        let failed = |count: &mut u32, threshold: u32| {
            *count += 1;
            threshold > 0 && *count >= threshold
        };
        let flip_to = match outcome {
            Outcome::Status(s) if healthy.http_statuses.contains(&s) => {
                c.http_failures = 0;
                c.tcp_failures = 0;
                c.timeouts = 0;
                c.successes += 1;
                (healthy.successes > 0 && c.successes >= healthy.successes).then_some(true)
            }
            Outcome::Status(s) if unhealthy.http_statuses.contains(&s) => {
                c.successes = 0;
                failed(&mut c.http_failures, unhealthy.http_failures).then_some(false)
            }
            Outcome::Status(_) => None,
            Outcome::TcpFailure => {
                c.successes = 0;
                failed(&mut c.tcp_failures, unhealthy.tcp_failures).then_some(false)
            }
            Outcome::Timeout => {
                c.successes = 0;
                failed(&mut c.timeouts, unhealthy.timeouts).then_some(false)
            }
        }?;
        if self.healthy.swap(flip_to, Ordering::Relaxed) == flip_to {
            return None;
        }
        *c = Counts::default();
        Some(flip_to)
    }
}

/// Counts a request in flight to a peer until dropped (least-connections reads it).
pub struct InFlight(Arc<PeerHealth>);

impl InFlight {
    /// Counts one more request in flight to `peer`.
    pub fn start(peer: &Arc<PeerHealth>) -> InFlight {
        peer.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(peer.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a peer is: its Upstream, the Target that names it (`host:port`) and the address it was
/// resolved to (`ip:port`; the Target itself while its host name has not resolved yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub upstream: Uuid,
    pub target: String,
    pub address: String,
}

/// One peer's health and load as [`HealthRegistry::snapshot`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerReport {
    pub key: PeerKey,
    pub healthy: bool,
    pub in_flight: usize,
}

/// The health of every peer on this node.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    peers: Mutex<HashMap<PeerKey, Arc<PeerHealth>>>,
}

impl HealthRegistry {
    /// The health of the peer at `key`, new (healthy) if it was not known.
    pub fn peer(&self, key: &PeerKey) -> Arc<PeerHealth> {
        let mut peers = self.peers.lock().expect("health registry lock");
        if let Some(h) = peers.get(key) {
            return h.clone();
        }
        peers.entry(key.clone()).or_default().clone()
    }

    /// Forgets every peer of the Upstreams not in `live`.
    pub fn keep_upstreams(&self, live: &[Uuid]) {
        let mut peers = self.peers.lock().expect("health registry lock");
        peers.retain(|k, _| live.contains(&k.upstream));
    }

    /// Forgets the peers of `upstream` that are not in `keep` (a Target removed or given weight 0, an
    /// address its name no longer resolves to).
    pub fn retain(&self, upstream: Uuid, keep: &[PeerKey]) {
        let mut peers = self.peers.lock().expect("health registry lock");
        peers.retain(|k, _| k.upstream != upstream || keep.contains(k));
    }

    /// Every known peer, sorted.
    pub fn snapshot(&self) -> Vec<PeerReport> {
        let peers = self.peers.lock().expect("health registry lock");
        let mut out: Vec<_> = peers
            .iter()
            .map(|(k, h)| PeerReport {
                key: k.clone(),
                healthy: h.is_healthy(),
                in_flight: h.in_flight(),
            })
            .collect();
        out.sort();
        out
    }
}
