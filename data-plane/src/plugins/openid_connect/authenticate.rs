//! From a request to an authenticated token: finding the credential (bearer, password, client
//! credentials, in the configured places) and turning it into a validated access token and its claims.

use super::*;

impl OpenIdConnect {
    /// Whether `auth_methods` lets a request authenticate with `method`.
    pub(super) fn allows(&self, method: AuthMethod) -> bool {
        self.config.auth_methods.contains(&method)
    }

    /// Validates an access token: a JWT is verified (and introspected with `introspect_jwt_tokens`); an
    /// opaque token, or a JWT that fails verification, is introspected when introspection is enabled,
    /// else sent to the UserInfo endpoint when `userinfo` is.
    pub(super) async fn validate_token(
        &self,
        token: &str,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
        bearer_allowed: bool,
    ) -> Result<(Arc<Value>, Option<Arc<Value>>), Denial> {
        let introspection = self.allows(AuthMethod::Introspection);
        if bearer_allowed && looks_like_jwt(token) {
            match self.verify_jwt_cached(token, doc).await {
                Ok(claims) => {
                    if self.config.introspect_jwt_tokens && introspection {
                        let result = self.introspect(token, ex, doc).await?;
                        return Ok((claims, Some(result)));
                    }
                    return Ok((claims, None));
                }
                Err(e) if !introspection => return Err(e),
                Err(_) => {}
            }
        }
        if introspection {
            let result = self.introspect(token, ex, doc).await?;
            return Ok((result.clone(), Some(result)));
        }
        if self.allows(AuthMethod::Userinfo) {
            return Ok((self.userinfo(token, doc).await?, None));
        }
        Err(Denial::Invalid(
            "token is not a valid JWT and neither introspection nor userinfo is enabled".into(),
        ))
    }

    pub(super) async fn find_credential(
        &self,
        ex: &mut Exchange,
    ) -> Result<Option<Credential>, Refusal> {
        let types = |list: &[ParamType], t: ParamType| list.contains(&t);
        let token_methods = [
            AuthMethod::Bearer,
            AuthMethod::Introspection,
            AuthMethod::Userinfo,
        ];
        if token_methods.iter().any(|m| self.allows(*m)) {
            let t = &self.config.bearer_token_param_type;
            if types(t, ParamType::Header) {
                if let Some(tok) = credentials::bearer_header(ex) {
                    return Ok(Some(Credential::Bearer(tok.into_string(), Source::Header)));
                }
            }
            if types(t, ParamType::Query) {
                if let Some(tok) = credentials::query_param(ex, "access_token") {
                    return Ok(Some(Credential::Bearer(tok, Source::Query)));
                }
            }
            if types(t, ParamType::Body) {
                if let Some((tok, src)) = credentials::body_param(ex, "access_token").await? {
                    return Ok(Some(Credential::Bearer(tok, src)));
                }
            }
        }
        for (method, list, user_field, pass_field) in [
            (
                AuthMethod::Password,
                &self.config.password_param_type,
                "username",
                "password",
            ),
            (
                AuthMethod::ClientCredentials,
                &self.config.client_credentials_param_type,
                "client_id",
                "client_secret",
            ),
        ] {
            if !self.allows(method) {
                continue;
            }
            let make = |u: String, p: String, s: Source| {
                if method == AuthMethod::Password {
                    Credential::Password(u, p, s)
                } else {
                    Credential::Client(u, p, s)
                }
            };
            if types(list, ParamType::Header) {
                if let Some((u, p)) = credentials::basic_header(ex) {
                    return Ok(Some(make(u, p, Source::Header)));
                }
            }
            if types(list, ParamType::Query) {
                if let (Some(u), Some(p)) = (
                    credentials::query_param(ex, user_field),
                    credentials::query_param(ex, pass_field),
                ) {
                    return Ok(Some(make(u, p, Source::Query)));
                }
            }
            if types(list, ParamType::Body) {
                if let (Some((u, src)), Some((p, _))) = (
                    credentials::body_param(ex, user_field).await?,
                    credentials::body_param(ex, pass_field).await?,
                ) {
                    return Ok(Some(make(u, p, src)));
                }
            }
        }
        Ok(None)
    }

    pub(super) async fn authenticate(
        &self,
        ex: &mut Exchange,
        cred: &Credential,
    ) -> Result<Authenticated, Denial> {
        let doc = self.doc().await?;
        let bearer = self.allows(AuthMethod::Bearer);
        match cred {
            Credential::Bearer(token, _) => {
                let (claims, introspection) = self.validate_token(token, ex, &doc, bearer).await?;
                Ok(Authenticated {
                    access_token: token.clone(),
                    claims,
                    introspection,
                })
            }
            Credential::Session(session) => {
                // An expired access token was renewed, or the session ended, before this point.
                let token = &session.access_token;
                // A JWT access token is verified like a bearer token (cached per node); an opaque one is
                // introspected when introspection is on, else the ID token's claims stand for it.
                let (claims, introspection) =
                    if looks_like_jwt(token) || self.allows(AuthMethod::Introspection) {
                        self.validate_token(token, ex, &doc, true).await?
                    } else {
                        (Arc::new(session.claims.clone()), None)
                    };
                Ok(Authenticated {
                    access_token: token.clone(),
                    claims,
                    introspection,
                })
            }
            Credential::Password(user, pass, _) | Credential::Client(user, pass, _) => {
                let grant = if matches!(cred, Credential::Password(..)) {
                    AuthMethod::Password
                } else {
                    AuthMethod::ClientCredentials
                };
                let mut result = self.grant(ex, &doc, grant, user, pass).await;
                // A Basic header may carry client credentials when both grants are enabled.
                if grant == AuthMethod::Password
                    && matches!(result, Err(Denial::Invalid(_)))
                    && self.allows(AuthMethod::ClientCredentials)
                {
                    let other = AuthMethod::ClientCredentials;
                    if let Ok(r) = self.grant(ex, &doc, other, user, pass).await {
                        result = Ok(r);
                    }
                }
                let body = result?;
                let token = body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let (claims, introspection) = if looks_like_jwt(&token) {
                    self.validate_token(&token, ex, &doc, true).await?
                } else if self.allows(AuthMethod::Introspection) {
                    self.validate_token(&token, ex, &doc, false).await?
                } else {
                    (body.clone(), None)
                };
                Ok(Authenticated {
                    access_token: token,
                    claims,
                    introspection,
                })
            }
        }
    }
}
