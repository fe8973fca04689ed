//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): a request on the logout path or with the
//! logout argument, by one of `logout_methods`, ends the session (its cookies cleared) and goes to the
//! identity provider's `end_session_endpoint` with `id_token_hint` and `post_logout_redirect_uri`, or to
//! `logout_redirect_uri` when the provider has none.

use http::header::{HeaderValue, SET_COOKIE};

use super::*;

impl OpenIdConnect {
    /// Whether the request asks to log out.
    pub(super) fn is_logout(&self, ex: &Exchange) -> bool {
        let b = &self.config.browser;
        let method = ex.parts.method.as_str();
        if !b.logout_methods.iter().any(|m| m.as_str() == method) {
            return false;
        }
        let by_path = b
            .logout_uri_suffix
            .as_deref()
            .is_some_and(|s| ex.parts.uri.path().ends_with(s));
        let by_arg = b.logout_query_arg.as_deref().is_some_and(|arg| {
            url::form_urlencoded::parse(ex.parts.uri.query().unwrap_or_default().as_bytes())
                .any(|(k, _)| k == arg)
        });
        by_path || by_arg
    }

    /// Ends the session of the request and answers where the person goes next.
    pub(super) async fn logout(&self, ex: &Exchange, cookies: &Cookies) -> Refusal {
        let headers = &ex.parts.headers;
        let (_, chunks) =
            crate::plugins::cookies::get_chunked(headers, &self.config.browser.session_cookie_name);
        // A session kept on a server must be deleted there: if the server cannot be reached, the person
        // is told to try again rather than left signed in elsewhere.
        let session = match cookies.session(headers, unix_now()).await {
            Ok(found) => found,
            Err((Invalid::Unavailable, _)) => return self.store_unavailable(ex),
            Err(_) => None,
        };
        if let Some((s, _, _)) = &session {
            if cookies.forget(s).await.is_err() {
                return self.store_unavailable(ex);
            }
        }
        let id_token = session.as_ref().map(|(s, _, _)| s.id_token.clone());
        let after = self.config.browser.logout_redirect_uri.first().cloned();
        // The provider's end-session endpoint, when discovery has it (a provider that cannot be reached
        // does not stop the local logout).
        let doc = self.doc().await.ok();
        let end_session = doc
            .as_ref()
            .and_then(|d| d.endpoint("end_session_endpoint"));
        if let Some((s, _, _)) = &session {
            self.revoke_session_tokens(ex, s, doc.as_deref()).await;
        }
        let target = match end_session.and_then(|e| url::Url::parse(&e).ok()) {
            Some(mut url) => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(t) = &id_token {
                        q.append_pair("id_token_hint", t);
                    }
                    if let Some(a) = &after {
                        q.append_pair("post_logout_redirect_uri", a);
                    }
                }
                Some(url.to_string())
            }
            None => after,
        };
        info!(plugin = NAME, request_id = %ex.request_id, had_session = id_token.is_some(), "logged out");
        let mut answer = match target.and_then(|t| HeaderValue::from_str(&t).ok()) {
            Some(location) => Refusal::redirect(location, "logged_out"),
            None => Refusal::message(StatusCode::OK, "Logged out", "logged_out"),
        };
        for c in cookies.clear(ex.tls, chunks) {
            answer = answer.with_field(SET_COOKIE, c);
        }
        answer
    }

    /// The answer to a logout whose session store cannot be reached.
    fn store_unavailable(&self, ex: &Exchange) -> Refusal {
        self.answer(
            ex,
            Denial::Unavailable(Invalid::Unavailable.as_str().into()),
        )
    }

    /// With `logout_revoke`, the session's refresh and access tokens revoked at the revocation endpoint
    /// (the configured one, else the discovery document's). A failure is logged: the local logout goes on.
    async fn revoke_session_tokens(&self, ex: &Exchange, s: &Session, doc: Option<&IssuerDoc>) {
        let b = &self.config.browser;
        if !b.logout_revoke {
            return;
        }
        let endpoint = b
            .revocation_endpoint
            .clone()
            .or_else(|| doc.and_then(|d| d.endpoint("revocation_endpoint")));
        let Some(endpoint) = endpoint else {
            warn!(plugin = NAME, request_id = %ex.request_id, "logout_revoke: no revocation endpoint is known");
            return;
        };
        let tokens = [
            (
                b.logout_revoke_refresh_token,
                s.refresh_token.as_deref(),
                "refresh_token",
            ),
            (
                b.logout_revoke_access_token,
                Some(s.access_token.as_str()),
                "access_token",
            ),
        ];
        for (wanted, token, hint) in tokens {
            let Some(token) = token.filter(|t| wanted && !t.is_empty()) else {
                continue;
            };
            if let Err(d) = self.revoke(ex, &endpoint, token, hint).await {
                warn!(plugin = NAME, request_id = %ex.request_id, denial = ?d, hint, "a token was not revoked at logout");
            }
        }
    }
}
