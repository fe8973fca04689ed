//! How the gateway authenticates itself to the identity provider: the configured client, the method
//! (`client_secret_basic`/`_post`/`_jwt`, `private_key_jwt`, `none`) and the signed assertion keys.

use super::jwk::signing_key;
use super::*;

impl OpenIdConnect {
    /// The configured client to authenticate as (a request may pick one with `X-<client_arg>`).
    pub(super) fn gateway_client(&self, ex: &Exchange) -> Option<ClientCreds> {
        let header = format!("x-{}", self.config.client_arg.replace('_', "-"));
        let wanted = ex
            .parts
            .headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok());
        let idx = wanted
            .and_then(|w| self.config.client_id.iter().position(|c| c == w))
            .unwrap_or(0);
        let id = self.config.client_id.get(idx)?.clone();
        Some(ClientCreds {
            id,
            secret: self.config.client_secret.get(idx).cloned(),
            jwk: self
                .config
                .client_jwk
                .get(idx)
                .or(self.config.client_jwk.first())
                .cloned(),
        })
    }

    pub(super) fn auth_method(&self, for_introspection: bool) -> ClientAuth {
        let explicit = if for_introspection {
            self.config
                .introspection_endpoint_auth_method
                .or(self.config.token_endpoint_auth_method)
        } else {
            self.config.token_endpoint_auth_method
        };
        explicit
            .or_else(|| self.config.client_auth.first().copied())
            .unwrap_or(if self.config.client_secret.is_empty() {
                ClientAuth::None
            } else {
                ClientAuth::ClientSecretBasic
            })
    }

    /// Adds client authentication to a form request to `endpoint`.
    pub(super) fn authenticate_client(
        &self,
        req: reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
        endpoint: &str,
        method: ClientAuth,
        creds: &ClientCreds,
    ) -> Result<reqwest::RequestBuilder, Denial> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let (client_id, secret, jwk) = (
            creds.id.as_str(),
            creds.secret.as_deref(),
            creds.jwk.as_ref(),
        );
        match method {
            ClientAuth::ClientSecretBasic => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(client_id),
                    enc(secret.unwrap_or_default())
                ));
                Ok(req.header(http::header::AUTHORIZATION, format!("Basic {basic}")))
            }
            ClientAuth::ClientSecretPost => {
                form.push(("client_id".into(), client_id.into()));
                form.push(("client_secret".into(), secret.unwrap_or_default().into()));
                Ok(req)
            }
            ClientAuth::ClientSecretJwt | ClientAuth::PrivateKeyJwt => {
                let now = unix_now();
                let claims = json!({
                    "iss": client_id, "sub": client_id, "aud": endpoint,
                    "jti": hex::encode(rand::random::<[u8; 16]>()), "iat": now, "exp": now + 60,
                });
                let assertion = if method == ClientAuth::ClientSecretJwt {
                    let key = EncodingKey::from_secret(secret.unwrap_or_default().as_bytes());
                    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
                } else {
                    let jwk =
                        jwk.ok_or_else(|| Denial::Unavailable("no client_jwk configured".into()))?;
                    let (key, alg, kid) = signing_key(jwk).map_err(Denial::Unavailable)?;
                    let mut header = Header::new(alg);
                    header.kid = kid;
                    jsonwebtoken::encode(&header, &claims, &key)
                }
                .map_err(|e| {
                    Denial::Unavailable(format!("cannot sign the client assertion: {e}"))
                })?;
                form.push(("client_id".into(), client_id.into()));
                form.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion".into(), assertion));
                Ok(req)
            }
            ClientAuth::None => {
                form.push(("client_id".into(), client_id.into()));
                Ok(req)
            }
        }
    }
}
