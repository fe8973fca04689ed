//! Calls to the identity provider's endpoints: token introspection and the token endpoint's grants,
//! through the instance's [`Idp`] link and its caches.

use super::*;

impl OpenIdConnect {
    /// A refused introspection answer as a denial: inactive tokens are invalid, provider faults count as
    /// identity-provider errors and answer 503.
    pub(super) fn refused(&self, rejected: Rejected) -> Denial {
        match rejected {
            Rejected::Inactive(why) => Denial::Invalid(why),
            Rejected::Fault(why) => {
                unavailable("introspection", self.idp.fault(IdpFailure::Answer(why)))
            }
        }
    }

    pub(super) async fn introspect(
        &self,
        token: &str,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = self
            .config
            .introspection_endpoint
            .clone()
            .or_else(|| doc.endpoint("introspection_endpoint"))
            .ok_or_else(|| {
                Denial::Unavailable("the issuer has no introspection endpoint".into())
            })?;
        let fetch = async {
            let creds = self
                .gateway_client(ex)
                .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
            let mut form: Vec<(String, String)> = vec![
                ("token".into(), token.into()),
                (
                    "token_type_hint".into(),
                    self.config.introspection_hint.clone(),
                ),
            ];
            for (k, v) in self
                .config
                .introspection_post_args_names
                .iter()
                .zip(&self.config.introspection_post_args_values)
            {
                form.push((k.clone(), v.clone()));
            }
            let mut req = self
                .idp
                .client()
                .post(&endpoint)
                .header(http::header::ACCEPT, &self.config.introspection_accept);
            for (k, v) in self
                .config
                .introspection_headers_names
                .iter()
                .zip(&self.config.introspection_headers_values)
            {
                req = req.header(k.as_str(), v.as_str());
            }
            let method = self.auth_method(true);
            let req = self.authenticate_client(req, &mut form, &endpoint, method, &creds)?;
            let answer = self
                .idp
                .send_expecting_ok(req.form(&form))
                .await
                .map_err(|f| unavailable("introspection", f))?;
            let is_jwt = answer
                .content_type
                .as_deref()
                .is_some_and(|c| c.contains("token-introspection+jwt"));
            let parsed = if is_jwt {
                let text = std::str::from_utf8(&answer.body).map_err(|_| {
                    unavailable(
                        "introspection",
                        self.idp
                            .fault(IdpFailure::Answer("JWT answer is not UTF-8".into())),
                    )
                })?;
                self.verify_introspection_jwt(text, doc, &creds.id)
                    .inspect_err(|_| self.event("idp_error"))?
            } else {
                introspection_answer::parse(&answer.body).map_err(|r| self.refused(r))?
            };
            introspection_answer::judge(parsed, self.config.introspection_check_active, unix_now())
                .map_err(|r| self.refused(r))
        };
        self.per_token(
            b"introspection",
            token,
            self.config.cache_introspection,
            fetch,
        )
        .await
    }

    /// The claims `fetch` finds for `token`, kept per token (under `scope`) in the introspection cache
    /// until the claims' expiry or `cache_ttl` when `cache` is on. Failures are never kept.
    pub(super) async fn per_token(
        &self,
        scope: &[u8],
        token: &str,
        cache: bool,
        fetch: impl std::future::Future<Output = Result<Value, Denial>>,
    ) -> Result<Arc<Value>, Denial> {
        if !cache {
            return fetch.await.map(Arc::new);
        }
        let key = self.idp.key(&[scope], &[token.as_bytes()]);
        let entries = &self.idp.caches().oidc_introspection;
        let (out, _) = self
            .idp
            .cached(entries, key, ("hit", "miss"), async {
                let claims = fetch.await?;
                let ttl = self.ttl.lifetime(&claims, unix_now());
                Ok::<_, Denial>(Cached::new(Arc::new(claims), ttl))
            })
            .await;
        out
    }

    /// Calls the token endpoint for a grant; results are cached under a hash of the credentials.
    pub(super) async fn grant(
        &self,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
        grant: AuthMethod,
        user: &str,
        pass: &str,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = doc
            .endpoint("token_endpoint")
            .ok_or_else(|| Denial::Unavailable("the issuer has no token endpoint".into()))?;
        let scope = self.config.scopes.join(" ");
        let fetch = async {
            let mut form: Vec<(String, String)> =
                vec![("grant_type".into(), grant.as_str().into())];
            if !scope.is_empty() {
                form.push(("scope".into(), scope.clone()));
            }
            let method = self.auth_method(false);
            let (creds, method) = if grant == AuthMethod::Password {
                form.push(("username".into(), user.into()));
                form.push(("password".into(), pass.into()));
                let creds = self
                    .gateway_client(ex)
                    .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
                (creds, method)
            } else {
                // The caller's own client credentials; the assertion methods need the gateway's keys, so the
                // caller's secret is sent with basic or post authentication.
                let m = if method == ClientAuth::ClientSecretPost {
                    ClientAuth::ClientSecretPost
                } else {
                    ClientAuth::ClientSecretBasic
                };
                let caller = ClientCreds {
                    id: user.to_string(),
                    secret: Some(pass.to_string()),
                    jwk: None,
                };
                (caller, m)
            };
            self.send_grant(
                &endpoint,
                form,
                &creds,
                method,
                &format!("the {grant} grant"),
            )
            .await
        };
        if !self.config.cache_tokens {
            return fetch.await.map(Arc::new);
        }
        let client = self.gateway_client(ex).map(|c| c.id).unwrap_or_default();
        let secret = [grant.as_str(), user, pass, &client, &scope].map(str::as_bytes);
        let key = self.idp.key(&[b"token"], &secret);
        let cache = &self.idp.caches().oidc_tokens;
        // The cached answer is shared, never copied per request.
        let (out, _) = self
            .idp
            .cached(cache, key, ("token_hit", "token_miss"), async {
                let body = fetch.await?;
                let ttl = Duration::from_secs(
                    body.get("expires_in")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        .min(self.config.cache_ttl),
                );
                Ok::<_, Denial>(Cached::new(Arc::new(body), ttl))
            })
            .await;
        out
    }
}

impl OpenIdConnect {
    /// A grant at the token endpoint as the gateway's client (its configured authentication).
    pub(super) async fn token_request(
        &self,
        ex: &Exchange,
        doc: &IssuerDoc,
        form: Vec<(String, String)>,
        what: &str,
    ) -> Result<Value, Denial> {
        let endpoint = doc.endpoint("token_endpoint").ok_or_else(|| {
            Denial::Unavailable("the discovery document has no token_endpoint".into())
        })?;
        let creds = self
            .gateway_client(ex)
            .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
        self.send_grant(&endpoint, form, &creds, self.auth_method(false), what)
            .await
    }

    /// Sends `form` to the token endpoint as `creds` (authenticated with `method`): the answer's JSON, an
    /// identity-provider failure (503), or `what` refused with the provider's `error`.
    async fn send_grant(
        &self,
        endpoint: &str,
        mut form: Vec<(String, String)>,
        creds: &ClientCreds,
        method: ClientAuth,
        what: &str,
    ) -> Result<Value, Denial> {
        let req = self
            .idp
            .client()
            .post(endpoint)
            .header(http::header::ACCEPT, "application/json");
        let req = self.authenticate_client(req, &mut form, endpoint, method, creds)?;
        let answer = self
            .idp
            .send(req.form(&form))
            .await
            .map_err(|f| unavailable("token endpoint", f))?;
        if answer.status >= 500 {
            let f = self.idp.fault(IdpFailure::Status(answer.status));
            return Err(unavailable("token endpoint", f));
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !(200..300).contains(&answer.status) || body["access_token"].as_str().is_none() {
            let err = body["error"].as_str().unwrap_or("no access token");
            return Err(Denial::Invalid(format!("{what} was not accepted: {err}")));
        }
        Ok(body)
    }
}

impl OpenIdConnect {
    /// Revokes `token` (RFC 7009) at `endpoint` as the gateway's client, with `hint` as its type.
    pub(super) async fn revoke(
        &self,
        ex: &Exchange,
        endpoint: &str,
        token: &str,
        hint: &str,
    ) -> Result<(), Denial> {
        let creds = self
            .gateway_client(ex)
            .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
        let mut form = vec![
            ("token".to_string(), token.to_string()),
            ("token_type_hint".to_string(), hint.to_string()),
        ];
        let req = self.idp.client().post(endpoint);
        let req =
            self.authenticate_client(req, &mut form, endpoint, self.auth_method(false), &creds)?;
        let answer = self
            .idp
            .send(req.form(&form))
            .await
            .map_err(|f| unavailable("revocation endpoint", f))?;
        match answer.status {
            200..=299 => Ok(()),
            status => Err(Denial::Invalid(format!(
                "the revocation endpoint answered {status}"
            ))),
        }
    }
}

/// An identity-provider failure of `call` as a 503 denial.
pub(super) fn unavailable(call: &str, failure: IdpFailure) -> Denial {
    Denial::Unavailable(format!("{call} {failure}"))
}
