//! OpenID Connect Back-Channel Logout 1.0, the provider's side: a client may register a back-channel
//! logout URI; ending a person's sessions at the provider POSTs a signed logout token (`typ`
//! `logout+jwt`, with `sid` and `sub`) to that URI for each of their sign-ins.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{DemoIdp, TOKEN_LIFETIME};
use platform::unix_now;

/// The member of `events` that makes a JWT a logout token.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

impl DemoIdp {
    /// Registers where `client_id` hears of back-channel logouts.
    pub fn set_backchannel_logout_uri(&self, client_id: &str, uri: &str) {
        let mut uris = self.inner.backchannel.lock().unwrap();
        uris.insert(client_id.to_string(), uri.to_string());
    }

    /// The claims of a logout token for `client_id` naming `sid` and/or `sub`.
    pub fn logout_claims(&self, client_id: &str, sid: Option<&str>, sub: Option<&str>) -> Value {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.issuer, "aud": client_id, "iat": now, "exp": now + TOKEN_LIFETIME,
            "jti": hex::encode(rand::random::<[u8; 12]>()), "events": {LOGOUT_EVENT: {}},
        });
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        claims
    }

    /// `claims` signed as a logout token.
    pub fn sign_logout_token(&self, claims: &Value) -> String {
        self.inner.sign(claims, Some("logout+jwt"), false)
    }

    /// The `sid`s of `sub`'s sign-ins through the login form, oldest first.
    pub fn sids_of(&self, sub: &str) -> Vec<String> {
        let signed_in = self.inner.signed_in.lock().unwrap();
        signed_in
            .iter()
            .filter(|(_, s, _)| s == sub)
            .map(|(sid, _, _)| sid.clone())
            .collect()
    }

    /// Ends every sign-in of `sub`: a logout token per sign-in goes to its client's back-channel logout
    /// URI. Returns each answer's status (0 when the client could not be reached).
    pub async fn end_sessions_of(&self, sub: &str) -> Vec<u16> {
        let targets: Vec<(String, String)> = {
            let signed_in = self.inner.signed_in.lock().unwrap();
            let uris = self.inner.backchannel.lock().unwrap();
            signed_in
                .iter()
                .filter(|(_, s, _)| s == sub)
                .filter_map(|(sid, _, client)| {
                    uris.get(client)
                        .map(|u| (sid.clone(), client.clone(), u.clone()))
                })
                .map(|(sid, client, uri)| {
                    let claims = self.logout_claims(&client, Some(&sid), Some(sub));
                    (uri, self.sign_logout_token(&claims))
                })
                .collect()
        };
        self.inner
            .signed_in
            .lock()
            .unwrap()
            .retain(|(_, s, _)| s != sub);
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for (uri, token) in targets {
            let sent = http
                .post(&uri)
                .form(&[("logout_token", token)])
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await;
            self.inner
                .stats
                .backchannel_logouts
                .fetch_add(1, Ordering::SeqCst);
            statuses.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        statuses
    }
}
