//! OpenID Connect Back-Channel Logout 1.0: the identity provider POSTs a form with a `logout_token` to a
//! path ending in `backchannel_logout_uri_suffix`.
//!
//! The token is checked as the specification's §2.6 says: a JWT signed by a key of the issuer's JWKS,
//! `iss` the issuer, `aud` naming a client of this plugin, `exp` and `iat` present and current, the
//! back-channel logout event in `events`, a `sid` and/or a `sub`, no `nonce`, and a `jti` not accepted
//! before on this node. Then every session it names ends on every node of the cluster: on this one at
//! once, on the others through the control plane (`plugins::session_revocations`); sessions kept on a Redis
//! server are deleted there too. Answers (§2.8): 200 with `Cache-Control: no-store`, or 400 with
//! `error` and `error_description`; 503 when the issuer's keys cannot be fetched to judge the token.

use http::header::{HeaderValue, CACHE_CONTROL};

use super::*;
use crate::plugins::session_revocations::Revocation;

/// The member of `events` that makes a JWT a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Oldest `iat` accepted, in seconds before now (plus `leeway`).
const MAX_TOKEN_AGE: i64 = 600;

impl OpenIdConnect {
    /// Whether the request is a back-channel logout request.
    pub(super) fn is_backchannel_logout(&self, ex: &Exchange) -> bool {
        ex.parts.method == Method::POST
            && self
                .config
                .browser
                .backchannel_logout_uri_suffix
                .as_deref()
                .is_some_and(|s| ex.parts.uri.path().ends_with(s))
    }

    /// Verifies the logout token and ends the sessions it names.
    pub(super) async fn backchannel_logout(&self, ex: &mut Exchange, cookies: &Cookies) -> Refusal {
        let no_store = HeaderValue::from_static("no-store");
        let revocation = match self.logout_token(ex).await {
            Ok(r) => r,
            Err(Denial::Unavailable(why)) => {
                warn!(plugin = NAME, request_id = %ex.request_id, reason = %why, "back-channel logout not judged");
                return self.answer(ex, Denial::Unavailable(why));
            }
            Err(d) => {
                let why = match d {
                    Denial::Invalid(w) | Denial::Forbidden(w) => w,
                    _ => "no logout_token".into(),
                };
                info!(plugin = NAME, request_id = %ex.request_id, reason = %why, "back-channel logout refused");
                let body = json!({"error": "invalid_request", "error_description": why});
                return Refusal::new(StatusCode::BAD_REQUEST, body, "backchannel_logout_refused")
                    .with_field(CACHE_CONTROL, no_store);
            }
        };
        if let Err(why) = cookies
            .forget_matching(&revocation.issuer, &revocation.sid, &revocation.sub)
            .await
        {
            return self.answer(ex, Denial::Unavailable(why));
        }
        info!(plugin = NAME, request_id = %ex.request_id, by_sid = !revocation.sid.is_empty(), by_sub = !revocation.sub.is_empty(), "sessions ended by back-channel logout");
        self.revocations.report(revocation, unix_now());
        self.metrics
            .session_revocations
            .add(&[("source", "identity_provider")], 1);
        Refusal::new(StatusCode::OK, json!({}), "backchannel_logout")
            .with_field(CACHE_CONTROL, no_store)
    }

    /// The revocation a valid logout token in the request's form asks for.
    async fn logout_token(&self, ex: &mut Exchange) -> Result<Revocation, Denial> {
        let bad = |why: &str| Denial::Invalid(format!("logout_token rejected: {why}"));
        let body = ex
            .buffered_body()
            .await
            .map_err(|_| Denial::Invalid("the request body is too large".into()))?;
        let token = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Denial::Invalid("logout_token is missing".into()))?;
        match jwt::parse_header(&token).ok().and_then(|h| h.typ) {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("logout+jwt") || t.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(bad("typ is not logout+jwt")),
        }
        let doc = self.doc().await?;
        let claims = self.verify_jwt(&token, &doc).await?;
        let audiences = audiences(&claims);
        if !self
            .config
            .client_id
            .iter()
            .any(|c| audiences.contains(&c.as_str()))
        {
            return Err(bad("aud does not name this client"));
        }
        let now = unix_now();
        let leeway = self.config.leeway as i64;
        let iat = match claims["iat"].as_i64() {
            Some(iat) if iat <= now + leeway && iat >= now - MAX_TOKEN_AGE - leeway => iat,
            Some(_) => return Err(bad("iat is not recent")),
            None => return Err(bad("iat is missing")),
        };
        if !claims["events"][LOGOUT_EVENT].is_object() {
            return Err(bad("events does not hold the back-channel logout event"));
        }
        if !claims["nonce"].is_null() {
            return Err(bad("a logout token must not hold a nonce"));
        }
        let text = |name: &str| claims[name].as_str().unwrap_or_default().to_string();
        let (sid, sub) = (text("sid"), text("sub"));
        if sid.is_empty() && sub.is_empty() {
            return Err(bad("neither sid nor sub is given"));
        }
        let jti = text("jti");
        if jti.is_empty() {
            return Err(bad("jti is missing"));
        }
        let issuer = text("iss");
        let expires_at = claims["exp"].as_i64().unwrap_or(now) + leeway;
        if !self.revocations.first_use(&issuer, &jti, expires_at, now) {
            return Err(bad("this logout token was already used"));
        }
        let absolute = self.config.browser.session_absolute_timeout as i64;
        let keep_for = if absolute > 0 {
            absolute
        } else {
            session::LIFETIME_WITHOUT_ABSOLUTE
        };
        Ok(Revocation {
            issuer,
            sid,
            sub,
            // When the provider ended them: a sign-in after that is a new session.
            revoked_at: iat.min(now),
            keep_until: now + keep_for + leeway,
        })
    }

    /// Whether the session was ended by its identity provider.
    pub(super) fn revoked(&self, s: &Session) -> bool {
        let (issuer, sid, sub) = s.identity();
        let issuer = match issuer {
            "" => self.config.issuer.as_str(),
            iss => iss,
        };
        self.revocations.ends(issuer, sid, sub, s.created_at)
    }
}

/// The audiences a token names.
pub(super) fn audiences(claims: &Value) -> Vec<&str> {
    match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}
