//! The `openid-connect` fields of signing a person in through a browser: the authorization code flow, the
//! session it leaves in a cookie, and logout. Kong 3.x names and defaults.

use serde::{Deserialize, Serialize};

use super::url_list;
use crate::plugins::redis::{self, Redis};
use crate::schema::Fields;

crate::keywords! {
    /// How the identity provider returns the authorization response.
    pub enum ResponseMode { Query = "query", FormPost = "form_post" }
}

crate::keywords! {
    /// What the gateway does once the callback has signed the person in.
    pub enum LoginAction { Upstream = "upstream", Redirect = "redirect", Response = "response" }
}

crate::keywords! {
    /// Tokens `login_action: response` returns.
    pub enum LoginToken {
        IdToken = "id_token",
        AccessToken = "access_token",
        RefreshToken = "refresh_token",
        Tokens = "tokens",
    }
}

crate::keywords! {
    /// The `SameSite` attribute of the cookies.
    pub enum SameSite { Strict = "Strict", Lax = "Lax", None = "None", Default = "Default" }
}

crate::keywords! {
    /// Where a session's tokens are kept: sealed in the cookie, or on a Redis server with only the
    /// session's id (sealed) in the cookie.
    pub enum SessionStorage { Cookie = "cookie", Redis = "redis" }
}

crate::keywords! {
    /// Methods a logout request may use.
    pub enum LogoutMethod { Get = "GET", Post = "POST", Delete = "DELETE" }
}

/// The browser sign-in fields of a validated config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Browser {
    /// The callback URL registered at the identity provider; empty: the request's own URL.
    pub redirect_uri: Vec<String>,
    pub response_mode: ResponseMode,
    /// PKCE (S256); `None`: used when the discovery document lists S256.
    pub require_proof_key_for_code_exchange: Option<bool>,
    pub login_action: LoginAction,
    pub login_redirect_uri: Vec<String>,
    pub login_tokens: Vec<LoginToken>,
    /// Whether the original query string survives the round trip to the identity provider.
    pub preserve_query_args: bool,
    /// Keys of the session and authorization cookies: the first seals, every one opens (rotation).
    pub session_secret: Vec<String>,
    pub session_cookie_name: String,
    pub session_cookie_path: String,
    pub session_cookie_domain: Option<String>,
    pub session_cookie_same_site: SameSite,
    pub session_cookie_http_only: bool,
    /// `None`: secure when the request came over https.
    pub session_cookie_secure: Option<bool>,
    /// Seconds without a request after which a session ends (0: never).
    pub session_idling_timeout: u64,
    /// Seconds after which a session is sealed again (0: never); an older one is refused.
    pub session_rolling_timeout: u64,
    /// Seconds after sign-in at which a session ends whatever its use (0: never).
    pub session_absolute_timeout: u64,
    pub session_storage: SessionStorage,
    /// The Redis server of `session_storage: redis`.
    pub redis: Redis,
    pub authorization_cookie_name: String,
    /// Seconds a pending authorization (state, nonce, verifier) stays valid.
    pub authorization_rolling_timeout: u64,
    /// Whether a session's expired access token is renewed with its refresh token.
    pub refresh_tokens: bool,
    pub unauthorized_redirect_uri: Vec<String>,
    pub forbidden_redirect_uri: Vec<String>,
    pub logout_methods: Vec<LogoutMethod>,
    pub logout_uri_suffix: Option<String>,
    pub logout_query_arg: Option<String>,
    pub logout_redirect_uri: Vec<String>,
    /// Revoke the session's tokens at the revocation endpoint (RFC 7009) on logout.
    pub logout_revoke: bool,
    pub logout_revoke_access_token: bool,
    pub logout_revoke_refresh_token: bool,
    /// The revocation endpoint; `None`: the discovery document's.
    pub revocation_endpoint: Option<String>,
    /// Requests whose path ends with it (POST) are OpenID Connect Back-Channel Logout requests; `None`:
    /// back-channel logout is off.
    pub backchannel_logout_uri_suffix: Option<String>,
    pub upstream_id_token_header: Option<String>,
}

/// Shortest `session_secret` accepted: the key is derived from it, so it must carry enough entropy.
pub const MIN_SECRET_LEN: usize = 32;

/// Whether `name` can be a cookie name (an RFC 6265 token).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `path` can be a cookie's `Path` (absolute, no `;` or control characters).
fn is_cookie_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';')
}

impl Browser {
    /// Reads the fields; `needed` when `auth_methods` list `authorization_code` or `session`.
    pub(super) fn parse(f: &mut Fields<'_>, needed: bool) -> Browser {
        let redirect_uri = url_list(f, "redirect_uri");
        let response_mode = f
            .opt_keyword("response_mode")
            .unwrap_or(ResponseMode::Query);
        let require_proof_key_for_code_exchange = f.opt_bool("require_proof_key_for_code_exchange");
        let login_action = f
            .opt_keyword("login_action")
            .unwrap_or(LoginAction::Upstream);
        let login_redirect_uri = url_list(f, "login_redirect_uri");
        if login_action == LoginAction::Redirect && login_redirect_uri.is_empty() {
            f.error(
                "login_redirect_uri",
                "required when login_action is 'redirect'",
            );
        }
        let login_tokens = f
            .opt_keywords("login_tokens")
            .unwrap_or_else(|| vec![LoginToken::IdToken]);
        let preserve_query_args = f.bool_or("preserve_query_args", false);
        let session_secret = match f.raw("session_secret") {
            Some(serde_json::Value::String(_)) => {
                f.opt_string("session_secret").into_iter().collect()
            }
            _ => f.strings("session_secret"),
        };
        for (i, s) in session_secret.iter().enumerate() {
            if s.len() < MIN_SECRET_LEN {
                let at = match session_secret.len() {
                    1 => "session_secret".to_string(),
                    _ => format!("session_secret.{}", i + 1),
                };
                f.error(&at, format!("must be at least {MIN_SECRET_LEN} characters"));
            }
        }
        if needed && session_secret.is_empty() {
            f.error(
                "session_secret",
                "required when auth_methods include 'authorization_code' or 'session'",
            );
        }
        let cookie_name = |f: &mut Fields<'_>, name: &str, default: &str| {
            let v = f.opt_string(name).unwrap_or_else(|| default.into());
            if !is_cookie_name(&v) {
                f.error(
                    name,
                    "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~",
                );
            }
            v
        };
        let session_cookie_name = cookie_name(f, "session_cookie_name", "session");
        let session_cookie_path = f
            .opt_string("session_cookie_path")
            .unwrap_or_else(|| "/".into());
        if !is_cookie_path(&session_cookie_path) {
            f.error(
                "session_cookie_path",
                "must be an absolute path without ';' or spaces",
            );
        }
        let session_cookie_domain = f.opt_string("session_cookie_domain");
        if let Some(d) = &session_cookie_domain {
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                f.error("session_cookie_domain", "must be a host name");
            }
        }
        let session_cookie_same_site = f
            .opt_keyword("session_cookie_same_site")
            .unwrap_or(SameSite::Lax);
        let session_cookie_http_only = f.bool_or("session_cookie_http_only", true);
        let session_cookie_secure = f.opt_bool("session_cookie_secure");
        if session_cookie_same_site == SameSite::None && session_cookie_secure == Some(false) {
            f.error(
                "session_cookie_secure",
                "must be true when session_cookie_same_site is 'None'",
            );
        }
        let secs = |f: &mut Fields<'_>, name: &str, default: i64| {
            f.int_or(name, 0, 10 * 365 * 86_400, default) as u64
        };
        let session_idling_timeout = secs(f, "session_idling_timeout", 900);
        let session_rolling_timeout = secs(f, "session_rolling_timeout", 3600);
        let session_absolute_timeout = secs(f, "session_absolute_timeout", 86_400);
        let session_storage = match f.opt_string("session_storage").as_deref() {
            None | Some("cookie") => SessionStorage::Cookie,
            Some("redis") => SessionStorage::Redis,
            Some("memcache" | "memcached") => {
                f.error(
                    "session_storage",
                    "memcached is not supported: use cookie or redis",
                );
                SessionStorage::Cookie
            }
            Some(_) => {
                f.error("session_storage", "expected one of: cookie, redis");
                SessionStorage::Cookie
            }
        };
        f.shape("session_storage", || {
            serde_json::json!({"type": "string", "default": "cookie", "one_of": ["cookie", "redis"]})
        });
        let redis = redis::read(f, redis::SESSIONS);
        if session_storage == SessionStorage::Redis && redis.host.is_none() {
            f.error("redis.host", "required when session_storage is 'redis'");
        }
        let authorization_cookie_name =
            cookie_name(f, "authorization_cookie_name", "authorization");
        if authorization_cookie_name == session_cookie_name {
            f.error(
                "authorization_cookie_name",
                "must differ from session_cookie_name",
            );
        }
        let authorization_rolling_timeout =
            f.int_or("authorization_rolling_timeout", 1, 86_400, 600) as u64;
        let refresh_tokens = f.bool_or("refresh_tokens", true);
        let unauthorized_redirect_uri = url_list(f, "unauthorized_redirect_uri");
        let forbidden_redirect_uri = url_list(f, "forbidden_redirect_uri");
        let logout_methods = f
            .opt_keywords("logout_methods")
            .unwrap_or_else(|| vec![LogoutMethod::Post, LogoutMethod::Delete]);
        let logout_uri_suffix = f.opt_string("logout_uri_suffix").filter(|s| !s.is_empty());
        let logout_query_arg = f.opt_string("logout_query_arg").filter(|s| !s.is_empty());
        let logout_redirect_uri = url_list(f, "logout_redirect_uri");
        let logout_revoke = f.bool_or("logout_revoke", false);
        let logout_revoke_access_token = f.bool_or("logout_revoke_access_token", true);
        let logout_revoke_refresh_token = f.bool_or("logout_revoke_refresh_token", true);
        let revocation_endpoint = crate::plugins::url_field(f, "revocation_endpoint", false);
        let backchannel_logout_uri_suffix = f
            .opt_string("backchannel_logout_uri_suffix")
            .filter(|s| !s.is_empty());
        if let Some(suffix) = &backchannel_logout_uri_suffix {
            if !is_cookie_path(suffix) {
                f.error(
                    "backchannel_logout_uri_suffix",
                    "must be a path starting with '/'",
                );
            }
            if logout_uri_suffix.as_ref() == Some(suffix) {
                f.error(
                    "backchannel_logout_uri_suffix",
                    "must differ from logout_uri_suffix",
                );
            }
        }
        let upstream_id_token_header = f
            .opt_string("upstream_id_token_header")
            .filter(|s| !s.is_empty());
        if let Some(name) = &upstream_id_token_header {
            f.check(
                "upstream_id_token_header",
                name,
                crate::http_syntax::is_header_name,
                crate::http_syntax::INVALID_HEADER_NAME,
            );
        }
        Browser {
            redirect_uri,
            response_mode,
            require_proof_key_for_code_exchange,
            login_action,
            login_redirect_uri,
            login_tokens,
            preserve_query_args,
            session_secret,
            session_cookie_name,
            session_cookie_path,
            session_cookie_domain,
            session_cookie_same_site,
            session_cookie_http_only,
            session_cookie_secure,
            session_idling_timeout,
            session_rolling_timeout,
            session_absolute_timeout,
            session_storage,
            redis,
            authorization_cookie_name,
            authorization_rolling_timeout,
            refresh_tokens,
            unauthorized_redirect_uri,
            forbidden_redirect_uri,
            logout_methods,
            logout_uri_suffix,
            logout_query_arg,
            logout_redirect_uri,
            logout_revoke,
            logout_revoke_access_token,
            logout_revoke_refresh_token,
            revocation_endpoint,
            backchannel_logout_uri_suffix,
            upstream_id_token_header,
        }
    }
}
