//! Load balancing over an Upstream's Targets: the Upstream's settings and Targets are fixed per
//! snapshot; the [`PeerSet`] (one peer per address, the round-robin wheel, the consistent-hashing ring)
//! is swapped whenever a Target's host name resolves to other addresses. Each peer's health lives in the
//! node's [`HealthRegistry`] so it survives both.

mod health;
mod peers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use shared::upstream::{Algorithm, HashOn, TargetAddr, Upstream};
use shared::ConfigState;

pub use health::{HealthRegistry, InFlight, Outcome, PeerHealth, PeerKey, PeerReport};
pub use peers::{hash_key, Peer, PeerSet, TargetSpec};

use crate::runtime::dns_cache::DnsCache;

/// An Upstream ready to pick peers.
pub struct Balancer {
    pub upstream: Arc<Upstream>,
    /// Its Targets of weight above 0, sorted by name.
    targets: Vec<TargetSpec>,
    set: ArcSwap<PeerSet>,
    next: AtomicUsize,
}

impl Balancer {
    /// The balancer of `upstream` over its Targets in `state`, with the addresses `dns` knows and peer
    /// health from `registry`.
    pub fn build(
        upstream: &Upstream,
        state: &ConfigState,
        registry: &HealthRegistry,
        dns: &DnsCache,
    ) -> Result<Balancer, String> {
        let mut targets = Vec::new();
        for t in state
            .targets
            .values()
            .filter(|t| t.upstream.id == upstream.id && t.weight > 0)
        {
            let addr = TargetAddr::parse(&t.target).map_err(|e| format!("target {}: {e}", t.id))?;
            targets.push(TargetSpec {
                name: t.target.clone(),
                host: addr.bare().to_string(),
                ip: addr.ip,
                port: addr.port,
                weight: t.weight,
            });
        }
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        let set = PeerSet::build(upstream, &targets, dns, registry);
        Ok(Balancer {
            upstream: Arc::new(upstream.clone()),
            targets,
            set: ArcSwap::from_pointee(set),
            next: AtomicUsize::new(0),
        })
    }

    /// The peers now. A request picks, retries and reports on the set it took.
    pub fn peers(&self) -> Arc<PeerSet> {
        self.set.load_full()
    }

    /// The host names among the Targets (IP addresses left out).
    pub fn hostnames(&self) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter(|t| t.ip.is_none())
            .map(|t| t.host.as_str())
    }

    /// Rebuilds the peers when `dns` changed since they were built; whether it did.
    pub fn refresh(&self, dns: &DnsCache, registry: &HealthRegistry) -> bool {
        if self.set.load().dns_generation == dns.generation() {
            return false;
        }
        let set = PeerSet::build(&self.upstream, &self.targets, dns, registry);
        self.set.store(Arc::new(set));
        true
    }

    fn usable(set: &PeerSet, i: usize, tried: &[usize]) -> bool {
        set.peers[i].health.is_healthy() && !tried.contains(&i)
    }

    /// Whether enough weight is healthy for the Upstream's `threshold` (a percentage).
    fn above_threshold(&self, set: &PeerSet) -> bool {
        let threshold = self.upstream.healthchecks.threshold;
        if threshold <= 0.0 {
            return true;
        }
        let total: u64 = set.peers.iter().map(|p| u64::from(p.weight)).sum();
        let healthy: u64 = set
            .peers
            .iter()
            .filter(|p| p.health.is_healthy())
            .map(|p| u64::from(p.weight))
            .sum();
        total > 0 && healthy as f64 * 100.0 >= threshold * total as f64
    }

    /// The peer for the next request, skipping unhealthy peers and those in `tried`; `hash` is the
    /// consistent-hashing input's hash, when the Upstream hashes and the request has the input.
    pub fn pick(&self, set: &PeerSet, hash: Option<u64>, tried: &[usize]) -> Option<usize> {
        if set.peers.is_empty() || !self.above_threshold(set) {
            return None;
        }
        match (self.upstream.algorithm, hash) {
            (Algorithm::ConsistentHashing, Some(h)) => {
                let start = set.ring.partition_point(|(p, _)| *p < h);
                (0..set.ring.len())
                    .map(|k| set.ring[(start + k) % set.ring.len()].1 as usize)
                    .find(|i| Self::usable(set, *i, tried))
            }
            (Algorithm::LeastConnections, _) => {
                let offset = self.next.fetch_add(1, Ordering::Relaxed);
                let n = set.peers.len();
                (0..n)
                    .map(|k| (offset + k) % n)
                    .filter(|i| Self::usable(set, *i, tried))
                    .min_by(|a, b| {
                        let load = |i: usize| {
                            (set.peers[i].health.in_flight() as u64 + 1) * 1_000_000
                                / u64::from(set.peers[i].weight)
                        };
                        load(*a).cmp(&load(*b))
                    })
            }
            _ => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..set.wheel.len())
                    .map(|k| set.wheel[(start + k) % set.wheel.len()] as usize)
                    .find(|i| Self::usable(set, *i, tried))
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
}

#[cfg(test)]
mod tests;
