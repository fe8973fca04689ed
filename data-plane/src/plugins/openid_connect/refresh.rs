//! Renewing a session whose access token has expired with its refresh token (RFC 6749 section 6, with
//! `refresh_tokens`): one refresh grant per refresh token on a node, its answer shared for a short while
//! by the session's other requests (they carry the same cookie until the renewed one reaches the
//! browser). A refused refresh ends the session; the person signs in again.

use super::session::Session;
use super::*;

/// How long a refresh's answer serves the same session's concurrent requests.
const SHARED_FOR: Duration = Duration::from_secs(30);

impl OpenIdConnect {
    /// Whether `session`'s access token has expired at `now`.
    pub(super) fn expired(&self, session: &Session, now: i64) -> bool {
        session.expires_at.is_some_and(|at| at <= now)
    }

    /// Renews `session`'s tokens with its refresh token.
    pub(super) async fn refresh_session(
        &self,
        ex: &Exchange,
        session: &mut Session,
    ) -> Result<(), Denial> {
        let expired = || Denial::Invalid("the session's access token has expired".into());
        if !self.config.browser.refresh_tokens {
            return Err(expired());
        }
        let refresh_token = session.refresh_token.clone().ok_or_else(expired)?;
        let doc = self.doc().await?;
        let key = self.idp.key(&[b"refresh"], &[refresh_token.as_bytes()]);
        let cache = &self.idp.caches().oidc_tokens;
        let (answer, _) = self
            .idp
            .cached(cache, key, ("token_hit", "token_miss"), async {
                let form = vec![
                    ("grant_type".into(), "refresh_token".into()),
                    ("refresh_token".into(), refresh_token.clone()),
                ];
                let body = self
                    .token_request(ex, &doc, form, "the refresh token")
                    .await?;
                Ok::<_, Denial>(Cached::new(Arc::new(body), SHARED_FOR))
            })
            .await;
        let tokens = answer?;
        let now = unix_now();
        session.access_token = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(id_token) = tokens["id_token"].as_str() {
            session.id_token = id_token.to_string();
        }
        if let Some(rotated) = tokens["refresh_token"].as_str() {
            session.refresh_token = Some(rotated.to_string());
        }
        session.expires_at = tokens["expires_in"].as_i64().map(|s| now + s);
        debug!(plugin = NAME, request_id = %ex.request_id, "session renewed with its refresh token");
        Ok(())
    }
}
