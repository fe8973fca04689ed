//! What plugin instances are built with: the snapshot and node-wide resources ([`BuildCtx`]), and the
//! per-instance event counters ([`Events`]).

use std::sync::Arc;

use shared::ConfigState;

use super::consumers::ConsumerIndex;
use super::idp_clients::IdpClients;
use crate::cache::Caches;
use crate::metrics::Metrics;

/// Per-instance event counters (cache hits, misses, identity-provider calls), resolved once when the
/// instance is built so counting on the request path allocates nothing. A handful of names: a scan beats
/// hashing the name.
pub struct Events {
    counters: Vec<(&'static str, Arc<std::sync::atomic::AtomicU64>)>,
}

impl Events {
    /// Registers `names` for plugin `plugin`, instance `instance`.
    pub fn new(
        metrics: &Metrics,
        plugin: &'static str,
        instance: &str,
        names: &[&'static str],
    ) -> Events {
        let counters = names
            .iter()
            .map(|n| {
                (
                    *n,
                    metrics.plugin_events.with(&[
                        ("plugin", plugin),
                        ("instance", instance),
                        ("event", n),
                    ]),
                )
            })
            .collect();
        Events { counters }
    }

    /// Counts one event (names not registered are ignored).
    pub fn add(&self, name: &str) {
        if let Some((_, c)) = self.counters.iter().find(|(n, _)| *n == name) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Node-wide resources plugin instances are built with.
pub struct BuildCtx {
    pub state: Arc<ConfigState>,
    /// The snapshot's Consumers indexed for lookups on the request path.
    pub consumers: Arc<ConsumerIndex>,
    /// The snapshot's Consumers' ACL groups and consumer groups.
    pub groups: Arc<super::groups::Memberships>,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub clients: Arc<IdpClients>,
    /// Rate-limiting counters (this node's, and connections to shared Redis servers).
    pub traffic: Arc<super::traffic_stores::TrafficStores>,
    /// Sessions identity providers ended (back-channel logout).
    pub revocations: Arc<super::session_revocations::SessionRevocations>,
}
