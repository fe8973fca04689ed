//! Sessions ended by identity providers (OpenID Connect Back-Channel Logout), node-wide and kept across
//! snapshots.
//!
//! A revocation names an issuer and a `sid`, a `sub` or both; it ends every session of that issuer
//! with those values that began at or before its time. Revocations come from two places: a logout token
//! this node verified ([`SessionRevocations::report`], applied here at once and queued for the control
//! plane), and the control plane, which keeps them and pushes them to every node
//! ([`SessionRevocations::learn`]). A queued revocation is sent on every new stream until the control
//! plane echoes it back, so none is lost while the control plane is away.
//!
//! Logout tokens are also remembered by `jti` until they expire, so one is not accepted twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use tokio::sync::Notify;

/// Most logout-token ids remembered; beyond it the oldest are forgotten first.
const MAX_SEEN_JTI: usize = 100_000;

/// Sessions of `issuer` with this `sid` and `sub` (an empty one matches any) that began at or before
/// `revoked_at`; needed until `keep_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub issuer: String,
    pub sid: String,
    pub sub: String,
    pub revoked_at: i64,
    pub keep_until: i64,
}

impl Revocation {
    fn key(&self) -> Key {
        (self.issuer.clone(), self.sid.clone(), self.sub.clone())
    }

    pub fn from_wire(m: proto::SessionRevocation) -> Revocation {
        Revocation {
            issuer: m.issuer,
            sid: m.sid,
            sub: m.sub,
            revoked_at: m.revoked_at,
            keep_until: m.keep_until,
        }
    }

    pub fn to_wire(&self) -> proto::SessionRevocation {
        proto::SessionRevocation {
            issuer: self.issuer.clone(),
            sid: self.sid.clone(),
            sub: self.sub.clone(),
            revoked_at: self.revoked_at,
            keep_until: self.keep_until,
        }
    }
}

/// Issuer, `sid`, `sub`.
type Key = (String, String, String);

/// This node's session revocations.
#[derive(Default)]
pub struct SessionRevocations {
    /// Revocation time and end of need, by issuer, `sid` and `sub`.
    known: RwLock<HashMap<Key, (i64, i64)>>,
    /// How many are known: sessions are checked only when some are.
    count: AtomicUsize,
    /// Reported here and not yet echoed by the control plane.
    outbox: Mutex<Vec<Revocation>>,
    queued: Notify,
    /// Logout-token ids seen, by issuer and `jti`, with when they expire.
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl SessionRevocations {
    /// Applies a revocation the control plane sent; true when it was new or later than the one known.
    /// It also confirms the same revocation reported here.
    pub fn learn(&self, r: &Revocation, now: i64) -> bool {
        self.outbox
            .lock()
            .unwrap()
            .retain(|q| q.key() != r.key() || q.revoked_at > r.revoked_at);
        self.apply(r, now)
    }

    /// Applies a revocation verified here and, unless the same or a later one is known, queues it for
    /// the control plane.
    pub fn report(&self, r: Revocation, now: i64) {
        if self.apply(&r, now) {
            self.outbox.lock().unwrap().push(r);
            self.queued.notify_one();
        }
    }

    /// Revocations reported here that the control plane has not echoed yet.
    pub fn unsent(&self) -> Vec<Revocation> {
        self.outbox.lock().unwrap().clone()
    }

    /// Waits until a revocation is reported here.
    pub async fn reported(&self) {
        self.queued.notified().await
    }

    fn apply(&self, r: &Revocation, now: i64) -> bool {
        let mut known = self.known.write().unwrap();
        known.retain(|_, (_, keep_until)| *keep_until > now);
        let entry = known.entry(r.key()).or_insert((i64::MIN, 0));
        let newer = r.revoked_at > entry.0;
        *entry = (entry.0.max(r.revoked_at), entry.1.max(r.keep_until));
        self.count.store(known.len(), Ordering::Relaxed);
        newer
    }

    /// Whether a session of `issuer` with `sid` (empty: none) and `sub` that began at `began_at` has
    /// been revoked.
    pub fn ends(&self, issuer: &str, sid: &str, sub: &str, began_at: i64) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let known = self.known.read().unwrap();
        let revoked = |sid: &str, sub: &str| {
            known
                .get(&(issuer.to_string(), sid.to_string(), sub.to_string()))
                .is_some_and(|(at, _)| began_at <= *at)
        };
        (!sid.is_empty() && (revoked(sid, sub) || revoked(sid, "")))
            || (!sub.is_empty() && revoked("", sub))
    }

    /// How many revocations this node knows.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers a logout token's `jti` until `expires_at`; false when it was seen before.
    pub fn first_use(&self, issuer: &str, jti: &str, expires_at: i64, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= MAX_SEEN_JTI {
            seen.retain(|_, exp| *exp > now);
        }
        if seen.len() >= MAX_SEEN_JTI {
            // Still full of live ids: forget the ones closest to expiry.
            let mut by_expiry: Vec<i64> = seen.values().copied().collect();
            by_expiry.sort_unstable();
            let cut = by_expiry[MAX_SEEN_JTI / 10];
            seen.retain(|_, exp| *exp > cut);
        }
        let key = (issuer.to_string(), jti.to_string());
        match seen.get(&key) {
            Some(exp) if *exp > now => false,
            _ => {
                seen.insert(key, expires_at);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(sid: &str, sub: &str, at: i64) -> Revocation {
        Revocation {
            issuer: "https://idp".into(),
            sid: sid.into(),
            sub: sub.into(),
            revoked_at: at,
            keep_until: at + 100,
        }
    }

    #[test]
    fn a_revocation_ends_the_sessions_it_names_that_began_before_it() {
        let r = SessionRevocations::default();
        assert!(!r.ends("https://idp", "s1", "alex", 0));
        r.learn(&revocation("s1", "", 50), 50);
        assert!(r.ends("https://idp", "s1", "alex", 50));
        assert!(
            !r.ends("https://idp", "s1", "alex", 51),
            "signed in again afterwards"
        );
        assert!(
            !r.ends("https://idp", "s2", "alex", 10),
            "another session of the person"
        );
        assert!(!r.ends("https://other", "s1", "alex", 10), "another issuer");
        r.learn(&revocation("", "alex", 60), 60);
        assert!(
            r.ends("https://idp", "s2", "alex", 10),
            "every session of the person"
        );
        assert!(
            r.ends("https://idp", "", "alex", 10),
            "a session without sid"
        );
        r.learn(&revocation("s9", "kim", 70), 70);
        assert!(r.ends("https://idp", "s9", "kim", 70));
        assert!(
            !r.ends("https://idp", "s9", "lee", 70),
            "sid and sub must both match"
        );
        assert_eq!(r.len(), 3);
        // Once no session they could end is alive, they are dropped.
        r.learn(&revocation("", "other", 1000), 1000);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn reported_revocations_wait_for_the_control_planes_echo() {
        let r = SessionRevocations::default();
        r.report(revocation("s1", "", 50), 50);
        assert!(r.ends("https://idp", "s1", "", 40), "applied here at once");
        assert_eq!(r.unsent().len(), 1);
        r.learn(&revocation("s2", "", 50), 50);
        assert_eq!(r.unsent().len(), 1, "another revocation confirms nothing");
        assert!(
            !r.learn(&revocation("s1", "", 50), 50),
            "not newer than the one known"
        );
        assert!(r.unsent().is_empty());
        r.report(revocation("s1", "", 50), 50);
        assert!(r.unsent().is_empty(), "nothing new to tell");
    }

    #[test]
    fn a_logout_token_id_is_accepted_once_until_it_expires() {
        let r = SessionRevocations::default();
        assert!(r.first_use("https://idp", "j1", 100, 10));
        assert!(!r.first_use("https://idp", "j1", 100, 20));
        assert!(r.first_use("https://other", "j1", 100, 20));
        assert!(
            r.first_use("https://idp", "j1", 200, 101),
            "expired ids are forgotten"
        );
    }
}
