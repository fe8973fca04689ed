//! What the node knows of each Target host name: the addresses its last lookup found, when to ask again
//! and why the last lookup failed. Balancers read it to build their peer sets; the resolver task
//! (`crate::dns`) fills it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time a lookup is trusted, whatever the records' TTL, and the wait before asking again
/// after a failure.
const MIN_TTL: Duration = Duration::from_secs(1);

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
    pub fn due(&self, used: &HashSet<String>, now: Instant) -> Vec<String> {
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
    pub fn retain(&self, used: &HashSet<String>) {
        let mut entries = self.entries.lock().expect("dns cache lock");
        entries.retain(|h, _| used.contains(h));
    }
}

#[cfg(test)]
mod tests;
