//! A small per-thread front for a node's positive introspection cache, in the manner of Kong's
//! per-worker L1 in front of its shared cache: a hit costs one slot lookup instead of a moka read (a
//! read-log entry, and housekeeping now and then). Slots are direct-mapped by the key, so a collision
//! just replaces the older entry.
//!
//! An entry is used only while its own time to live lasts, and only in the generation of the caches it
//! came from: every purge starts a new generation, so nothing purged is answered from a front.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{Cached, TokenKey};

/// Slots per thread.
const SLOTS: usize = 1024;

/// Which caches and which generation of them an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    owner: u64,
    generation: u64,
}

struct Slot {
    key: TokenKey,
    stamp: Stamp,
    entry: Cached,
}

thread_local! {
    static SLOTS_OF_THREAD: RefCell<Vec<Option<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// The front of one node's caches.
#[derive(Debug)]
pub struct Front {
    /// Distinguishes the caches of several nodes served by one thread (in tests).
    owner: u64,
    generation: AtomicU64,
}

impl Default for Front {
    fn default() -> Self {
        static OWNERS: AtomicU64 = AtomicU64::new(0);
        Front {
            owner: OWNERS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }
}

impl Front {
    fn stamp(&self) -> Stamp {
        Stamp {
            owner: self.owner,
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    fn slot(key: &TokenKey) -> usize {
        let mut index = [0u8; 8];
        index.copy_from_slice(&key.token[..8]);
        (u64::from_le_bytes(index)
            ^ u64::from_le_bytes(key.namespace[..8].try_into().unwrap_or_default()))
            as usize
            % SLOTS
    }

    /// The entry for `key` this thread holds, if it is still alive and of the current generation.
    pub fn get(&self, key: &TokenKey, now: Instant) -> Option<Cached> {
        let stamp = self.stamp();
        SLOTS_OF_THREAD.with_borrow(|slots| {
            let slot = slots.get(Self::slot(key))?.as_ref()?;
            (slot.key == *key && slot.stamp == stamp && slot.entry.expires > now)
                .then(|| slot.entry.clone())
        })
    }

    /// Keeps `entry` for `key` on this thread.
    pub fn put(&self, key: TokenKey, entry: &Cached) {
        let stamp = self.stamp();
        SLOTS_OF_THREAD.with_borrow_mut(|slots| {
            if slots.is_empty() {
                slots.resize_with(SLOTS, || None);
            }
            slots[Self::slot(&key)] = Some(Slot {
                key,
                stamp,
                entry: entry.clone(),
            });
        });
    }

    /// Makes every entry held so far unusable (on every thread).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn key(n: u8) -> TokenKey {
        TokenKey {
            namespace: [1; 32],
            token: [n; 32],
        }
    }

    #[test]
    fn a_kept_entry_is_found_until_it_expires_or_is_invalidated() {
        let front = Front::default();
        let now = Instant::now();
        assert!(front.get(&key(1), now).is_none());
        let entry = Cached::new(
            Arc::new(serde_json::json!({"sub": "a"})),
            Duration::from_secs(60),
        );
        front.put(key(1), &entry);
        let found = front.get(&key(1), now).expect("kept");
        assert!(Arc::ptr_eq(&found.claims, &entry.claims));
        assert!(front.get(&key(2), now).is_none(), "another key");
        assert!(
            front.get(&key(1), now + Duration::from_secs(61)).is_none(),
            "expired"
        );
        front.invalidate();
        assert!(front.get(&key(1), now).is_none(), "purged");
    }

    #[test]
    fn fronts_of_different_caches_do_not_share_entries() {
        let (a, b) = (Front::default(), Front::default());
        let entry = Cached::new(Arc::new(serde_json::json!({})), Duration::from_secs(60));
        a.put(key(3), &entry);
        assert!(b.get(&key(3), Instant::now()).is_none());
    }
}
