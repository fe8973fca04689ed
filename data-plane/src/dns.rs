//! Target host names, resolved by the node itself so that each address is a peer of its own and the
//! peers follow the records: every name a live Upstream's Target uses is looked up (A, then AAAA when a
//! name has no A record) when it first appears and again when its records' TTL runs out (at least 1 s
//! apart). When the addresses change, the Upstreams using the name get new peer sets; a name that stops
//! resolving keeps its last addresses (and is asked again every second) rather than losing its peers.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use shared::dns::Nameservers;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::runtime::balancer::{Balancer, HealthRegistry};
use crate::runtime::dns_cache::{DnsCache, Recorded};
use crate::runtime::EntityMap;

/// How often the live configuration is looked at for new names and due lookups.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The node's stub resolver: the `--dns-resolver` name servers, or the system's configuration.
pub struct Dns {
    resolver: TokioResolver,
    pub cache: Arc<DnsCache>,
}

impl Dns {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), or, without them, the name
    /// servers of `/etc/resolv.conf`; the hosts file is read either way.
    pub fn new(servers: Option<&Nameservers>) -> Dns {
        Dns {
            resolver: platform::dns::resolver(servers),
            cache: Arc::default(),
        }
    }

    /// Looks `host` up: its addresses and until when they hold.
    pub async fn lookup(&self, host: &str) -> Result<(Vec<IpAddr>, Instant), String> {
        match self.resolver.lookup_ip(host).await {
            Ok(found) => {
                let ips: Vec<IpAddr> = found.iter().collect();
                if ips.is_empty() {
                    return Err("it has no address".into());
                }
                Ok((ips, found.valid_until()))
            }
            Err(e) if e.is_no_records_found() => Err("it has no address".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Keeps the Target names of the live balancers (what `balancers` returns each time it is asked)
/// resolved, and the balancers' peers in step with them, until `shutdown` turns true.
pub async fn follow(
    balancers: impl Fn() -> EntityMap<Uuid, Arc<Balancer>>,
    dns: Arc<Dns>,
    registry: Arc<HealthRegistry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        resolve_due(&balancers(), &dns, &registry).await;
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

/// Looks up the names of `live` that are due, then brings each balancer's peers in step.
async fn resolve_due(live: &EntityMap<Uuid, Arc<Balancer>>, dns: &Dns, registry: &HealthRegistry) {
    let used: HashSet<String> = live
        .values()
        .flat_map(|b| b.hostnames().map(str::to_string))
        .collect();
    dns.cache.retain(&used);
    let due = dns.cache.due(&used, Instant::now());
    let lookups = due.iter().map(|host| async move {
        let result = dns.lookup(host).await;
        (host, result)
    });
    for (host, result) in futures::future::join_all(lookups).await {
        let error = result.as_ref().err().cloned();
        match dns.cache.record(host, result) {
            Recorded::Changed => {
                let addresses = dns.cache.addresses(host);
                info!(host = %host, ?addresses, "a Target's host name resolves to new addresses")
            }
            Recorded::Failing => {
                warn!(host = %host, error = %error.unwrap_or_default(), "a Target's host name does not resolve; its last addresses stay")
            }
            Recorded::Same | Recorded::StillFailing => {}
        }
    }
    // Also catches balancers built from the cache while the lookups above were running.
    for b in live.values() {
        b.refresh(&dns.cache, registry);
    }
}
