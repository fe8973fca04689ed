//! Target host names, resolved by the node itself so that each address is a peer of its own and the
//! peers follow the records: every name a live Upstream's Target uses is looked up (A, then AAAA when a
//! name has no A record) when it first appears and again when its records' TTL runs out (at least 1 s
//! apart). When the addresses change, the Upstreams using the name get new peer sets; a name that stops
//! resolving keeps its last addresses (and is asked again every second) rather than losing its peers.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use shared::dns::Nameservers;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::balancer::HealthRegistry;
use crate::runtime::RuntimeConfig;

/// The shortest time a lookup is trusted, whatever the records' TTL, and the wait before asking again
/// after a failure.
const MIN_TTL: Duration = Duration::from_secs(1);
/// How often the live configuration is looked at for new names and due lookups.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
struct Entry {
    /// The last addresses the name resolved to; `None` until it first resolved.
    addresses: Option<Arc<[IpAddr]>>,
    /// When to ask again.
    due: Instant,
    /// Why the last lookup failed, if it did.
    error: Option<String>,
}

/// What a lookup changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The name resolves to other addresses than before (or resolved for the first time).
    Changed,
    /// The same addresses.
    Same,
    /// The lookup failed, after the last one had not.
    Failing,
    /// The lookup failed again.
    StillFailing,
}

/// What the node knows of each Target host name. Its generation changes whenever a name's addresses do,
/// so a peer set can tell it is out of date.
#[derive(Debug, Default)]
pub struct DnsCache {
    entries: Mutex<HashMap<String, Entry>>,
    generation: AtomicU64,
}

impl DnsCache {
    /// Counts changes of any name's addresses.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The addresses `host` resolved to last, if it ever did.
    pub fn addresses(&self, host: &str) -> Option<Arc<[IpAddr]>> {
        let entries = self.entries.lock().expect("dns cache lock");
        entries.get(host).and_then(|e| e.addresses.clone())
    }

    /// Why `host` does not resolve, when its last lookup failed and it never resolved.
    pub fn failure(&self, host: &str) -> Option<String> {
        let entries = self.entries.lock().expect("dns cache lock");
        entries
            .get(host)
            .filter(|e| e.addresses.is_none())
            .and_then(|e| e.error.clone())
    }

    /// Names in `used` that were never looked up or whose time is up.
    fn due(&self, used: &HashSet<String>, now: Instant) -> Vec<String> {
        let entries = self.entries.lock().expect("dns cache lock");
        used.iter()
            .filter(|h| entries.get(*h).is_none_or(|e| e.due <= now))
            .cloned()
            .collect()
    }

    /// Records a lookup of `host` and what it changed. A failure keeps the last addresses.
    pub fn record(&self, host: &str, result: Result<(Vec<IpAddr>, Instant), String>) -> Recorded {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("dns cache lock");
        let entry = entries.entry(host.to_string()).or_insert(Entry {
            addresses: None,
            due: now,
            error: None,
        });
        match result {
            Ok((mut ips, valid_until)) => {
                ips.sort();
                ips.dedup();
                entry.due = valid_until.max(now + MIN_TTL);
                entry.error = None;
                if entry.addresses.as_deref() == Some(&ips[..]) {
                    return Recorded::Same;
                }
                entry.addresses = Some(ips.into());
                self.generation.fetch_add(1, Ordering::AcqRel);
                Recorded::Changed
            }
            Err(e) => {
                entry.due = now + MIN_TTL;
                match entry.error.replace(e) {
                    None => Recorded::Failing,
                    Some(_) => Recorded::StillFailing,
                }
            }
        }
    }

    /// Forgets the names not in `used`.
    fn retain(&self, used: &HashSet<String>) {
        let mut entries = self.entries.lock().expect("dns cache lock");
        entries.retain(|h, _| used.contains(h));
    }
}

/// The node's stub resolver: the `--dns-resolver` name servers, or the system's configuration.
pub struct Dns {
    resolver: TokioResolver,
    pub cache: DnsCache,
}

impl Dns {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), or, without them, the name
    /// servers of `/etc/resolv.conf`; the hosts file is read either way.
    pub fn new(servers: Option<&Nameservers>) -> Dns {
        let builder = match servers {
            Some(list) => {
                let mut group = NameServerConfigGroup::new();
                for addr in &list.0 {
                    group.push(NameServerConfig::new(*addr, Protocol::Udp));
                    group.push(NameServerConfig::new(*addr, Protocol::Tcp));
                }
                let config = ResolverConfig::from_parts(None, vec![], group);
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio().unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the system's DNS configuration; only the hosts file resolves Target names (give --dns-resolver)");
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::new()),
                    TokioConnectionProvider::default(),
                )
            }),
        };
        let mut builder = builder;
        // The system's options (ndots, search) stay; lookups are bounded and the cache is ours.
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.cache_size = 0;
        Dns {
            resolver: builder.build(),
            cache: DnsCache::default(),
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

/// Keeps the live configuration's Target names resolved, and its balancers' peers in step with them,
/// until `shutdown` turns true.
pub async fn follow(
    config: Arc<ArcSwapOption<RuntimeConfig>>,
    dns: Arc<Dns>,
    registry: Arc<HealthRegistry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Some(rt) = config.load_full() {
            let used: HashSet<String> = rt
                .balancers
                .values()
                .flat_map(|b| b.hostnames().map(str::to_string))
                .collect();
            dns.cache.retain(&used);
            let due = dns.cache.due(&used, Instant::now());
            let dns = &dns;
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
            for b in rt.balancers.values() {
                b.refresh(&dns.cache, &registry);
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests;
