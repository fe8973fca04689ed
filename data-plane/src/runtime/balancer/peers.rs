//! The peers one Upstream balances over at a moment: each Target of weight above 0, one peer per address
//! its host name resolves to (each with the Target's weight, as Kong gives every A record the Target's
//! weight), with the weighted round-robin wheel and the consistent-hashing ring over them. A set is built
//! per snapshot and again whenever a Target's name resolves to other addresses; requests hold the set
//! they picked from.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use shared::upstream::Upstream;

use super::health::{HealthRegistry, PeerHealth, PeerKey};
use crate::runtime::dns_cache::DnsCache;

/// The 64-bit hash consistent hashing uses (the same on every node running this build).
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A Target of weight above 0, as the balancer keeps it between peer sets.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// `host:port` as the Target says it.
    pub name: String,
    /// The host without brackets, and its address when it is an IP address (then it never resolves).
    pub host: String,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub weight: u32,
}

/// One address in rotation.
pub struct Peer {
    pub key: PeerKey,
    pub authority: http::uri::Authority,
    pub weight: u32,
    pub health: Arc<PeerHealth>,
}

/// The peers of an Upstream with the orders the algorithms pick them in.
pub struct PeerSet {
    pub peers: Vec<Peer>,
    /// Peer indexes in smooth weighted round-robin order.
    pub(super) wheel: Vec<u32>,
    /// (point, peer index), sorted by point.
    pub(super) ring: Vec<(u64, u32)>,
    /// The [`DnsCache`] generation the addresses were read at.
    pub dns_generation: u64,
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

impl PeerSet {
    /// The peers of `targets` with the addresses `dns` knows now. A host name that has not resolved yet
    /// stays one peer by name (resolved when connecting) until it has.
    pub fn build(
        upstream: &Upstream,
        targets: &[TargetSpec],
        dns: &DnsCache,
        registry: &HealthRegistry,
    ) -> PeerSet {
        let dns_generation = dns.generation();
        let mut peers = Vec::new();
        for t in targets {
            let addresses: Vec<String> = match t.ip {
                Some(ip) => vec![SocketAddr::new(ip, t.port).to_string()],
                None => match dns.addresses(&t.host) {
                    Some(ips) => ips
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, t.port).to_string())
                        .collect(),
                    None => vec![t.name.clone()],
                },
            };
            for address in addresses {
                let Ok(authority) = address.parse() else {
                    continue;
                };
                let key = PeerKey {
                    upstream: upstream.id,
                    target: t.name.clone(),
                    address,
                };
                peers.push(Peer {
                    health: registry.peer(&key),
                    key,
                    authority,
                    weight: t.weight,
                });
            }
        }
        peers.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<PeerKey> = peers.iter().map(|p| p.key.clone()).collect();
        registry.retain(upstream.id, &keys);
        let weights: Vec<u32> = peers.iter().map(|p| p.weight).collect();
        let wheel = if peers.is_empty() {
            Vec::new()
        } else {
            wheel(&weights, upstream.slots as usize)
        };
        // A peer's points depend on its own address and weight only, so adding or removing a peer moves
        // only the keys that land on (or leave) that peer's points.
        let mut ring = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            let points = (u64::from(upstream.slots) * u64::from(p.weight) / 1000).clamp(1, 65_536);
            for n in 0..points {
                ring.push((
                    hash_key(format!("{}#{n}", p.key.address).as_bytes()),
                    i as u32,
                ));
            }
        }
        ring.sort_unstable();
        PeerSet {
            peers,
            wheel,
            ring,
            dns_generation,
        }
    }
}
