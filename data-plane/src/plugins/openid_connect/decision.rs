//! What happens once a token is known: scopes, audiences and roles required, the Consumer it maps to, the
//! denial answered (Kong's statuses and `WWW-Authenticate`), and the headers set upstream.

use super::*;

/// Kong's rule: entries are alternatives; space-separated words inside one entry are all required.
pub(super) fn satisfies(have: &[String], required: &[String]) -> bool {
    required.is_empty()
        || required
            .iter()
            .any(|alt| alt.split_whitespace().all(|w| have.iter().any(|h| h == w)))
}

impl OpenIdConnect {
    pub(super) fn authorize(&self, claims: &Value) -> Result<(), Denial> {
        if !self.config.issuers_allowed.is_empty() {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.config.issuers_allowed.iter().any(|i| i == iss) {
                return Err(Denial::Forbidden(format!("issuer '{iss}' is not allowed")));
            }
        }
        if !satisfies(
            &claim_values(claims, &self.config.scopes_claim),
            &self.config.scopes_required,
        ) {
            return Err(Denial::Forbidden("required scopes are missing".into()));
        }
        if !satisfies(
            &claim_values(claims, &self.config.audience_claim),
            &self.config.audience_required,
        ) {
            return Err(Denial::Forbidden("required audience is missing".into()));
        }
        if !satisfies(
            &claim_values(claims, &self.config.groups_claim),
            &self.config.groups_required,
        ) {
            return Err(Denial::Forbidden("required groups are missing".into()));
        }
        if !satisfies(
            &claim_values(claims, &self.config.roles_claim),
            &self.config.roles_required,
        ) {
            return Err(Denial::Forbidden("required roles are missing".into()));
        }
        if let Some(c) = self
            .config
            .claims_forbidden
            .iter()
            .find(|c| claims.get(c.as_str()).is_some_and(|v| !v.is_null()))
        {
            return Err(Denial::Forbidden(format!(
                "the token holds the forbidden claim '{c}'"
            )));
        }
        Ok(())
    }

    /// Who the credential is, for limits per credential: whom the token names (`credential_claim`,
    /// Kong's rule), else the token itself.
    pub(super) fn credential_id(&self, auth: &Authenticated) -> credentials::CredentialId {
        match claim_values(&auth.claims, &self.config.credential_claim).first() {
            Some(who) => credentials::CredentialId::of(who.as_bytes()),
            None => credentials::CredentialId::of(auth.access_token.as_bytes()),
        }
    }

    pub(super) fn map_consumer(&self, claims: &Value) -> Result<Option<Arc<Consumer>>, Denial> {
        if self.config.consumer_claim.is_empty() {
            return Ok(None);
        }
        let value = claim_values(claims, &self.config.consumer_claim)
            .into_iter()
            .next();
        let found = value.as_deref().and_then(|v| {
            self.config
                .consumer_by
                .iter()
                .find_map(|by| self.consumers.find((*by).into(), v).cloned())
        });
        match found {
            Some(c) => Ok(Some(c)),
            None if self.config.consumer_optional => Ok(None),
            None => Err(Denial::Forbidden("no consumer matches the token".into())),
        }
    }

    /// Refuses the request for `denial`, or lets it through as the anonymous Consumer when one is
    /// configured and the denial is about the credential.
    pub(super) fn deny(&self, ex: &mut Exchange, denial: Denial) -> Result<(), Refusal> {
        if matches!(denial, Denial::NoCredential | Denial::Invalid(_)) {
            if let Some(anon) = &self.anonymous {
                ex.set_consumer(anon, true);
                return Ok(());
            }
        }
        Err(self.answer(ex, denial))
    }

    /// The answer to `denial`: 401, 403 or 503 with Kong's message (and the reason with
    /// `display_errors`), or a redirect to `unauthorized_redirect_uri`/`forbidden_redirect_uri`.
    pub(super) fn answer(&self, ex: &Exchange, denial: Denial) -> Refusal {
        let detail = |base: &str, reason: &str| {
            if self.config.display_errors {
                format!("{base} ({reason})")
            } else {
                base.to_string()
            }
        };
        let redirect = |uris: &[String], reason: &'static str| {
            uris.first()
                .and_then(|u| http::HeaderValue::from_str(u).ok())
                .map(|location| Refusal::redirect(location, reason))
        };
        match denial {
            Denial::Unavailable(reason) => {
                warn!(plugin = NAME, request_id = %ex.request_id, issuer = %self.config.issuer, failure = %reason, "identity provider unavailable");
                Refusal::idp_unavailable(&reason)
            }
            Denial::Forbidden(reason) => {
                info!(plugin = NAME, request_id = %ex.request_id, %reason, "request forbidden");
                if let Some(r) = redirect(&self.config.browser.forbidden_redirect_uri, "forbidden")
                {
                    return r;
                }
                Refusal::message(
                    StatusCode::FORBIDDEN,
                    detail(&self.config.forbidden_error_message, &reason),
                    "forbidden",
                )
                .challenge(&format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\"",
                    self.realm
                ))
            }
            Denial::NoCredential | Denial::Invalid(_) => {
                let (reason, www) = match &denial {
                    Denial::Invalid(r) => (
                        r.clone(),
                        format!("Bearer realm=\"{}\", error=\"invalid_token\"", self.realm),
                    ),
                    _ => (
                        "no credentials".to_string(),
                        format!("Bearer realm=\"{}\"", self.realm),
                    ),
                };
                info!(plugin = NAME, request_id = %ex.request_id, %reason, "request refused");
                if let Some(r) = redirect(
                    &self.config.browser.unauthorized_redirect_uri,
                    "unauthorized",
                ) {
                    return r;
                }
                Refusal::message(
                    StatusCode::UNAUTHORIZED,
                    detail(&self.config.unauthorized_error_message, &reason),
                    "unauthorized",
                )
                .challenge(&www)
            }
        }
    }

    pub(super) async fn set_upstream(
        &self,
        ex: &mut Exchange,
        auth: &Authenticated,
        cred: &Credential,
    ) {
        if self.config.hide_credentials {
            match cred {
                Credential::Bearer(_, src) => {
                    credentials::remove(ex, *src, &["access_token"]).await
                }
                Credential::Password(_, _, src) => {
                    credentials::remove(ex, *src, &["username", "password"]).await
                }
                Credential::Client(_, _, src) => {
                    credentials::remove(ex, *src, &["client_id", "client_secret"]).await
                }
                // The session cookie is sealed: it reveals nothing upstream.
                Credential::Session(_) => {}
            }
        }
        if let (Credential::Session(session), Some(h)) =
            (cred, &self.config.browser.upstream_id_token_header)
        {
            ex.set_upstream_header(h, &session.id_token);
        }
        if let Some(spec) = &self.config.upstream_access_token_header {
            let (name, scheme) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            let value = if scheme.eq_ignore_ascii_case("bearer") {
                format!("Bearer {}", auth.access_token)
            } else {
                auth.access_token.clone()
            };
            ex.set_upstream_header(name, &value);
        }
        if let (Some(h), Some(result)) = (
            &self.config.upstream_introspection_header,
            &auth.introspection,
        ) {
            ex.set_upstream_header(
                h,
                &base64::engine::general_purpose::STANDARD.encode(result.to_string()),
            );
        }
        for (claim, header) in self
            .config
            .upstream_headers_claims
            .iter()
            .zip(&self.config.upstream_headers_names)
        {
            if let Some(v) = auth.claims.get(claim).and_then(claim_header_value) {
                ex.set_upstream_header(header, &v);
            }
        }
        if let Some(v) = claim_values(&auth.claims, &self.config.credential_claim)
            .into_iter()
            .next()
        {
            ex.set_upstream_header("x-credential-identifier", &v);
        }
    }
}
