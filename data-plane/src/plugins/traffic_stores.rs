//! What traffic-control plugins keep across snapshots, node-wide: this node's rate-limiting counters
//! and its connections to Redis servers.

use std::sync::Arc;

use super::rate_limiting::counters::LocalCounters;
use super::redis_clients::RedisClients;

/// Node-wide counter stores, kept across snapshots so a configuration change resets no count.
#[derive(Default)]
pub struct TrafficStores {
    pub local: Arc<LocalCounters>,
    pub redis: RedisClients,
}

impl TrafficStores {
    /// Stores whose Redis connections also trust the CA certificates in `extra_ca_pem`.
    pub fn new(extra_ca_pem: Option<Vec<u8>>) -> TrafficStores {
        TrafficStores {
            local: Arc::default(),
            redis: RedisClients::new(extra_ca_pem),
        }
    }
}
