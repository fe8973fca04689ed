//! Per-node plugin caches (moka), shared across snapshots. Keys are hashes, never raw tokens: a namespace
//! hash (plugin instance and endpoint) and the SHA-256 of the token, so a purge by token hash reaches every
//! namespace.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde_json::Value;

use crate::header_block::HeaderBlock;

mod front;

/// Key of a cached token result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// SHA-256 of the namespace (plugin instance id, endpoint, and anything else the answer depends on).
    pub namespace: [u8; 32],
    /// SHA-256 of the token or credentials.
    pub token: [u8; 32],
}

/// A cached result with its own time to live.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The identity provider's answer (claims).
    pub claims: Arc<Value>,
    /// How long the entry lives.
    pub ttl: Duration,
    /// When the entry's time to live ends.
    pub expires: Instant,
    /// The upstream headers a plugin derived from the claims, made on the entry's first hit so later
    /// hits copy nothing.
    pub headers: Arc<OnceLock<DerivedHeaders>>,
}

impl Cached {
    pub fn new(claims: Arc<Value>, ttl: Duration) -> Cached {
        Cached {
            claims,
            ttl,
            expires: Instant::now() + ttl,
            headers: Arc::default(),
        }
    }
}

/// Upstream headers derived from cached claims, with the fingerprint of the rule that made them (the
/// plugin's header settings when they were derived: an entry made before those settings changed is
/// not used).
#[derive(Debug)]
pub struct DerivedHeaders {
    pub rule: u64,
    pub block: Arc<HeaderBlock>,
}

struct PerEntry;

impl Expiry<TokenKey, Cached> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &TokenKey,
        value: &Cached,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

fn new_cache(max_entries: u64) -> Cache<TokenKey, Cached> {
    Cache::builder()
        .max_capacity(max_entries)
        .expire_after(PerEntry)
        .support_invalidation_closures()
        .build()
}

/// Looks `key` up in `cache`; on a miss runs `fetch`, with concurrent misses for the same key sharing one
/// fetch, and errors never cached. Returns the outcome and whether this call was a miss.
pub async fn get_or_fetch<E, F>(
    cache: &Cache<TokenKey, Cached>,
    key: TokenKey,
    fetch: F,
) -> (Result<Cached, Arc<E>>, bool)
where
    E: Send + Sync + 'static,
    F: std::future::Future<Output = Result<Cached, E>>,
{
    // The plain lookup is much cheaper than the coalescing path, and hits are the common case.
    if let Some(hit) = cache.get(&key).await {
        return (Ok(hit), false);
    }
    let ran = std::sync::atomic::AtomicBool::new(false);
    let out = cache
        .try_get_with(key, async {
            ran.store(true, std::sync::atomic::Ordering::Relaxed);
            fetch.await
        })
        .await;
    (out, ran.load(std::sync::atomic::Ordering::Relaxed))
}

/// Every cache of a node.
pub struct Caches {
    /// The per-thread front of `introspection` and `oidc_jwt` (see [`front`]).
    front: front::Front,
    /// Positive `oauth2-introspection` results.
    pub introspection: Cache<TokenKey, Cached>,
    /// Negative (`active:false`) `oauth2-introspection` results, kept apart so junk cannot evict good tokens.
    pub introspection_negative: Cache<TokenKey, Cached>,
    /// `openid-connect` introspection results.
    pub oidc_introspection: Cache<TokenKey, Cached>,
    /// `openid-connect` token-endpoint results.
    pub oidc_tokens: Cache<TokenKey, Cached>,
    /// Claims of JWTs `openid-connect` verified, until their `exp` (or `cache_ttl`).
    pub oidc_jwt: Cache<TokenKey, Cached>,
    /// `openid-connect` discovery documents and keys.
    pub issuers: platform::oidc_discovery::Issuers,
}

impl Caches {
    /// Caches holding at most `max_entries` each.
    pub fn new(max_entries: u64) -> Caches {
        Caches {
            front: front::Front::default(),
            introspection: new_cache(max_entries),
            introspection_negative: new_cache(max_entries),
            oidc_introspection: new_cache(max_entries),
            oidc_tokens: new_cache(max_entries),
            oidc_jwt: new_cache(max_entries),
            issuers: Default::default(),
        }
    }

    fn named(&self, cache: &str) -> Vec<&Cache<TokenKey, Cached>> {
        match cache {
            "oauth2-introspection" => vec![&self.introspection, &self.introspection_negative],
            "openid-connect-introspection" => vec![&self.oidc_introspection],
            "openid-connect-tokens" => vec![&self.oidc_tokens],
            "*" => vec![
                &self.introspection,
                &self.introspection_negative,
                &self.oidc_introspection,
                &self.oidc_tokens,
            ],
            _ => Vec::new(),
        }
    }

    /// A positive `oauth2-introspection` result for `key`: from this thread's front when it holds one,
    /// else from the cache (and then kept in the front).
    pub async fn introspection_hit(&self, key: &TokenKey) -> Option<Cached> {
        self.fronted(&self.introspection, key).await
    }

    /// The claims of a JWT `openid-connect` verified, for `key`: from this thread's front when it holds
    /// them, else from the cache (and then kept in the front).
    pub async fn jwt_hit(&self, key: &TokenKey) -> Option<Cached> {
        self.fronted(&self.oidc_jwt, key).await
    }

    /// `key` in this thread's front, else in `cache` (then kept in the front). The keys of the two caches
    /// never meet: each plugin instance hashes its own namespace into them.
    async fn fronted(&self, cache: &Cache<TokenKey, Cached>, key: &TokenKey) -> Option<Cached> {
        if let Some(hit) = self.front.get(key, Instant::now()) {
            return Some(hit);
        }
        let hit = cache.get(key).await?;
        self.front.put(*key, &hit);
        Some(hit)
    }

    /// Purges one token (by the hex SHA-256 of the token) or, with an empty key, everything in `cache`.
    /// Returns false for an unknown cache or a malformed key.
    pub fn purge(&self, cache: &str, key_hex: &str) -> bool {
        // Whatever is purged, the fronts start over.
        self.front.invalidate();
        if cache == "openid-connect-discovery" || cache == "*" {
            // Verified JWTs go with the keys that verified them.
            self.issuers.purge();
            self.oidc_jwt.invalidate_all();
            if cache != "*" {
                return true;
            }
        }
        let caches = self.named(cache);
        if caches.is_empty() {
            return false;
        }
        if key_hex.is_empty() {
            caches.iter().for_each(|c| c.invalidate_all());
            return true;
        }
        let Ok(bytes) = hex::decode(key_hex) else {
            return false;
        };
        let Ok(token) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            return false;
        };
        for c in caches {
            // Only fails when invalidation closures are not enabled, which new_cache always does.
            let _ = c.invalidate_entries_if(move |k, _| k.token == token);
        }
        true
    }

    /// Entry counts for the status page.
    pub fn sizes(&self) -> Value {
        serde_json::json!({
            "oauth2_introspection": self.introspection.entry_count(),
            "oauth2_introspection_negative": self.introspection_negative.entry_count(),
            "openid_connect_introspection": self.oidc_introspection.entry_count(),
            "openid_connect_tokens": self.oidc_tokens.entry_count(),
            "openid_connect_jwt": self.oidc_jwt.entry_count(),
        })
    }
}
