//! JWT verification: accepted algorithms, signatures against the issuer's JWKS, registered claims, RFC 9701
//! signed introspection answers, and the cache of verified tokens.

use super::jws::{accepted_algorithm, verify_signature};
use super::*;

impl OpenIdConnect {
    /// Verifies a JWT access token: a strict JOSE header (no `crit`), an accepted algorithm, a signature
    /// by a key of the issuer's JWKS (rediscovering once on an unknown `kid`), then the registered claims
    /// by type and value (`exp` required, `nbf`, `iss` equal to the issuer) with `leeway`.
    pub(super) async fn verify_jwt(
        &self,
        token: &str,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Value, Denial> {
        let claims = self.signed_claims(token, doc).await?;
        let issuer = doc.issuer().unwrap_or_else(|| self.config.issuer.clone());
        let rules = ClaimRules {
            issuer: Some(&issuer),
            require_exp: true,
            leeway: self.config.leeway,
            ..ClaimRules::default()
        };
        jwt::check_claims(&claims, &rules, unix_now())
            .map_err(|e| Denial::Invalid(format!("JWT rejected: {e}")))?;
        Ok(claims)
    }

    /// The claims of a compact JWS with a strict JOSE header, an accepted algorithm and a signature by a
    /// key of the issuer's JWKS (rediscovering once on an unknown `kid`); its claims are not checked.
    pub(super) async fn signed_claims(
        &self,
        token: &str,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Value, Denial> {
        let header = jwt::parse_header(token).map_err(|e| Denial::Invalid(e.to_string()))?;
        let alg = accepted_algorithm(&header.alg).ok_or_else(|| {
            Denial::Invalid(format!("JWT algorithm {:?} is not accepted", header.alg))
        })?;
        let kid = header.kid.as_deref();
        let mut doc = doc.clone();
        if doc.key(kid).is_none() {
            doc = self
                .issuers()
                .rediscover(
                    self.idp.client(),
                    &self.config.issuer,
                    Duration::from_secs(self.config.rediscovery_lifetime),
                )
                .await;
        }
        let Some((_, _, key)) = doc.key(kid) else {
            return Err(Denial::Invalid(format!(
                "no key with kid {kid:?} in the issuer's JWKS"
            )));
        };
        verify_signature(token, key, alg).map_err(|e| Denial::Invalid(format!("JWT rejected: {e}")))
    }

    /// Verifies an RFC 9701 introspection response: typed `token-introspection+jwt`, signed with a key of
    /// the issuer's JWKS, with the claims RFC 9701 §5 requires (`iss` equal to the issuer, `aud` naming this
    /// gateway's client, `iat`) and valid `exp`/`nbf` when present; returns the `token_introspection`
    /// member. A response that fails any of these is treated as an identity-provider failure, never as an
    /// answer about the token.
    pub(super) fn verify_introspection_jwt(
        &self,
        response: &str,
        doc: &IssuerDoc,
        client_id: &str,
    ) -> Result<Value, Denial> {
        let rejected =
            |why: String| Denial::Unavailable(format!("introspection JWT rejected: {why}"));
        let header = jwt::parse_header(response).map_err(|e| rejected(e.to_string()))?;
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("token-introspection+jwt")
            && !typ.eq_ignore_ascii_case("application/token-introspection+jwt")
        {
            return Err(rejected(format!(
                "typ {typ:?} is not token-introspection+jwt"
            )));
        }
        let alg = accepted_algorithm(&header.alg)
            .ok_or_else(|| rejected(format!("algorithm {:?} is not accepted", header.alg)))?;
        let (_, _, key) = doc.key(header.kid.as_deref()).ok_or_else(|| {
            Denial::Unavailable("introspection JWT signed with an unknown key".into())
        })?;
        let claims = verify_signature(response, key, alg).map_err(|e| rejected(e.to_string()))?;
        let issuer = doc.issuer().unwrap_or_else(|| self.config.issuer.clone());
        let rules = ClaimRules {
            issuer: Some(&issuer),
            audience: Some(client_id),
            require_iat: true,
            leeway: self.config.leeway,
            ..ClaimRules::default()
        };
        jwt::check_claims(&claims, &rules, unix_now()).map_err(|e| rejected(e.to_string()))?;
        match claims.get("token_introspection") {
            Some(Value::Object(result)) => Ok(Value::Object(result.clone())),
            _ => Err(rejected("no token_introspection object".into())),
        }
    }

    /// [`Self::verify_jwt`] through a cache of verified tokens (keyed by the token's hash), so a token is
    /// verified once and then served from memory until its `exp` or `cache_ttl`, whichever comes first.
    pub(super) async fn verify_jwt_cached(
        &self,
        token: &str,
        doc: &Arc<IssuerDoc>,
    ) -> Result<Arc<Value>, Denial> {
        let key = self.idp.key(&[b"jwt"], &[token.as_bytes()]);
        if let Some(hit) = self.idp.caches().jwt_hit(&key).await {
            self.event("jwt_hit");
            return Ok(hit.claims);
        }
        let claims = Arc::new(self.verify_jwt(token, doc).await?);
        let remaining = claims
            .get("exp")
            .and_then(Value::as_i64)
            .map(|exp| exp - unix_now())
            .unwrap_or(0);
        let ttl = remaining.min(self.config.cache_ttl as i64);
        if ttl > 0 {
            let cached = Cached::new(claims.clone(), Duration::from_secs(ttl as u64));
            self.idp.caches().oidc_jwt.insert(key, cached).await;
        }
        Ok(claims)
    }
}
