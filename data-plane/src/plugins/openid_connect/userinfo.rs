//! The UserInfo endpoint (OpenID Connect Core 5.3): the `userinfo` auth method (an access token the
//! endpoint answers is valid, and its answer is the claims) and `search_user_info` (the answer completes
//! a token's claims). Answers are cached per token with `cache_user_info`, like introspection results.
//! With `userinfo_accept: application/jwt` the answer is a signed JWT (Core 5.3.2), verified against the
//! issuer's JWKS with its `iss` and `aud`; an answer that fails is the provider's failure (503), never a
//! judgement of the token.

use super::*;

impl OpenIdConnect {
    /// The endpoint's claims for `token`: 401/403 from the endpoint make the token invalid; any other
    /// failure is the identity provider's (503).
    pub(super) async fn userinfo(
        &self,
        token: &str,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Arc<Value>, Denial> {
        let endpoint = self
            .config
            .userinfo
            .userinfo_endpoint
            .clone()
            .or_else(|| doc.endpoint("userinfo_endpoint"))
            .ok_or_else(|| Denial::Unavailable("the issuer has no userinfo endpoint".into()))?;
        let fetch = async {
            let req = self
                .idp
                .client()
                .get(&endpoint)
                .bearer_auth(token)
                .header(http::header::ACCEPT, &self.config.userinfo.userinfo_accept);
            let answer = self
                .idp
                .send(req)
                .await
                .map_err(|f| endpoints::unavailable("userinfo", f))?;
            match answer.status {
                200 => {}
                401 | 403 => {
                    return Err(Denial::Invalid(
                        "the userinfo endpoint refused the token".into(),
                    ))
                }
                other => {
                    let failure = self.idp.fault(IdpFailure::Status(other));
                    return Err(endpoints::unavailable("userinfo", failure));
                }
            }
            let signed = answer.content_type.as_deref() == Some("application/jwt")
                || self.config.userinfo.userinfo_accept == "application/jwt";
            let claims = match signed {
                true => self.signed_userinfo(&answer.body, doc).await,
                false => serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| "the answer is not a JSON object".to_string()),
            };
            claims.map_err(|why| {
                endpoints::unavailable("userinfo", self.idp.fault(IdpFailure::Answer(why)))
            })
        };
        let cache = self.config.userinfo.cache_user_info;
        self.per_token(b"userinfo", token, cache, fetch).await
    }

    /// The claims of a signed UserInfo answer: signed by a key of the issuer's JWKS, `iss` the issuer,
    /// `aud` naming a client of this plugin, and `exp`/`nbf` valid when present.
    async fn signed_userinfo(&self, body: &[u8], doc: &Arc<IssuerDoc>) -> Result<Value, String> {
        let jws = std::str::from_utf8(body).map_err(|_| "the signed answer is not text")?;
        let claims = match self.signed_claims(jws.trim(), doc).await {
            Ok(c) if c.is_object() => c,
            Ok(_) => return Err("the signed answer is not a JSON object".into()),
            Err(d) => return Err(format!("the signed answer is not valid: {d:?}")),
        };
        let issuer = doc.issuer().unwrap_or_else(|| self.config.issuer.clone());
        let rules = ClaimRules {
            issuer: Some(&issuer),
            leeway: self.config.leeway,
            ..ClaimRules::default()
        };
        jwt::check_claims(&claims, &rules, unix_now())
            .map_err(|e| format!("the signed answer is not valid: {e}"))?;
        let audiences = super::backchannel::audiences(&claims);
        if !self
            .config
            .client_id
            .iter()
            .any(|c| audiences.contains(&c.as_str()))
        {
            return Err("the signed answer's aud does not name this client".into());
        }
        Ok(claims)
    }

    /// `search_user_info`: the token's claims completed by the endpoint's, the token's winning where both
    /// have one. The answer must be about the token's subject (Core 5.3.2).
    pub(super) async fn completed_by_userinfo(
        &self,
        auth: Authenticated,
    ) -> Result<Authenticated, Denial> {
        if !self.config.userinfo.search_user_info {
            return Ok(auth);
        }
        let doc = self.doc().await?;
        let found = self.userinfo(&auth.access_token, &doc).await?;
        if Arc::ptr_eq(&found, &auth.claims) {
            return Ok(auth);
        }
        let (Some(token), Some(extra)) = (auth.claims.as_object(), found.as_object()) else {
            return Ok(auth);
        };
        if let (Some(a), Some(b)) = (token.get("sub"), extra.get("sub")) {
            if a != b {
                return Err(Denial::Invalid(
                    "the userinfo answer is about another subject".into(),
                ));
            }
        }
        let mut merged = extra.clone();
        merged.extend(token.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Authenticated {
            claims: Arc::new(Value::Object(merged)),
            ..auth
        })
    }
}
