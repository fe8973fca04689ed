//! Sessions kept on a Redis server (`session_storage: redis`): the browser's cookie holds only the
//! session's id, sealed like a cookie session; the tokens stay server-side, sealed too (under a key of
//! their own, bound to the Redis key), so neither the browser nor a reader of the Redis server sees them.
//! Every node of the cluster reaches the same server, so a session made on one is valid on all, and
//! deleting the entry ends it everywhere at once. A server that cannot be reached answers 503: a session
//! is never looked for anywhere else.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use shared::plugins::openid_connect::Browser;

use crate::plugins::redis_clients::{RedisClients, RedisFailure, RedisServer};
use crate::plugins::sealed::Sealer;

/// Key prefix when the config names none.
const DEFAULT_PREFIX: &str = "sessions";

/// What a Redis session's cookie holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reference {
    pub id: String,
}

/// One plugin instance's sessions on its Redis server.
pub struct RedisSessions {
    server: Arc<RedisServer>,
    prefix: String,
    sealer: Sealer,
}

impl RedisSessions {
    pub fn new(b: &Browser, clients: &RedisClients) -> Result<RedisSessions, String> {
        Ok(RedisSessions {
            server: clients.get(&b.redis)?,
            prefix: b
                .redis
                .prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.into()),
            sealer: Sealer::new(&b.session_secret, "redis-session"),
        })
    }

    /// A new session id: 256 random bits.
    pub fn new_id() -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    }

    fn key(&self, id: &str) -> String {
        format!("{}:{id}", self.prefix)
    }

    /// The session stored under `id`, opened; `None` when there is none (ended, expired, or sealed with
    /// a secret no longer configured).
    pub async fn get(&self, id: &str) -> Result<Option<Vec<u8>>, RedisFailure> {
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key);
        let (sealed,): (Option<String>,) = self.server.query(&pipe).await?;
        Ok(sealed.and_then(|v| self.sealer.open(&v, key.as_bytes())))
    }

    /// Stores the session `plain` under `id` for `ttl` seconds, sealed.
    pub async fn put(&self, id: &str, plain: &[u8], ttl: i64) -> Result<(), RedisFailure> {
        let key = self.key(id);
        let Some(sealed) = self.sealer.seal(plain, key.as_bytes()) else {
            return Err(RedisFailure::Failed {
                server: self.server.label().to_string(),
                reason: "the session could not be sealed".into(),
            });
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(sealed)
            .arg("EX")
            .arg(ttl.max(1))
            .ignore();
        self.server.query::<()>(&pipe).await
    }

    /// The index entries that find sessions by their identity provider's `sid` and `sub` (hashed: the
    /// Redis server holds no identity in clear).
    fn index_key(&self, issuer: &str, kind: &str, value: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [issuer, kind, value] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        format!("{}:by-{kind}:{}", self.prefix, hex::encode(h.finalize()))
    }

    /// Lists the session `id` under its `sid` and `sub` for `ttl` seconds, so a back-channel logout
    /// finds it.
    pub async fn index(
        &self,
        id: &str,
        (issuer, sid, sub): (&str, &str, &str),
        ttl: i64,
    ) -> Result<(), RedisFailure> {
        let mut pipe = redis::pipe();
        for (kind, value) in [("sid", sid), ("sub", sub)] {
            if !value.is_empty() {
                let key = self.index_key(issuer, kind, value);
                pipe.cmd("SADD").arg(&key).arg(id).ignore();
                pipe.cmd("EXPIRE").arg(&key).arg(ttl.max(1)).ignore();
            }
        }
        self.server.query::<()>(&pipe).await
    }

    /// Deletes every session listed under `sid` (when given, else `sub`) of `issuer`, and their entries
    /// in the other listing when both are given; how many.
    pub async fn delete_matching(
        &self,
        issuer: &str,
        sid: &str,
        sub: &str,
    ) -> Result<usize, RedisFailure> {
        let index = match sid.is_empty() {
            false => self.index_key(issuer, "sid", sid),
            true => self.index_key(issuer, "sub", sub),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SMEMBERS").arg(&index);
        let (ids,): (Vec<String>,) = self.server.query(&pipe).await?;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&index).ignore();
        for id in &ids {
            pipe.cmd("DEL").arg(self.key(id)).ignore();
        }
        if !sid.is_empty() && !sub.is_empty() && !ids.is_empty() {
            let by_sub = self.index_key(issuer, "sub", sub);
            pipe.cmd("SREM").arg(by_sub).arg(&ids).ignore();
        }
        self.server.query::<()>(&pipe).await?;
        Ok(ids.len())
    }

    /// Deletes the session stored under `id` and its index entries.
    pub async fn delete(
        &self,
        id: &str,
        (issuer, sid, sub): (&str, &str, &str),
    ) -> Result<(), RedisFailure> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.key(id)).ignore();
        for (kind, value) in [("sid", sid), ("sub", sub)] {
            if !value.is_empty() {
                let index = self.index_key(issuer, kind, value);
                pipe.cmd("SREM").arg(index).arg(id).ignore();
            }
        }
        self.server.query::<()>(&pipe).await
    }
}
