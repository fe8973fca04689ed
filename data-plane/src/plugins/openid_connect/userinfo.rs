//! The UserInfo endpoint (OpenID Connect Core 5.3): the `userinfo` auth method (an access token the
//! endpoint answers is valid, and its answer is the claims) and `search_user_info` (the answer completes
//! a token's claims). Answers are cached per token with `cache_user_info`, like introspection results.

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
            serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    let why = IdpFailure::Answer("the answer is not a JSON object".into());
                    endpoints::unavailable("userinfo", self.idp.fault(why))
                })
        };
        let cache = self.config.userinfo.cache_user_info;
        self.per_token(b"userinfo", token, cache, fetch).await
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
