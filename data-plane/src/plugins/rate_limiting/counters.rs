//! Where requests are counted: in this node's memory ([`LocalCounters`], shared by its workers through
//! atomics in a lock-free map) or on a Redis server every node shares ([`RedisCounters`], one pipelined
//! round trip per request). Both count a request first and compare after, so however many requests race,
//! exactly `limit` of them see a count within the limit; a refused request's counts are taken back.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use shared::keyword::Keyword;
use shared::plugins::rate_limiting::Period;
use smallvec::SmallVec;
use uuid::Uuid;

use super::windows::Window;
use crate::plugins::credentials::CredentialId;
use crate::plugins::redis_clients::{RedisFailure, RedisServer};

/// The counts of one request, one per configured limit, in the limits' order.
pub type Counts = SmallVec<[u64; 2]>;

/// Who is counted: the plugin's Route and Service (nil when it has none, as Kong keys them) and the
/// identifier its `limit_by` picked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub route: Uuid,
    pub service: Uuid,
    pub identifier: Identifier,
}

/// What `limit_by` picked from the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A Consumer's, consumer group's or Service's id.
    Id(Uuid),
    /// The client's address.
    Ip(IpAddr),
    /// The credential an auth plugin accepted.
    Credential(CredentialId),
    /// A header value or a path.
    Text(Box<str>),
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identifier::Id(id) => id.fmt(f),
            Identifier::Ip(ip) => ip.fmt(f),
            Identifier::Credential(c) => c.fmt(f),
            Identifier::Text(t) => f.write_str(t),
        }
    }
}

/// One window of one subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    subject: Subject,
    period: Period,
    start_ms: i64,
}

struct Counter {
    count: AtomicU64,
    end_ms: i64,
}

/// How often, at most, ended windows are dropped from memory.
const SWEEP_EVERY_MS: i64 = 1000;

/// Counters in this node's memory, kept across snapshots so a configuration change does not reset them.
#[derive(Default)]
pub struct LocalCounters {
    map: papaya::HashMap<CounterKey, Counter>,
    swept_at: AtomicI64,
}

impl LocalCounters {
    /// Adds `delta` to each window's counter of `subject` and returns the counts after.
    pub fn add(
        &self,
        subject: &Subject,
        windows: &[(Period, Window)],
        delta: i64,
        now_ms: i64,
    ) -> Counts {
        self.sweep(now_ms);
        let map = self.map.pin();
        windows
            .iter()
            .map(|(period, w)| {
                let key = CounterKey {
                    subject: subject.clone(),
                    period: *period,
                    start_ms: w.start_ms,
                };
                let counter = map.get_or_insert_with(key, || Counter {
                    count: AtomicU64::new(0),
                    end_ms: w.end_ms,
                });
                match delta >= 0 {
                    true => counter.count.fetch_add(delta as u64, Ordering::AcqRel) + delta as u64,
                    false => {
                        let d = delta.unsigned_abs();
                        counter
                            .count
                            .fetch_sub(d, Ordering::AcqRel)
                            .saturating_sub(d)
                    }
                }
            })
            .collect()
    }

    /// Drops the counters of windows that have ended, once a second at most (one worker does it).
    fn sweep(&self, now_ms: i64) {
        let last = self.swept_at.load(Ordering::Relaxed);
        if now_ms - last < SWEEP_EVERY_MS
            || self
                .swept_at
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.map.pin().retain(|_, c| c.end_ms > now_ms);
    }

    /// How many windows are held (for tests and the node's view).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Counters on a Redis server, under Kong's keys
/// (`ratelimit:<route>:<service>:<identifier>:<window start ms>:<period>`), each expiring when its window
/// ends.
#[derive(Clone)]
pub struct RedisCounters {
    pub server: Arc<RedisServer>,
}

impl RedisCounters {
    /// Adds `delta` to each window's counter of `subject` in one pipelined round trip and returns the
    /// counts after.
    pub async fn add(
        &self,
        subject: &Subject,
        windows: &[(Period, Window)],
        delta: i64,
        now_ms: i64,
    ) -> Result<Counts, RedisFailure> {
        let mut pipe = redis::pipe();
        for (period, w) in windows {
            let key = format!(
                "ratelimit:{}:{}:{}:{}:{}",
                subject.route,
                subject.service,
                subject.identifier,
                w.start_ms,
                period.as_str()
            );
            // The key outlives its window by a second, so a clock a little behind still finds it.
            let ttl = (w.end_ms - now_ms) / 1000 + 2;
            pipe.cmd("INCRBY")
                .arg(&key)
                .arg(delta)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(ttl)
                .ignore();
        }
        let counts: Vec<i64> = self.server.query(&pipe).await?;
        Ok(counts.into_iter().map(|c| c.max(0) as u64).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::rate_limiting::windows::window;

    fn subject(text: &str) -> Subject {
        Subject {
            route: Uuid::nil(),
            service: Uuid::nil(),
            identifier: Identifier::Text(text.into()),
        }
    }

    #[test]
    fn racing_workers_count_every_request_once() {
        let counters = Arc::new(LocalCounters::default());
        let now = 1_700_000_000_000;
        let windows = [(Period::Minute, window(Period::Minute, now))];
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if counters.add(&subject("a"), &windows, 1, now)[0] <= 100 {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 100);
        assert_eq!(counters.add(&subject("a"), &windows, 0, now)[0], 4000);
        assert_eq!(counters.add(&subject("b"), &windows, 1, now)[0], 1);
    }

    #[test]
    fn ended_windows_are_dropped_and_the_next_starts_at_zero() {
        let counters = LocalCounters::default();
        let now = 1_700_000_000_000;
        let first = [(Period::Second, window(Period::Second, now))];
        counters.add(&subject("a"), &first, 1, now);
        counters.add(&subject("a"), &first, 1, now);
        let later = now + 5000;
        let next = [(Period::Second, window(Period::Second, later))];
        assert_eq!(counters.add(&subject("a"), &next, 1, later)[0], 1);
        assert_eq!(counters.len(), 1, "the ended window was swept");
        assert_eq!(counters.add(&subject("a"), &next, -1, later)[0], 0);
    }
}
