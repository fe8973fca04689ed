//! The session a browser sign-in leaves: its tokens and the ID token's claims, sealed (AES-256-GCM, keys
//! from `session_secret`) into the session cookie, split over several cookies when large, valid on every
//! node of the cluster since every node has the secret. The pending authorization of a sign-in (state,
//! nonce, PKCE verifier, original URL) is sealed into the authorization cookie the same way, under a key
//! of its own, so the callback may land on any node.

use serde::{Deserialize, Serialize};
use shared::plugins::openid_connect::{Browser, SameSite};
use tracing::{debug, warn};

use super::session_front::SessionFront;
use super::session_store::{RedisSessions, Reference};
use crate::plugins::cookies::{self, Attributes};
use crate::plugins::sealed::Sealer;

/// A session is sealed again (renewing its idle and rolling times) once it is this old, so a busy
/// session's cookie is rewritten at most once a minute.
const RESEAL_AFTER: i64 = 60;

/// How long a session is taken to be able to live when sessions have no absolute lifetime: a year (how
/// long a Redis session stays listed under its `sid` and `sub`, and a revocation is kept).
pub const LIFETIME_WITHOUT_ABSOLUTE: i64 = 366 * 86_400;

/// A signed-in person's session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub access_token: String,
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires (unix seconds), when the token endpoint said.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The ID token's claims.
    pub claims: serde_json::Value,
    /// When the person signed in.
    pub created_at: i64,
    /// When the session was last sealed (its last use, to a minute).
    pub sealed_at: i64,
    /// Its id on the Redis server (`session_storage: redis`), which is the key, not part of the value.
    #[serde(skip)]
    pub id: Option<String>,
}

impl Session {
    /// The identity provider's names for it: issuer, `sid` (empty when none), `sub`.
    pub fn identity(&self) -> (&str, &str, &str) {
        let text = |name: &str| self.claims[name].as_str().unwrap_or_default();
        (text("iss"), text("sid"), text("sub"))
    }
}

/// A sign-in waiting for the identity provider's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    /// The PKCE verifier, when a challenge was sent.
    pub verifier: Option<String>,
    /// The callback URL sent with the request (the token request repeats it).
    pub redirect_uri: String,
    /// Where the person was going: path and, with `preserve_query_args`, query.
    pub original: String,
    pub created_at: i64,
}

/// Why a session cookie is not a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// It does not open with any key (altered, truncated, another secret).
    Unreadable,
    /// Unused for longer than `session_idling_timeout`.
    Idle,
    /// Not sealed again within `session_rolling_timeout`.
    Rolling,
    /// Older than `session_absolute_timeout`.
    Absolute,
    /// Its id names no session on the Redis server (ended there, or expired).
    Ended,
    /// The Redis server holding it cannot be reached: the request is answered 503, the cookie kept.
    Unavailable,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Unreadable => "session cookie does not open",
            Invalid::Idle => "session idle for too long",
            Invalid::Rolling => "session not renewed in time",
            Invalid::Absolute => "session older than its absolute lifetime",
            Invalid::Ended => "session ended on the session store",
            Invalid::Unavailable => "session store unavailable",
        }
    }
}

/// A session read from a request: the session, how many cookies it took, whether it is due to be
/// sealed again.
pub type Found = (Session, usize, bool);

/// Why the request's session cookie is not a session, and how many cookies to clear.
pub type Refused = (Invalid, usize);

/// The cookies of one plugin instance.
pub struct Cookies {
    session: Sealer,
    authorization: Sealer,
    session_name: String,
    authorization_name: String,
    attrs: Attributes,
    secure: Option<bool>,
    idling: i64,
    rolling: i64,
    absolute: i64,
    pending_for: i64,
    /// Where the tokens are when not in the cookie.
    redis: Option<RedisSessions>,
    /// Cookie sessions opened recently.
    front: SessionFront<Session>,
}

impl Cookies {
    /// The cookies of `b`, whose sessions live on `redis` when given.
    pub fn new(b: &Browser, redis: Option<RedisSessions>) -> Cookies {
        Cookies {
            session: Sealer::new(&b.session_secret, "session"),
            authorization: Sealer::new(&b.session_secret, "authorization"),
            session_name: b.session_cookie_name.clone(),
            authorization_name: b.authorization_cookie_name.clone(),
            attrs: Attributes {
                path: b.session_cookie_path.clone(),
                domain: b.session_cookie_domain.clone(),
                same_site: match b.session_cookie_same_site {
                    SameSite::Strict => Some(cookie::SameSite::Strict),
                    SameSite::Lax => Some(cookie::SameSite::Lax),
                    SameSite::None => Some(cookie::SameSite::None),
                    SameSite::Default => None,
                },
                http_only: b.session_cookie_http_only,
                secure: false,
            },
            secure: b.session_cookie_secure,
            idling: b.session_idling_timeout as i64,
            rolling: b.session_rolling_timeout as i64,
            absolute: b.session_absolute_timeout as i64,
            pending_for: b.authorization_rolling_timeout as i64,
            redis,
            front: SessionFront::default(),
        }
    }

    /// The attributes for a request that came over TLS when `tls`.
    fn attrs(&self, tls: bool) -> Attributes {
        Attributes {
            secure: self.secure.unwrap_or(tls),
            ..self.attrs.clone()
        }
    }

    /// The session in the request's cookies at `now`, the number of cookies it took, and whether it is
    /// due to be sealed again; `Ok(None)` when the request has none.
    pub async fn session(
        &self,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Option<Found>, Refused> {
        let (value, chunks) = cookies::get_chunked(headers, &self.session_name);
        let Some(value) = value else {
            return Ok(None);
        };
        if self.redis.is_none() {
            if let Some(kept) = self.front.get(&value) {
                return self.check(Session::clone(&kept), chunks, now);
            }
        }
        let plain = self
            .session
            .open(&value, self.session_name.as_bytes())
            .ok_or((Invalid::Unreadable, chunks))?;
        let s: Session = match &self.redis {
            None => {
                let s: Session =
                    serde_json::from_slice(&plain).map_err(|_| (Invalid::Unreadable, chunks))?;
                self.front.put(&value, std::sync::Arc::new(s.clone()));
                s
            }
            Some(store) => {
                let r: Reference =
                    serde_json::from_slice(&plain).map_err(|_| (Invalid::Unreadable, chunks))?;
                match store.get(&r.id).await {
                    Ok(Some(plain)) => {
                        let mut s: Session = serde_json::from_slice(&plain)
                            .map_err(|_| (Invalid::Unreadable, chunks))?;
                        s.id = Some(r.id);
                        s
                    }
                    Ok(None) => return Err((Invalid::Ended, chunks)),
                    Err(e) => {
                        warn!(error = %e, "session store unavailable");
                        return Err((Invalid::Unavailable, chunks));
                    }
                }
            }
        };
        self.check(s, chunks, now)
    }

    /// `s` (read from `chunks` cookies) if its lifetimes allow its use at `now`, and whether it is due to
    /// be sealed again.
    fn check(&self, s: Session, chunks: usize, now: i64) -> Result<Option<Found>, Refused> {
        let age = now - s.sealed_at;
        if self.idling > 0 && age > self.idling {
            return Err((Invalid::Idle, chunks));
        }
        if self.rolling > 0 && age > self.rolling {
            return Err((Invalid::Rolling, chunks));
        }
        if self.absolute > 0 && now - s.created_at > self.absolute {
            return Err((Invalid::Absolute, chunks));
        }
        Ok(Some((s, chunks, age >= RESEAL_AFTER)))
    }

    /// Stores `s` (sealed at `now`) and returns the `Set-Cookie` values that replace the `previous`
    /// chunks: the whole session in cookie storage; on Redis, its sealed id the first time and nothing
    /// after (the entry is renewed in place).
    pub async fn store(
        &self,
        s: &mut Session,
        now: i64,
        tls: bool,
        previous: usize,
    ) -> Result<Vec<http::HeaderValue>, String> {
        s.sealed_at = now;
        let max_age = (self.absolute > 0).then(|| self.absolute - (now - s.created_at));
        let plain = match &self.redis {
            None => serde_json::to_vec(s).map_err(|e| e.to_string())?,
            Some(store) => {
                let fresh = s.id.is_none();
                let id = s.id.get_or_insert_with(RedisSessions::new_id).clone();
                let plain = serde_json::to_vec(s).map_err(|e| e.to_string())?;
                store
                    .put(&id, &plain, self.lifetime(s, now))
                    .await
                    .map_err(|e| e.to_string())?;
                if !fresh {
                    return Ok(Vec::new());
                }
                let indexed_for = match self.absolute {
                    0 => LIFETIME_WITHOUT_ABSOLUTE,
                    absolute => absolute,
                };
                store
                    .index(&id, s.identity(), indexed_for)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_vec(&Reference { id }).map_err(|e| e.to_string())?
            }
        };
        let sealed = self
            .session
            .seal(&plain, self.session_name.as_bytes())
            .ok_or("the session could not be sealed")?;
        cookies::set_chunked(
            &self.session_name,
            &sealed,
            &self.attrs(tls),
            max_age,
            previous,
        )
        .ok_or_else(|| "the session is too large for its cookies".to_string())
    }

    /// Seconds a stored session may live from `now`: to its absolute end, and no longer than its idle
    /// or rolling lifetime allows before it must be renewed (the checks on use are exact; this only lets
    /// the server drop what nobody can use).
    fn lifetime(&self, s: &Session, now: i64) -> i64 {
        [
            (self.absolute > 0).then(|| self.absolute - (now - s.created_at)),
            (self.idling > 0).then_some(self.idling + RESEAL_AFTER),
            (self.rolling > 0).then_some(self.rolling + RESEAL_AFTER),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.pending_for.max(86_400))
        .max(1)
    }

    /// Deletes a session's entry on the Redis server (nothing to do for a cookie session, whose
    /// cookies the answer clears).
    pub async fn forget(&self, s: &Session) -> Result<(), String> {
        if let (Some(store), Some(id)) = (&self.redis, &s.id) {
            if let Err(e) = store.delete(id, s.identity()).await {
                warn!(error = %e, "an ended session could not be deleted from the session store");
                return Err(e.to_string());
            }
        }
        Ok(())
    }

    /// Deletes the sessions of `issuer` with `sid` (or, without one, `sub`) from the Redis server (nothing
    /// to do for cookie sessions, which the revocation list ends).
    pub async fn forget_matching(&self, issuer: &str, sid: &str, sub: &str) -> Result<(), String> {
        let Some(store) = &self.redis else {
            return Ok(());
        };
        match store.delete_matching(issuer, sid, sub).await {
            Ok(n) => {
                debug!(sessions = n, "sessions deleted from the session store");
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "sessions ended by the identity provider could not be deleted");
                Err(e.to_string())
            }
        }
    }

    /// The `Set-Cookie` values that end the session (`count` cookies).
    pub fn clear(&self, tls: bool, count: usize) -> Vec<http::HeaderValue> {
        cookies::clear_chunked(&self.session_name, &self.attrs(tls), count)
    }

    /// The pending sign-in in the request's authorization cookie, if it opens and is recent.
    pub fn pending(&self, headers: &http::HeaderMap, now: i64) -> Option<Pending> {
        let value = cookies::get(headers, &self.authorization_name)?;
        let plain = self
            .authorization
            .open(&value, self.authorization_name.as_bytes())?;
        let p: Pending = serde_json::from_slice(&plain).ok()?;
        (now - p.created_at <= self.pending_for && p.created_at <= now).then_some(p)
    }

    /// Whether the request carries an authorization cookie at all.
    pub fn has_pending(&self, headers: &http::HeaderMap) -> bool {
        cookies::get(headers, &self.authorization_name).is_some()
    }

    /// The `Set-Cookie` value of a pending sign-in. With `cross_site` (the answer comes back as a form
    /// posted by the identity provider's page) it must be `SameSite=None; Secure` to be sent back.
    pub fn store_pending(
        &self,
        p: &Pending,
        tls: bool,
        cross_site: bool,
    ) -> Option<http::HeaderValue> {
        let plain = serde_json::to_vec(p).ok()?;
        let sealed = self
            .authorization
            .seal(&plain, self.authorization_name.as_bytes())?;
        let mut attrs = self.attrs(tls);
        if cross_site && attrs.secure {
            attrs.same_site = Some(cookie::SameSite::None);
        }
        Some(cookies::set(
            &self.authorization_name,
            &sealed,
            &attrs,
            Some(self.pending_for),
        ))
    }

    /// The `Set-Cookie` value that removes the authorization cookie.
    pub fn clear_pending(&self, tls: bool) -> http::HeaderValue {
        cookies::set(&self.authorization_name, "", &self.attrs(tls), Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn browser() -> Browser {
        let c = shared::plugins::openid_connect::Config::parse(
            &json!({"issuer": "https://idp", "client_id": ["web"], "client_secret": ["s"],
                "auth_methods": ["authorization_code", "session"], "session_secret": "k".repeat(32),
                "session_idling_timeout": 900, "session_rolling_timeout": 3600, "session_absolute_timeout": 7200}),
            &shared::ConfigState::default(),
        )
        .unwrap();
        c.browser
    }

    fn session(now: i64) -> Session {
        Session {
            access_token: "at".repeat(3000),
            id_token: "it".into(),
            refresh_token: None,
            expires_at: Some(now + 300),
            claims: json!({"sub": "alex"}),
            created_at: now,
            sealed_at: now,
            id: None,
        }
    }

    /// A request carrying the cookies of `set`.
    fn request(set: &[http::HeaderValue]) -> http::HeaderMap {
        let pairs: Vec<&str> = set
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap())
            .filter(|p| !p.ends_with('='))
            .collect();
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, pairs.join("; ").parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_large_session_round_trips_over_chunks_and_is_resealed_after_a_minute() {
        let c = Cookies::new(&browser(), None);
        let mut s = session(1000);
        let set = c.store(&mut s, 1000, true, 0).await.unwrap();
        assert!(set.len() >= 2, "6 KB of tokens take more than one cookie");
        assert!(set[0].to_str().unwrap().contains("Secure"));
        let h = request(&set);
        let (back, chunks, due) = c.session(&h, 1030).await.unwrap().unwrap();
        assert_eq!((back, chunks, due), (s.clone(), set.len(), false));
        assert!(c.session(&h, 1000 + RESEAL_AFTER).await.unwrap().unwrap().2);
    }

    #[tokio::test]
    async fn idle_rolling_absolute_and_foreign_sessions_are_refused() {
        let b = browser();
        let c = Cookies::new(&b, None);
        let mut s = session(1000);
        let h = request(&c.store(&mut s, 1000, false, 0).await.unwrap());
        assert_eq!(
            c.session(&h, 1000 + 901).await.unwrap_err().0,
            Invalid::Idle
        );
        // Used every few minutes, renewed each time: alive until the absolute lifetime.
        let mut now = 1000;
        let mut h = h;
        while now < 1000 + 7200 {
            now += 600;
            match c.session(&h, now).await {
                Ok(Some((mut s, chunks, _))) => {
                    h = request(&c.store(&mut s, now, false, chunks).await.unwrap())
                }
                Err((why, _)) => {
                    assert_eq!(why, Invalid::Absolute);
                    break;
                }
                Ok(None) => unreachable!(),
            }
        }
        assert!(now > 1000 + 7200 - 600, "ended at {now}");
        let mut other = b.clone();
        other.session_secret = vec!["z".repeat(32)];
        assert_eq!(
            Cookies::new(&other, None)
                .session(
                    &request(&c.store(&mut session(5), 5, false, 0).await.unwrap()),
                    6
                )
                .await
                .unwrap_err()
                .0,
            Invalid::Unreadable
        );
        assert_eq!(c.session(&http::HeaderMap::new(), 6).await, Ok(None));
    }

    #[tokio::test]
    async fn a_pending_sign_in_opens_once_recent_and_not_as_a_session() {
        let c = Cookies::new(&browser(), None);
        let p = Pending {
            state: "st".into(),
            nonce: "no".into(),
            verifier: Some("v".into()),
            redirect_uri: "https://gw/app".into(),
            original: "/app?x=1".into(),
            created_at: 100,
        };
        let v = c.store_pending(&p, true, false).unwrap();
        let h = request(&[v]);
        assert_eq!(c.pending(&h, 200), Some(p));
        assert_eq!(c.pending(&h, 100 + 601), None);
        // The authorization key cannot open a session cookie and the other way round.
        let pair = h[http::header::COOKIE]
            .to_str()
            .unwrap()
            .replace("authorization=", "session=");
        let mut swapped = http::HeaderMap::new();
        swapped.insert(http::header::COOKIE, pair.parse().unwrap());
        assert_eq!(
            c.session(&swapped, 200).await.unwrap_err().0,
            Invalid::Unreadable
        );
    }
}
