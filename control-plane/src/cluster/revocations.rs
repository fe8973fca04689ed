//! Sessions ended by identity providers (OpenID Connect Back-Channel Logout), for every node.
//!
//! A node that verified a `logout_token` sends the revocation on its stream. The control plane keeps it
//! in the store ([`Records::SessionRevocations`], durable, and shared between control planes on
//! PostgreSQL) until the longest session it can end has expired, then announces it through the store, so
//! every control plane pushes it to the nodes it holds (as it does cache purges). A node that connects
//! is sent every revocation still kept, so one that was away misses none.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Event, Records, Store, StoreError};

/// Longest a revocation is kept, whatever the node asked: a year.
const MAX_KEEP_SECS: i64 = 366 * 86_400;
/// Longest issuer, `sid` or `sub` accepted from a node.
const MAX_FIELD_LEN: usize = 2048;
/// How far in the future a revocation's time may be (clock skew between node and control plane).
const MAX_SKEW_SECS: i64 = 300;

/// Sessions of `issuer` with this `sid` and `sub` (an empty one matches any) that began at or before
/// `revoked_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevocation {
    pub issuer: String,
    pub sid: String,
    pub sub: String,
    /// Unix seconds.
    pub revoked_at: i64,
    /// Unix seconds after which it is dropped.
    pub keep_until: i64,
}

impl SessionRevocation {
    /// Reads a node's message; why it cannot be a revocation at `now`.
    pub fn from_node(m: proto::SessionRevocation, now: i64) -> Result<SessionRevocation, String> {
        if m.issuer.is_empty() {
            return Err("issuer is empty".into());
        }
        if m.sid.is_empty() && m.sub.is_empty() {
            return Err("neither sid nor sub is given".into());
        }
        for (name, v) in [("issuer", &m.issuer), ("sid", &m.sid), ("sub", &m.sub)] {
            if v.len() > MAX_FIELD_LEN {
                return Err(format!("{name} is longer than {MAX_FIELD_LEN} bytes"));
            }
        }
        if m.revoked_at > now + MAX_SKEW_SECS || m.revoked_at <= 0 {
            return Err(format!("revoked_at {} is not a time", m.revoked_at));
        }
        let keep_until = m.keep_until.min(m.revoked_at + MAX_KEEP_SECS);
        if keep_until <= now {
            return Err("it has already expired".into());
        }
        Ok(SessionRevocation {
            issuer: m.issuer,
            sid: m.sid,
            sub: m.sub,
            revoked_at: m.revoked_at,
            keep_until,
        })
    }

    /// The message that carries it to a node.
    pub fn to_node(&self) -> proto::SessionRevocation {
        proto::SessionRevocation {
            issuer: self.issuer.clone(),
            sid: self.sid.clone(),
            sub: self.sub.clone(),
            revoked_at: self.revoked_at,
            keep_until: self.keep_until,
        }
    }

    /// Its key in the store: one record per issuer, `sid` and `sub`.
    fn id(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.issuer, &self.sid, &self.sub] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// This one and `other` (the same sessions) as one: the later time, kept the longer.
    fn merged(mut self, other: &SessionRevocation) -> SessionRevocation {
        self.revoked_at = self.revoked_at.max(other.revoked_at);
        self.keep_until = self.keep_until.max(other.keep_until);
        self
    }
}

/// Keeps `r` (merged with what is kept for the same sessions) and announces it to every control plane
/// sharing `store`, which push it to their nodes.
pub async fn record(store: &dyn Store, r: SessionRevocation) -> Result<(), StoreError> {
    let id = r.id();
    let fresh = r.clone();
    let merge = move |kept: Option<&serde_json::Value>| {
        let kept = kept.and_then(|v| serde_json::from_value::<SessionRevocation>(v.clone()).ok());
        let merged = match kept {
            Some(k) => fresh.clone().merged(&k),
            None => fresh.clone(),
        };
        serde_json::to_value(merged).ok()
    };
    let before = store
        .update_record(Records::SessionRevocations, &id, &merge)
        .await?;
    let before = before.and_then(|v| serde_json::from_value::<SessionRevocation>(v).ok());
    let merged = match &before {
        Some(k) => r.merged(k),
        None => r,
    };
    store.announce(&Event::SessionRevoked(merged)).await
}

/// Every revocation kept and still needed at `now`, oldest first; expired ones are dropped from the store.
pub async fn current(store: &dyn Store, now: i64) -> Result<Vec<SessionRevocation>, StoreError> {
    let mut live = Vec::new();
    for (id, value) in store.list_records(Records::SessionRevocations).await? {
        match serde_json::from_value::<SessionRevocation>(value) {
            Ok(r) if r.keep_until > now => live.push(r),
            // Expired, or unreadable (a record this version cannot read ends nothing it could check).
            _ => {
                store.take_record(Records::SessionRevocations, &id).await?;
            }
        }
    }
    live.sort_by_key(|r| r.revoked_at);
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sid: &str, sub: &str, revoked_at: i64, keep_until: i64) -> proto::SessionRevocation {
        proto::SessionRevocation {
            issuer: "https://idp".into(),
            sid: sid.into(),
            sub: sub.into(),
            revoked_at,
            keep_until,
        }
    }

    #[test]
    fn a_node_message_is_checked_and_its_lifetime_bounded() {
        let now = 1_000_000;
        let ok = SessionRevocation::from_node(message("s1", "", now, now + 10), now).unwrap();
        assert_eq!(ok.keep_until, now + 10);
        let long = SessionRevocation::from_node(message("", "alex", now, i64::MAX), now).unwrap();
        assert_eq!(long.keep_until, now + MAX_KEEP_SECS);
        let why = |m| SessionRevocation::from_node(m, now).unwrap_err();
        assert_eq!(
            why(message("", "", now, now + 10)),
            "neither sid nor sub is given"
        );
        assert_eq!(why(message("s", "", now, now)), "it has already expired");
        assert!(why(message("s", "", now + 3600, now + 7200)).starts_with("revoked_at"));
        let mut no_issuer = message("s", "", now, now + 10);
        no_issuer.issuer.clear();
        assert_eq!(why(no_issuer), "issuer is empty");
        assert!(why(message(&"x".repeat(MAX_FIELD_LEN + 1), "", now, now + 9)).starts_with("sid"));
    }

    #[test]
    fn one_key_per_sessions_and_merging_keeps_the_later_and_longer() {
        let a = SessionRevocation::from_node(message("s1", "", 100, 200), 100).unwrap();
        let b = SessionRevocation::from_node(message("s1", "", 150, 180), 100).unwrap();
        let other = SessionRevocation::from_node(message("", "s1", 100, 200), 100).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(
            a.id(),
            other.id(),
            "a sid and a sub of the same text are different sessions"
        );
        let m = a.merged(&b);
        assert_eq!((m.revoked_at, m.keep_until), (150, 200));
    }
}
