//! Sessions opened recently, by their cookie's exact value, so a busy browser's cookie is opened (base64,
//! AES-256-GCM, JSON) once rather than on every request: it is sealed again once a minute, and the new
//! value is opened once in turn. Only cookie sessions are kept here (a Redis session is read from its
//! server on every request, so deleting it there ends it at once); the lifetimes and revocations are
//! still checked on every request, against the kept copy.
//!
//! Slots are direct-mapped by a hash of the cookie's last bytes (its authentication tag), and an entry
//! is used only when the whole cookie value is equal, so a collision just replaces the older entry and
//! nothing but the exact cookie that was opened finds it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Slots per plugin instance.
const SLOTS: usize = 512;
/// Bytes of the cookie's end hashed to pick a slot.
const HASHED_TAIL: usize = 32;

type Slot<T> = Mutex<Option<(Box<str>, Arc<T>)>>;

/// One plugin instance's recently opened sessions (`T`: what a cookie opens to).
pub struct SessionFront<T> {
    slots: Box<[Slot<T>]>,
}

impl<T> Default for SessionFront<T> {
    fn default() -> Self {
        SessionFront {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl<T> SessionFront<T> {
    fn slot(&self, cookie: &str) -> &Slot<T> {
        let tail = &cookie.as_bytes()[cookie.len().saturating_sub(HASHED_TAIL)..];
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tail.hash(&mut h);
        &self.slots[h.finish() as usize % SLOTS]
    }

    /// The session `cookie` opened to, if it was kept.
    pub fn get(&self, cookie: &str) -> Option<Arc<T>> {
        let slot = self.slot(cookie).lock().ok()?;
        let (value, session) = slot.as_ref()?;
        (**value == *cookie).then(|| session.clone())
    }

    /// Keeps what `cookie` opened to.
    pub fn put(&self, cookie: &str, session: Arc<T>) {
        if let Ok(mut slot) = self.slot(cookie).lock() {
            *slot = Some((cookie.into(), session));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_cookie_finds_its_session() {
        let front = SessionFront::<&str>::default();
        let cookie = format!("{}TAG-OF-THE-COOKIE-0123456789abcdef", "x".repeat(100));
        assert!(front.get(&cookie).is_none());
        front.put(&cookie, Arc::new("alex"));
        assert_eq!(*front.get(&cookie).unwrap(), "alex");
        // Same tail (same slot), another body: not the kept session.
        let forged = format!("{}TAG-OF-THE-COOKIE-0123456789abcdef", "y".repeat(100));
        assert!(front.get(&forged).is_none());
        front.put(&forged, Arc::new("kim"));
        assert!(front.get(&cookie).is_none(), "replaced in its slot");
        assert!(front.get("").is_none());
    }
}
