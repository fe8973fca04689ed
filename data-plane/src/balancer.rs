//! Load balancing over an Upstream's Targets, built once per snapshot: the peers (Targets of weight above
//! 0), a weighted round-robin wheel, a consistent-hashing ring (each peer on `slots × weight / 1000`
//! points, 1 to 65,536), and each peer's health,
//! which lives in the node's [`HealthRegistry`] so it survives snapshots and is shared by every worker.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::upstream::{split_target, Algorithm, HashOn, Healthy, Unhealthy, Upstream};
use shared::ConfigState;
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

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The health of every Target on this node, by Upstream id and `host:port`.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    peers: Mutex<HashMap<(Uuid, String), Arc<PeerHealth>>>,
}

impl HealthRegistry {
    fn peer(&self, upstream: Uuid, target: &str) -> Arc<PeerHealth> {
        let mut peers = self.peers.lock().expect("health registry lock");
        peers
            .entry((upstream, target.to_string()))
            .or_default()
            .clone()
    }

    /// Forgets every Target of the Upstreams not in `live`.
    pub fn keep_upstreams(&self, live: &[Uuid]) {
        let mut peers = self.peers.lock().expect("health registry lock");
        peers.retain(|(u, _), _| live.contains(u));
    }

    /// Forgets the Targets of `upstream` that are not in `keep` (removed, or the Upstream is gone).
    fn retain(&self, upstream: Uuid, keep: &[String]) {
        let mut peers = self.peers.lock().expect("health registry lock");
        peers.retain(|(u, t), _| *u != upstream || keep.contains(t));
    }

    /// Every known Target: Upstream id, `host:port`, healthy, requests in flight.
    pub fn snapshot(&self) -> Vec<(Uuid, String, bool, usize)> {
        let peers = self.peers.lock().expect("health registry lock");
        let mut out: Vec<_> = peers
            .iter()
            .map(|((u, t), h)| (*u, t.clone(), h.is_healthy(), h.in_flight()))
            .collect();
        out.sort();
        out
    }
}

/// One Target in rotation.
pub struct Peer {
    /// `host:port` as the Target says it.
    pub name: String,
    pub authority: http::uri::Authority,
    pub weight: u32,
    pub health: Arc<PeerHealth>,
}

/// An Upstream ready to pick peers.
pub struct Balancer {
    pub upstream: Arc<Upstream>,
    pub peers: Vec<Peer>,
    wheel: Vec<u32>,
    next: AtomicUsize,
    ring: Vec<(u64, u32)>,
}

/// The 64-bit hash consistent hashing uses (the same on every node running this build).
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smooth weighted round-robin order (nginx's): each peer appears `weight / gcd` times, spread out.
fn wheel(weights: &[u32], limit: usize) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let scaled: Vec<i64> = weights.iter().map(|w| i64::from(w / g)).collect();
    let total: i64 = scaled.iter().sum();
    let len = (total as usize).clamp(1, limit.max(1));
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        for (c, w) in current.iter_mut().zip(&scaled) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .expect("at least one peer");
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

impl Balancer {
    /// The balancer of `upstream` over its Targets in `state`, with peer health from `registry`.
    pub fn build(
        upstream: &Upstream,
        state: &ConfigState,
        registry: &HealthRegistry,
    ) -> Result<Balancer, String> {
        let mut peers = Vec::new();
        let mut names = Vec::new();
        for t in state
            .targets
            .values()
            .filter(|t| t.upstream.id == upstream.id)
        {
            names.push(t.target.clone());
            if t.weight == 0 {
                continue;
            }
            let (host, port) =
                split_target(&t.target).map_err(|e| format!("target {}: {e}", t.id))?;
            let authority = format!("{host}:{port}")
                .parse()
                .map_err(|_| format!("target {}: invalid host or port", t.id))?;
            peers.push(Peer {
                name: t.target.clone(),
                authority,
                weight: t.weight,
                health: registry.peer(upstream.id, &t.target),
            });
        }
        registry.retain(upstream.id, &names);
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let weights: Vec<u32> = peers.iter().map(|p| p.weight).collect();
        let wheel = if peers.is_empty() {
            Vec::new()
        } else {
            wheel(&weights, upstream.slots as usize)
        };
        // A peer's points depend on its own weight only, so adding or removing a peer moves only the
        // keys that land on (or leave) that peer's points.
        let mut ring = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            let points = (u64::from(upstream.slots) * u64::from(p.weight) / 1000).clamp(1, 65_536);
            for n in 0..points {
                ring.push((hash_key(format!("{}#{n}", p.name).as_bytes()), i as u32));
            }
        }
        ring.sort_unstable();
        Ok(Balancer {
            upstream: Arc::new(upstream.clone()),
            peers,
            wheel,
            next: AtomicUsize::new(0),
            ring,
        })
    }

    fn usable(&self, i: usize, tried: &[usize]) -> bool {
        self.peers[i].health.is_healthy() && !tried.contains(&i)
    }

    /// Whether enough weight is healthy for the Upstream's `threshold` (a percentage).
    fn above_threshold(&self) -> bool {
        let threshold = self.upstream.healthchecks.threshold;
        if threshold <= 0.0 {
            return true;
        }
        let total: u64 = self.peers.iter().map(|p| u64::from(p.weight)).sum();
        let healthy: u64 = self
            .peers
            .iter()
            .filter(|p| p.health.is_healthy())
            .map(|p| u64::from(p.weight))
            .sum();
        total > 0 && healthy as f64 * 100.0 >= threshold * total as f64
    }

    /// The peer for the next request, skipping unhealthy peers and those in `tried`; `hash` is the
    /// consistent-hashing input's hash, when the Upstream hashes and the request has the input.
    pub fn pick(&self, hash: Option<u64>, tried: &[usize]) -> Option<usize> {
        if self.peers.is_empty() || !self.above_threshold() {
            return None;
        }
        match (self.upstream.algorithm, hash) {
            (Algorithm::ConsistentHashing, Some(h)) => {
                let start = self.ring.partition_point(|(p, _)| *p < h);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1 as usize)
                    .find(|i| self.usable(*i, tried))
            }
            (Algorithm::LeastConnections, _) => {
                let offset = self.next.fetch_add(1, Ordering::Relaxed);
                let n = self.peers.len();
                (0..n)
                    .map(|k| (offset + k) % n)
                    .filter(|i| self.usable(*i, tried))
                    .min_by(|a, b| {
                        let load = |i: usize| {
                            (self.peers[i].health.in_flight() as u64 + 1) * 1_000_000
                                / u64::from(self.peers[i].weight)
                        };
                        load(*a).cmp(&load(*b))
                    })
            }
            _ => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..self.wheel.len())
                    .map(|k| self.wheel[(start + k) % self.wheel.len()] as usize)
                    .find(|i| self.usable(*i, tried))
            }
        }
    }

    /// The consistent-hashing input of a request, hashed: `hash_on`, else `hash_fallback`, else none (the
    /// request is then balanced round-robin). Hashing on a cookie the request lacks makes a new value, as
    /// Kong does: the response must set it (the second part, a `Set-Cookie` value).
    pub fn hash_input(
        &self,
        headers: &http::HeaderMap,
        client_ip: std::net::IpAddr,
        consumer: Option<&shared::Consumer>,
    ) -> (Option<u64>, Option<http::HeaderValue>) {
        let u = &self.upstream;
        if u.algorithm != Algorithm::ConsistentHashing {
            return (None, None);
        }
        let header = |name: &Option<String>| {
            name.as_deref()
                .and_then(|n| headers.get(n))
                .map(|v| hash_key(v.as_bytes()))
        };
        let cookie = |name: &str| {
            headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| hash_key(v.as_bytes()))
        };
        for (on, name) in [
            (u.hash_on, &u.hash_on_header),
            (u.hash_fallback, &u.hash_fallback_header),
        ] {
            let found = match on {
                HashOn::None => None,
                HashOn::Header => header(name),
                HashOn::Cookie => {
                    let Some(cookie_name) = u.hash_on_cookie.as_deref() else {
                        continue;
                    };
                    if let Some(h) = cookie(cookie_name) {
                        return (Some(h), None);
                    }
                    let value = uuid::Uuid::new_v4().simple().to_string();
                    let set = format!("{cookie_name}={value}; Path={}", u.hash_on_cookie_path);
                    return (
                        Some(hash_key(value.as_bytes())),
                        http::HeaderValue::from_str(&set).ok(),
                    );
                }
                HashOn::Ip => Some(hash_key(client_ip.to_string().as_bytes())),
                HashOn::Consumer => consumer.map(|c| hash_key(c.id.as_bytes())),
            };
            if found.is_some() {
                return (found, None);
            }
        }
        (None, None)
    }

    /// Marks a request in flight to peer `i` until the guard is dropped.
    pub fn start(&self, i: usize) -> InFlight {
        let health = self.peers[i].health.clone();
        health.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(health)
    }
}

#[cfg(test)]
mod tests;
