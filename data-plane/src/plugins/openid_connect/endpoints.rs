//! Calls to the identity provider's endpoints: token introspection and the token endpoint's grants, with
//! their cache keys, TTLs and failure classes.

use super::*;

impl OpenIdConnect {
    /// A refused introspection answer as a denial: inactive tokens are invalid, provider faults count as
    /// identity-provider errors and answer 503.
    pub(super) fn refused(&self, refusal: Refusal) -> Denial {
        match refusal {
            Refusal::Inactive(why) => Denial::Invalid(why),
            Refusal::Fault(why) => {
                self.event("idp_error");
                Denial::Unavailable(format!("introspection {why}"))
            }
        }
    }

    pub(super) fn ttl_for(&self, claims: &Value) -> Duration {
        let now = unix_now();
        let mut ttl = self.config.cache_ttl as i64;
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            ttl = ttl.min(exp - now);
        }
        if let Some(min) = self.config.cache_ttl_min {
            ttl = ttl.max(min as i64);
        }
        if let Some(max) = self.config.cache_ttl_max {
            ttl = ttl.min(max as i64);
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            ttl = ttl.min(exp - now);
        }
        Duration::from_secs(ttl.max(0) as u64)
    }

    pub(super) fn key(&self, kind: &str, secret_material: &[&str]) -> TokenKey {
        let namespace: [u8; 32] = Sha256::new()
            .chain_update(self.id.as_bytes())
            .chain_update(self.config.issuer.as_bytes())
            .chain_update(kind.as_bytes())
            .finalize()
            .into();
        let mut h = Sha256::new();
        for (i, part) in secret_material.iter().enumerate() {
            if i > 0 {
                h.update([0u8]);
            }
            h.update(part.as_bytes());
        }
        TokenKey {
            namespace,
            token: h.finalize().into(),
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
                .client
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
            let req = self.authenticate_client(req, &mut form, &endpoint, &method, &creds)?;
            self.event("idp_call");
            let started = std::time::Instant::now();
            let resp = req.form(&form).send().await;
            self.metrics.idp_latency.observe(
                &[("plugin", NAME), ("instance", &self.id)],
                started.elapsed(),
            );
            let resp = resp.map_err(|e| {
                self.event("idp_error");
                Denial::Unavailable(format!(
                    "introspection {}",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "unreachable"
                    }
                ))
            })?;
            if resp.status() != reqwest::StatusCode::OK {
                self.event("idp_error");
                return Err(Denial::Unavailable(format!(
                    "introspection answered HTTP {}",
                    resp.status().as_u16()
                )));
            }
            let is_jwt = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("token-introspection+jwt"));
            let text = resp
                .text()
                .await
                .map_err(|_| Denial::Unavailable("introspection body unreadable".into()))?;
            let answer = if is_jwt {
                self.verify_introspection_jwt(&text, doc, &creds.id)
                    .inspect_err(|_| self.event("idp_error"))?
            } else {
                introspection_answer::parse(text.as_bytes()).map_err(|r| self.refused(r))?
            };
            introspection_answer::judge(answer, self.config.introspection_check_active, unix_now())
                .map_err(|r| self.refused(r))
        };
        if !self.config.cache_introspection {
            return fetch.await.map(Arc::new);
        }
        let key = self.key("introspection", &[token]);
        let (out, missed) =
            crate::cache::get_or_fetch(&self.caches.oidc_introspection, key, async {
                let claims = fetch.await?;
                let ttl = self.ttl_for(&claims);
                Ok::<_, Denial>(Cached {
                    claims: Arc::new(claims),
                    ttl,
                })
            })
            .await;
        self.event(if missed { "miss" } else { "hit" });
        out.map(|c| c.claims).map_err(|e| (*e).clone())
    }

    /// Calls the token endpoint for a grant; results are cached under a hash of the credentials.
    pub(super) async fn grant(
        &self,
        ex: &Exchange,
        doc: &Arc<IssuerDoc>,
        grant: &str,
        user: &str,
        pass: &str,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = doc
            .endpoint("token_endpoint")
            .ok_or_else(|| Denial::Unavailable("the issuer has no token endpoint".into()))?;
        let scope = self.config.scopes.join(" ");
        let fetch = async {
            let mut form: Vec<(String, String)> = vec![("grant_type".into(), grant.into())];
            if !scope.is_empty() {
                form.push(("scope".into(), scope.clone()));
            }
            let method = self.auth_method(false);
            let req = self
                .client
                .post(&endpoint)
                .header(http::header::ACCEPT, "application/json");
            let req = if grant == "password" {
                form.push(("username".into(), user.into()));
                form.push(("password".into(), pass.into()));
                let creds = self
                    .gateway_client(ex)
                    .ok_or_else(|| Denial::Unavailable("no client_id configured".into()))?;
                self.authenticate_client(req, &mut form, &endpoint, &method, &creds)?
            } else {
                // The caller's own client credentials; the assertion methods need the gateway's keys, so the
                // caller's secret is sent with basic or post authentication.
                let m = if method == "client_secret_post" {
                    "client_secret_post"
                } else {
                    "client_secret_basic"
                };
                let caller = ClientCreds {
                    id: user.to_string(),
                    secret: Some(pass.to_string()),
                    jwk: None,
                };
                self.authenticate_client(req, &mut form, &endpoint, m, &caller)?
            };
            self.event("idp_call");
            let resp = req.form(&form).send().await.map_err(|e| {
                self.event("idp_error");
                Denial::Unavailable(format!(
                    "token endpoint {}",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "unreachable"
                    }
                ))
            })?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_server_error() {
                self.event("idp_error");
                return Err(Denial::Unavailable(format!(
                    "token endpoint answered HTTP {}",
                    status.as_u16()
                )));
            }
            if !status.is_success() || body.get("access_token").and_then(Value::as_str).is_none() {
                let err = body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no access token");
                return Err(Denial::Invalid(format!("{grant} grant refused: {err}")));
            }
            Ok(body)
        };
        if !self.config.cache_tokens {
            return fetch.await.map(Arc::new);
        }
        let client = self.gateway_client(ex).map(|c| c.id).unwrap_or_default();
        let key = self.key("token", &[grant, user, pass, &client, &scope]);
        let (out, missed) = crate::cache::get_or_fetch(&self.caches.oidc_tokens, key, async {
            let body = fetch.await?;
            let ttl = Duration::from_secs(
                body.get("expires_in")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(self.config.cache_ttl),
            );
            Ok::<_, Denial>(Cached {
                claims: Arc::new(body),
                ttl,
            })
        })
        .await;
        self.event(if missed { "token_miss" } else { "token_hit" });
        // The cached answer is shared, never copied per request.
        out.map(|c| c.claims).map_err(|e| (*e).clone())
    }
}
