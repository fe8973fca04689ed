//! Signing a person in through a browser (OpenID Connect Core 3.1, RFC 7636): the redirect to the
//! identity provider's authorization endpoint with `state`, `nonce` and a PKCE S256 challenge, the pending
//! sign-in sealed in the authorization cookie; then the callback: the state checked, the code exchanged,
//! the ID token verified (signature, `iss`, `aud`, `exp`, `nonce`, `azp`, `at_hash`/`c_hash`), and the
//! session sealed into the session cookie before `login_action`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{HeaderValue, SET_COOKIE};
use sha2::{Digest, Sha256, Sha384, Sha512};
use shared::plugins::openid_connect::{LoginAction, LoginToken, ResponseMode};

use super::session::{Pending, Session};
use super::*;

/// What the identity provider sent back to the callback.
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Random URL-safe text of `bytes` random bytes.
fn random_text(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// The left half of the hash of `value` for the ID token's algorithm, as `at_hash` and `c_hash` carry it.
fn half_hash(alg: &str, value: &str) -> Option<String> {
    let digest: Vec<u8> = match &alg[alg.len().saturating_sub(3)..] {
        "256" => Sha256::digest(value.as_bytes()).to_vec(),
        "384" => Sha384::digest(value.as_bytes()).to_vec(),
        "512" => Sha512::digest(value.as_bytes()).to_vec(),
        _ if alg == "EdDSA" => Sha512::digest(value.as_bytes()).to_vec(),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

/// Whether the request can follow a redirect to a login page: a top-level GET or HEAD from a browser
/// that asks for HTML. A script's request (`fetch`/XHR: `Sec-Fetch-Mode` other than `navigate`,
/// `X-Requested-With`, or an `Accept` without `text/html`) gets 401 instead.
pub(super) fn follows_redirects(ex: &Exchange) -> bool {
    let h = &ex.parts.headers;
    let field = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    matches!(ex.parts.method, Method::GET | Method::HEAD)
        && field("accept").is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
        && field("x-requested-with").is_none()
        && field("sec-fetch-mode").is_none_or(|m| m.eq_ignore_ascii_case("navigate"))
}

impl OpenIdConnect {
    /// The request's own URL, without its query: the default callback.
    fn own_url(&self, ex: &Exchange) -> Option<String> {
        let host = ex.parts.headers.get(http::header::HOST)?.to_str().ok()?;
        let scheme = if ex.tls { "https" } else { "http" };
        Some(format!("{scheme}://{host}{}", ex.parts.uri.path()))
    }

    /// Whether the request is the identity provider's answer to a pending sign-in: it carries the
    /// authorization cookie and `state` (with `code` or `error`), in the query or, for `form_post`, in a
    /// posted form.
    pub(super) fn is_callback(&self, ex: &Exchange, cookies: &Cookies) -> bool {
        if !cookies.has_pending(&ex.parts.headers) {
            return false;
        }
        let posted = ex.parts.method == Method::POST
            && self.config.browser.response_mode == ResponseMode::FormPost;
        let query = ex.parts.uri.query().unwrap_or_default();
        posted
            || (query.contains("state=") && (query.contains("code=") || query.contains("error=")))
    }

    /// Starts a sign-in: a redirect to the authorization endpoint and the pending sign-in's cookie.
    pub(super) fn start_sign_in(
        &self,
        ex: &Exchange,
        doc: &IssuerDoc,
        cookies: &Cookies,
    ) -> Result<Refusal, Denial> {
        let b = &self.config.browser;
        let endpoint = doc.endpoint("authorization_endpoint").ok_or_else(|| {
            Denial::Unavailable("the discovery document has no authorization_endpoint".into())
        })?;
        let client = self
            .gateway_client(ex)
            .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
        let redirect_uri = b
            .redirect_uri
            .first()
            .cloned()
            .or_else(|| self.own_url(ex))
            .ok_or_else(|| Denial::Invalid("the request has no Host to return to".into()))?;
        let pkce = b.require_proof_key_for_code_exchange.unwrap_or_else(|| {
            doc.metadata["code_challenge_methods_supported"]
                .as_array()
                .is_some_and(|m| m.iter().any(|v| v == "S256"))
        });
        let verifier = pkce.then(|| random_text(32));
        let pending = Pending {
            state: random_text(18),
            nonce: random_text(18),
            verifier: verifier.clone(),
            redirect_uri: redirect_uri.clone(),
            original: match (b.preserve_query_args, ex.parts.uri.query()) {
                (true, Some(q)) => format!("{}?{q}", ex.parts.uri.path()),
                _ => ex.parts.uri.path().to_string(),
            },
            created_at: unix_now(),
        };
        let mut url = url::Url::parse(&endpoint)
            .map_err(|_| Denial::Unavailable("the authorization_endpoint is not a URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", &self.config.scopes.join(" "))
                .append_pair("state", &pending.state)
                .append_pair("nonce", &pending.nonce);
            if let Some(v) = &verifier {
                let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
                q.append_pair("code_challenge", &challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            if b.response_mode == ResponseMode::FormPost {
                q.append_pair("response_mode", "form_post");
            }
        }
        let location = HeaderValue::from_str(url.as_str()).map_err(|_| {
            Denial::Unavailable("the authorization URL is not a field value".into())
        })?;
        let cross_site = b.response_mode == ResponseMode::FormPost;
        let cookie = cookies
            .store_pending(&pending, ex.tls, cross_site)
            .ok_or_else(|| Denial::Unavailable("no session_secret to seal the sign-in".into()))?;
        debug!(plugin = NAME, request_id = %ex.request_id, pkce, "sign-in started");
        Ok(Refusal::redirect(location, "sign_in").with_field(SET_COOKIE, cookie))
    }

    /// The parameters of the identity provider's answer.
    async fn callback_params(&self, ex: &mut Exchange) -> Result<Callback, Denial> {
        let from_query = ex.parts.method != Method::POST;
        let pairs: Vec<(String, String)> = if from_query {
            let q = ex.parts.uri.query().unwrap_or_default();
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        } else {
            let body = ex
                .buffered_body()
                .await
                .map_err(|_| Denial::Invalid("the posted answer is too large".into()))?;
            url::form_urlencoded::parse(&body).into_owned().collect()
        };
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Ok(Callback {
            code: get("code"),
            state: get("state"),
            error: get("error"),
            error_description: get("error_description"),
        })
    }

    /// Completes a sign-in at the callback: the answer `login_action` asks for, with the session cookie.
    pub(super) async fn callback(
        &self,
        ex: &mut Exchange,
        doc: &Arc<IssuerDoc>,
        cookies: &Cookies,
    ) -> Result<Refusal, Denial> {
        let now = unix_now();
        let pending = cookies.pending(&ex.parts.headers, now).ok_or_else(|| {
            Denial::Invalid(
                "no pending sign-in: the authorization cookie is missing, altered or expired"
                    .into(),
            )
        })?;
        let answer = self.callback_params(ex).await?;
        let state_ok = answer.state.as_deref().is_some_and(|s| {
            s.len() == pending.state.len()
                && s.bytes()
                    .zip(pending.state.bytes())
                    .fold(0, |d, (a, b)| d | (a ^ b))
                    == 0
        });
        if !state_ok {
            return Err(Denial::Invalid(
                "the answer's state does not match the sign-in".into(),
            ));
        }
        if let Some(error) = answer.error {
            let why = answer.error_description.unwrap_or_default();
            return Err(Denial::Invalid(format!(
                "the identity provider answered {error}: {why}"
            )));
        }
        let code = answer
            .code
            .ok_or_else(|| Denial::Invalid("the answer has no code".into()))?;
        let tokens = self.exchange_code(ex, doc, &code, &pending).await?;
        let id_token = tokens["id_token"]
            .as_str()
            .ok_or_else(|| Denial::Invalid("the token endpoint sent no id_token".into()))?;
        let access_token = tokens["access_token"].as_str().unwrap_or_default();
        let claims = self
            .verify_id_token(id_token, doc, &pending, access_token, &code, ex)
            .await?;
        let mut session = Session {
            access_token: access_token.to_string(),
            id_token: id_token.to_string(),
            refresh_token: tokens["refresh_token"].as_str().map(str::to_string),
            expires_at: tokens["expires_in"].as_i64().map(|s| now + s),
            claims,
            created_at: now,
            sealed_at: now,
            id: None,
        };
        let (_, previous) = crate::plugins::cookies::get_chunked(
            &ex.parts.headers,
            &self.config.browser.session_cookie_name,
        );
        let set = cookies
            .store(&mut session, now, ex.tls, previous)
            .await
            .map_err(Denial::Unavailable)?;
        info!(plugin = NAME, request_id = %ex.request_id, sub = %session.claims["sub"], "signed in");
        let b = &self.config.browser;
        let mut answer = match b.login_action {
            LoginAction::Upstream => Refusal::redirect(
                HeaderValue::from_str(&pending.original).unwrap_or(HeaderValue::from_static("/")),
                "signed_in",
            ),
            LoginAction::Redirect => Refusal::redirect(
                b.login_redirect_uri
                    .first()
                    .and_then(|u| HeaderValue::from_str(u).ok())
                    .unwrap_or(HeaderValue::from_static("/")),
                "signed_in",
            ),
            LoginAction::Response => {
                let mut body = serde_json::Map::new();
                for t in &b.login_tokens {
                    match t {
                        LoginToken::Tokens => {
                            body.insert("tokens".into(), tokens.clone());
                        }
                        t => {
                            if let Some(v) = tokens.get(t.as_str()) {
                                body.insert(t.as_str().into(), v.clone());
                            }
                        }
                    }
                }
                Refusal::new(StatusCode::OK, Value::Object(body), "signed_in").with_field(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )
            }
        };
        answer = answer.with_field(SET_COOKIE, cookies.clear_pending(ex.tls));
        for c in set {
            answer = answer.with_field(SET_COOKIE, c);
        }
        Ok(answer)
    }

    /// The token endpoint's answer to the `authorization_code` grant.
    async fn exchange_code(
        &self,
        ex: &Exchange,
        doc: &IssuerDoc,
        code: &str,
        pending: &Pending,
    ) -> Result<Value, Denial> {
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), pending.redirect_uri.clone()),
        ];
        if let Some(v) = &pending.verifier {
            form.push(("code_verifier".into(), v.clone()));
        }
        self.token_request(ex, doc, form, "the code").await
    }

    /// Verifies the ID token of a sign-in; returns its claims.
    async fn verify_id_token(
        &self,
        id_token: &str,
        doc: &Arc<IssuerDoc>,
        pending: &Pending,
        access_token: &str,
        code: &str,
        ex: &Exchange,
    ) -> Result<Value, Denial> {
        let bad = |why: &str| Denial::Invalid(format!("ID token rejected: {why}"));
        let claims = self.verify_jwt(id_token, doc).await?;
        let client = self.gateway_client(ex).map(|c| c.id).unwrap_or_default();
        let audiences = super::backchannel::audiences(&claims);
        if !audiences.contains(&client.as_str()) {
            return Err(bad("aud does not name this client"));
        }
        match claims["azp"].as_str() {
            Some(azp) if azp != client => return Err(bad("azp names another client")),
            None if audiences.len() > 1 => {
                return Err(bad("azp is required with several audiences"))
            }
            _ => {}
        }
        if claims["nonce"].as_str() != Some(pending.nonce.as_str()) {
            return Err(bad("nonce does not match the sign-in"));
        }
        let alg = jwt::parse_header(id_token)
            .map(|h| h.alg)
            .unwrap_or_default();
        for (claim, value) in [("at_hash", access_token), ("c_hash", code)] {
            if let Some(expected) = claims[claim].as_str() {
                if half_hash(&alg, value).as_deref() != Some(expected) {
                    return Err(bad(&format!("{claim} does not match")));
                }
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_hashes_follow_the_algorithm() {
        // The left 128 bits of SHA-256, URL-safe base64 (value computed apart with Python's hashlib).
        assert_eq!(
            half_hash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNnBEKUqpe_cpmGUqJ3M").as_deref(),
            Some("Ba5Vsh0UtT-w6VkDAogN_Q")
        );
        assert_eq!(half_hash("ES384", "x").unwrap().len(), 32);
        assert_eq!(half_hash("HS1", "x"), None);
    }
}
