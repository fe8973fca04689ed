//! Config schema of `openid-connect`: the subset of Kong's fields this gateway implements, with Kong's names
//! and defaults (except `ssl_verify`, which defaults to true here).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod browser;
mod userinfo;

pub use browser::{
    Browser, LoginAction, LoginToken, LogoutMethod, ResponseMode, SameSite, SessionStorage,
};
pub use userinfo::UserInfo;

use super::{anonymous_field, url_field};
use crate::entity::Resolver;
use crate::http_syntax;
use crate::keyword::Keyword;
use crate::schema::{FieldErrors, Fields};

/// The plugin's name.
pub const NAME: &str = "openid-connect";
/// The schema version this release speaks.
pub const VERSION: &str = "1.0.0";
/// Fields that hold secrets. Header values sent to the identity provider often carry credentials too.
pub const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "client_jwk",
    "introspection_headers_values",
    "session_secret",
    crate::plugins::redis::PASSWORD_PATH,
];

crate::keywords! {
    /// How a request may authenticate, in lookup order. `password` and `client_credentials` are also
    /// the grant types sent to the token endpoint.
    pub enum AuthMethod {
        Bearer = "bearer",
        Introspection = "introspection",
        Password = "password",
        ClientCredentials = "client_credentials",
        AuthorizationCode = "authorization_code",
        Session = "session",
        Userinfo = "userinfo",
    }
}

/// The methods on when `auth_methods` is not given: the ones of machine clients. A browser's
/// (`authorization_code`, `session`) need a `session_secret`, so they are listed explicitly.
pub const DEFAULT_AUTH_METHODS: &[AuthMethod] = &[
    AuthMethod::Bearer,
    AuthMethod::Introspection,
    AuthMethod::Password,
    AuthMethod::ClientCredentials,
];

crate::keywords! {
    /// How the gateway authenticates itself to the identity provider.
    pub enum ClientAuth {
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        ClientSecretJwt = "client_secret_jwt",
        PrivateKeyJwt = "private_key_jwt",
        None = "none",
    }
}

crate::keywords! {
    /// Where in a request a credential is looked for.
    pub enum ParamType { Header = "header", Query = "query", Body = "body" }
}

crate::keywords! {
    /// The Consumer field a claim value is matched against.
    pub enum ConsumerBy { Username = "username", CustomId = "custom_id", Id = "id" }
}

/// A validated `openid-connect` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub issuer: String,
    pub auth_methods: Vec<AuthMethod>,
    pub bearer_token_param_type: Vec<ParamType>,
    pub password_param_type: Vec<ParamType>,
    pub client_credentials_param_type: Vec<ParamType>,
    pub client_id: Vec<String>,
    pub client_secret: Vec<String>,
    /// JWKs (with private parts) for `private_key_jwt`.
    pub client_jwk: Vec<Value>,
    pub client_alg: Vec<String>,
    pub client_auth: Vec<ClientAuth>,
    /// Request argument that selects one of several configured clients.
    pub client_arg: String,
    pub token_endpoint_auth_method: Option<ClientAuth>,
    pub introspection_endpoint_auth_method: Option<ClientAuth>,
    pub scopes: Vec<String>,
    pub introspection_endpoint: Option<String>,
    pub introspection_hint: String,
    pub introspection_headers_names: Vec<String>,
    pub introspection_headers_values: Vec<String>,
    pub introspection_post_args_names: Vec<String>,
    pub introspection_post_args_values: Vec<String>,
    pub introspection_accept: String,
    pub introspect_jwt_tokens: bool,
    pub introspection_check_active: bool,
    pub cache_introspection: bool,
    pub cache_tokens: bool,
    pub cache_ttl: u64,
    pub cache_ttl_min: Option<u64>,
    pub cache_ttl_max: Option<u64>,
    pub scopes_required: Vec<String>,
    pub scopes_claim: Vec<String>,
    pub audience_required: Vec<String>,
    pub audience_claim: Vec<String>,
    /// Groups a token must hold (alternatives of space-separated all-of, as `scopes_required`).
    pub groups_required: Vec<String>,
    /// Where the groups are (a claim path: `["realm_access", "groups"]`).
    pub groups_claim: Vec<String>,
    pub roles_required: Vec<String>,
    pub roles_claim: Vec<String>,
    /// Claims a token must not hold at all.
    pub claims_forbidden: Vec<String>,
    /// Where the groups the `acl` plugin reads are (a claim path); empty: the token sets none.
    pub authenticated_groups_claim: Vec<String>,
    /// Where the names of the request's consumer groups are (a claim path); empty: the Consumer's.
    #[serde(default)]
    pub consumer_groups_claim: Vec<String>,
    /// Let the request through when the claim names no consumer group (else 403).
    #[serde(default)]
    pub consumer_groups_optional: bool,
    pub issuers_allowed: Vec<String>,
    pub consumer_claim: Vec<String>,
    pub consumer_by: Vec<ConsumerBy>,
    pub consumer_optional: bool,
    pub credential_claim: Vec<String>,
    pub anonymous: Option<String>,
    pub upstream_access_token_header: Option<String>,
    pub upstream_introspection_header: Option<String>,
    pub upstream_headers_claims: Vec<String>,
    pub upstream_headers_names: Vec<String>,
    pub hide_credentials: bool,
    pub display_errors: bool,
    /// Seconds of clock skew allowed on `exp`/`nbf`.
    pub leeway: u64,
    /// Milliseconds for calls to the identity provider.
    pub timeout: u64,
    /// Seconds between two rediscoveries of the same issuer.
    pub rediscovery_lifetime: u64,
    pub ssl_verify: bool,
    pub run_on_preflight: bool,
    pub unauthorized_error_message: String,
    pub forbidden_error_message: String,
    /// Signing a person in through a browser.
    #[serde(flatten)]
    pub browser: Browser,
    /// The UserInfo endpoint: the `userinfo` method and `search_user_info`.
    #[serde(flatten)]
    pub userinfo: UserInfo,
}

/// An array of URLs (a single URL in a form body), each checked.
fn url_list(f: &mut Fields<'_>, name: &str) -> Vec<String> {
    let urls = f.strings(name);
    for (i, u) in urls.iter().enumerate() {
        if !http_syntax::is_url(u) {
            f.error(&format!("{name}.{}", i + 1), http_syntax::INVALID_URL);
        }
    }
    urls
}

fn list_or(f: &mut Fields<'_>, name: &str, default: &[&str]) -> Vec<String> {
    f.opt_strings(name)
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
}

fn keywords_or<K: Keyword>(f: &mut Fields<'_>, name: &str, default: &[K]) -> Vec<K> {
    f.opt_keywords(name).unwrap_or_else(|| default.to_vec())
}

/// Whether a raw config signs people in through a browser (its `auth_methods` list `authorization_code`
/// or `session`): such a config needs a `session_secret`.
pub fn signs_people_in(config: &serde_json::Map<String, Value>) -> bool {
    config
        .get("auth_methods")
        .and_then(Value::as_array)
        .is_some_and(|methods| {
            methods.iter().any(|m| {
                m.as_str().is_some_and(|m| {
                    m == AuthMethod::AuthorizationCode.as_str() || m == AuthMethod::Session.as_str()
                })
            })
        })
}

impl Config {
    /// Validates a raw config, filling in defaults.
    pub fn parse(v: &Value, resolver: &dyn Resolver) -> Result<Config, FieldErrors> {
        let mut f = Fields::new(v, "")?;
        let issuer = url_field(&mut f, "issuer", true).unwrap_or_default();
        let auth_methods = keywords_or(&mut f, "auth_methods", DEFAULT_AUTH_METHODS);
        let bearer_token_param_type =
            keywords_or(&mut f, "bearer_token_param_type", ParamType::ALL);
        let password_param_type = keywords_or(&mut f, "password_param_type", ParamType::ALL);
        let client_credentials_param_type =
            keywords_or(&mut f, "client_credentials_param_type", ParamType::ALL);
        let client_id = f.strings("client_id");
        let client_secret = f.strings("client_secret");
        f.shape(
            "client_jwk",
            || json!({"type": "array", "elements": {"type": "record", "description": "a JWK"}}),
        );
        let client_jwk = match f.raw("client_jwk") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        f.error(&format!("client_jwk.{}", i + 1), "expected a JWK object");
                    }
                }
                items.clone()
            }
            Some(obj @ Value::Object(_)) => vec![obj.clone()],
            Some(_) => {
                f.error("client_jwk", "expected an array of JWK objects");
                Vec::new()
            }
        };
        let client_alg = f.strings("client_alg");
        let client_auth: Vec<ClientAuth> = keywords_or(&mut f, "client_auth", &[]);
        let client_arg = f
            .opt_string("client_arg")
            .unwrap_or_else(|| "client_id".into());
        let token_endpoint_auth_method = f.opt_keyword("token_endpoint_auth_method");
        let introspection_endpoint_auth_method =
            f.opt_keyword("introspection_endpoint_auth_method");
        let scopes = list_or(&mut f, "scopes", &["openid"]);
        let introspection_endpoint = url_field(&mut f, "introspection_endpoint", false);
        let introspection_hint = f
            .opt_string("introspection_hint")
            .unwrap_or_else(|| "access_token".into());
        let introspection_headers_names = f.strings("introspection_headers_names");
        let introspection_headers_values = f.strings("introspection_headers_values");
        if introspection_headers_names.len() != introspection_headers_values.len() {
            f.error(
                "introspection_headers_values",
                "must have as many entries as introspection_headers_names",
            );
        }
        f.check_each(
            "introspection_headers_names",
            &introspection_headers_names,
            http_syntax::is_header_name,
            http_syntax::INVALID_HEADER_NAME,
        );
        f.check_each(
            "introspection_headers_values",
            &introspection_headers_values,
            http_syntax::is_header_value,
            http_syntax::INVALID_HEADER_VALUE,
        );
        let introspection_post_args_names = f.strings("introspection_post_args_names");
        let introspection_post_args_values = f.strings("introspection_post_args_values");
        if introspection_post_args_names.len() != introspection_post_args_values.len() {
            f.error(
                "introspection_post_args_values",
                "must have as many entries as introspection_post_args_names",
            );
        }
        let introspection_accept = f
            .opt_one_of(
                "introspection_accept",
                &["application/json", "application/token-introspection+jwt"],
            )
            .unwrap_or_else(|| "application/json".into());
        let introspect_jwt_tokens = f.bool_or("introspect_jwt_tokens", false);
        let introspection_check_active = f.bool_or("introspection_check_active", true);
        let cache_introspection = f.bool_or("cache_introspection", true);
        let cache_tokens = f.bool_or("cache_tokens", true);
        let cache_ttl = f.int_or("cache_ttl", 0, i32::MAX as i64, 3600) as u64;
        let cache_ttl_min = f
            .opt_int("cache_ttl_min", 0, i32::MAX as i64)
            .map(|v| v as u64);
        let cache_ttl_max = f
            .opt_int("cache_ttl_max", 0, i32::MAX as i64)
            .map(|v| v as u64);
        if let (Some(min), Some(max)) = (cache_ttl_min, cache_ttl_max) {
            if min > max {
                f.error("cache_ttl_min", "must not be greater than cache_ttl_max");
            }
        }
        let scopes_required = f.strings("scopes_required");
        let scopes_claim = list_or(&mut f, "scopes_claim", &["scope"]);
        let audience_required = f.strings("audience_required");
        let audience_claim = list_or(&mut f, "audience_claim", &["aud"]);
        let groups_required = f.strings("groups_required");
        let groups_claim = list_or(&mut f, "groups_claim", &["groups"]);
        let roles_required = f.strings("roles_required");
        let roles_claim = list_or(&mut f, "roles_claim", &["roles"]);
        let claims_forbidden = f.strings("claims_forbidden");
        let authenticated_groups_claim = f.strings("authenticated_groups_claim");
        let consumer_groups_claim = f.strings("consumer_groups_claim");
        let consumer_groups_optional = f.bool_or("consumer_groups_optional", false);
        let issuers_allowed = f.strings("issuers_allowed");
        let consumer_claim = f.strings("consumer_claim");
        let consumer_by = keywords_or(
            &mut f,
            "consumer_by",
            &[ConsumerBy::Username, ConsumerBy::CustomId],
        );
        let consumer_optional = f.bool_or("consumer_optional", false);
        let credential_claim = list_or(&mut f, "credential_claim", &["sub"]);
        let anonymous = anonymous_field(&mut f, resolver);
        // Absent means Kong's default; an explicit null (or "") turns the header off.
        let upstream_access_token_header = if f.present("upstream_access_token_header") {
            f.opt_string("upstream_access_token_header")
                .filter(|s| !s.is_empty())
        } else {
            f.ignore("upstream_access_token_header");
            f.shape("upstream_access_token_header", || json!({"type": "string"}));
            Some("authorization:bearer".into())
        };
        let upstream_introspection_header = f
            .opt_string("upstream_introspection_header")
            .filter(|s| !s.is_empty());
        let upstream_headers_claims = f.strings("upstream_headers_claims");
        let upstream_headers_names = f.strings("upstream_headers_names");
        if upstream_headers_claims.len() != upstream_headers_names.len() {
            f.error(
                "upstream_headers_names",
                "must have as many entries as upstream_headers_claims",
            );
        }
        if let Some(spec) = &upstream_access_token_header {
            let name = spec.split_once(':').map_or(spec.as_str(), |(n, _)| n);
            f.check(
                "upstream_access_token_header",
                name,
                http_syntax::is_header_name,
                http_syntax::INVALID_HEADER_NAME,
            );
        }
        if let Some(name) = &upstream_introspection_header {
            f.check(
                "upstream_introspection_header",
                name,
                http_syntax::is_header_name,
                http_syntax::INVALID_HEADER_NAME,
            );
        }
        f.check_each(
            "upstream_headers_names",
            &upstream_headers_names,
            http_syntax::is_header_name,
            http_syntax::INVALID_HEADER_NAME,
        );
        let hide_credentials = f.bool_or("hide_credentials", false);
        let display_errors = f.bool_or("display_errors", false);
        let leeway = f.int_or("leeway", 0, 3600, 0) as u64;
        let timeout = f.int_or("timeout", 1, i32::MAX as i64, 10_000) as u64;
        let rediscovery_lifetime = f.int_or("rediscovery_lifetime", 0, i32::MAX as i64, 30) as u64;
        let ssl_verify = f.bool_or("ssl_verify", true);
        let run_on_preflight = f.bool_or("run_on_preflight", true);
        let unauthorized_error_message = f
            .opt_string("unauthorized_error_message")
            .unwrap_or_else(|| "Unauthorized".into());
        let forbidden_error_message = f
            .opt_string("forbidden_error_message")
            .unwrap_or_else(|| "Forbidden".into());

        let browser = Browser::parse(
            &mut f,
            auth_methods
                .iter()
                .any(|m| matches!(m, AuthMethod::AuthorizationCode | AuthMethod::Session)),
        );

        let userinfo = UserInfo::parse(&mut f);

        // Cross-field rules.
        let needs_client = auth_methods.iter().any(|m| {
            matches!(
                m,
                AuthMethod::Password | AuthMethod::Introspection | AuthMethod::AuthorizationCode
            )
        });
        if needs_client && client_id.is_empty() {
            f.error(
                "client_id",
                "required when auth_methods include 'password', 'introspection' or 'authorization_code'",
            );
        }
        let auths: Vec<ClientAuth> = client_auth
            .iter()
            .copied()
            .chain(token_endpoint_auth_method)
            .chain(introspection_endpoint_auth_method)
            .collect();
        let uses_secret = auths.iter().any(|a| {
            matches!(
                a,
                ClientAuth::ClientSecretBasic
                    | ClientAuth::ClientSecretPost
                    | ClientAuth::ClientSecretJwt
            )
        }) || (auths.is_empty() && needs_client);
        if uses_secret && client_secret.is_empty() {
            f.error(
                "client_secret",
                "required by the selected client authentication method",
            );
        }
        if auths.contains(&ClientAuth::PrivateKeyJwt) && client_jwk.is_empty() {
            f.error(
                "client_jwk",
                "required when client authentication is 'private_key_jwt'",
            );
        }
        if !client_secret.is_empty() && client_secret.len() != client_id.len() {
            f.error("client_secret", "must have as many entries as client_id");
        }

        let errors = f.finish();
        errors.into_result(Config {
            issuer,
            auth_methods,
            bearer_token_param_type,
            password_param_type,
            client_credentials_param_type,
            client_id,
            client_secret,
            client_jwk,
            client_alg,
            client_auth,
            client_arg,
            token_endpoint_auth_method,
            introspection_endpoint_auth_method,
            scopes,
            introspection_endpoint,
            introspection_hint,
            introspection_headers_names,
            introspection_headers_values,
            introspection_post_args_names,
            introspection_post_args_values,
            introspection_accept,
            introspect_jwt_tokens,
            introspection_check_active,
            cache_introspection,
            cache_tokens,
            cache_ttl,
            cache_ttl_min,
            cache_ttl_max,
            scopes_required,
            scopes_claim,
            audience_required,
            audience_claim,
            groups_required,
            groups_claim,
            roles_required,
            roles_claim,
            claims_forbidden,
            authenticated_groups_claim,
            consumer_groups_claim,
            consumer_groups_optional,
            issuers_allowed,
            consumer_claim,
            consumer_by,
            consumer_optional,
            credential_claim,
            anonymous,
            upstream_access_token_header,
            upstream_introspection_header,
            upstream_headers_claims,
            upstream_headers_names,
            hide_credentials,
            display_errors,
            leeway,
            timeout,
            rediscovery_lifetime,
            ssl_verify,
            run_on_preflight,
            unauthorized_error_message,
            forbidden_error_message,
            browser,
            userinfo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Kind;
    use serde_json::json;
    use uuid::Uuid;

    struct NoRefs;
    impl Resolver for NoRefs {
        fn resolve(&self, _: Kind, _: &str) -> Option<Uuid> {
            None
        }
    }

    #[test]
    fn kong_how_to_config_is_accepted() {
        let c = Config::parse(
            &json!({
                "issuer": "http://keycloak.local:8080/realms/master",
                "client_id": ["kong"], "client_secret": ["secret"],
                "client_auth": ["client_secret_post"],
                "auth_methods": ["introspection", "password"],
                "bearer_token_param_type": ["header"]
            }),
            &NoRefs,
        )
        .unwrap();
        assert_eq!(c.scopes, ["openid"]);
        assert_eq!(
            c.upstream_access_token_header.as_deref(),
            Some("authorization:bearer")
        );
        assert_eq!(c.cache_ttl, 3600);
    }

    #[test]
    fn cross_field_rules() {
        let e = Config::parse(
            &json!({"issuer": "https://idp", "auth_methods": ["password", "kong_oauth2"], "client_auth": ["private_key_jwt"]}),
            &NoRefs,
        )
        .unwrap_err();
        assert!(e.contains("client_id"), "{e:?}");
        assert!(e.contains("client_jwk"), "{e:?}");
        assert!(e.contains("auth_methods.2"), "{e:?}");
    }

    #[test]
    fn browser_sign_in_needs_a_long_enough_secret_and_sane_cookies() {
        let base = json!({"issuer": "https://idp", "client_id": ["web"], "client_secret": ["s"],
            "auth_methods": ["authorization_code", "session"]});
        let e = Config::parse(&base, &NoRefs).unwrap_err();
        assert!(e.contains("session_secret"), "{e:?}");
        let mut v = base.clone();
        v["session_secret"] = json!("short");
        v["session_cookie_name"] = json!("bad name");
        v["session_cookie_same_site"] = json!("None");
        v["session_cookie_secure"] = json!(false);
        v["login_action"] = json!("redirect");
        let e = Config::parse(&v, &NoRefs).unwrap_err();
        for field in [
            "session_secret",
            "session_cookie_name",
            "session_cookie_secure",
            "login_redirect_uri",
        ] {
            assert!(e.contains(field), "{field}: {e:?}");
        }
        let mut v = base;
        v["session_secret"] = json!(["k".repeat(32), "o".repeat(40)]);
        let c = Config::parse(&v, &NoRefs).unwrap();
        assert_eq!(c.browser.session_secret.len(), 2);
        assert_eq!(c.browser.session_cookie_name, "session");
        assert_eq!(c.browser.session_cookie_same_site, SameSite::Lax);
        assert_eq!(c.browser.login_action, LoginAction::Upstream);
        assert_eq!(
            c.browser.logout_methods,
            [LogoutMethod::Post, LogoutMethod::Delete]
        );
        // Machine clients keep their methods without a secret.
        let c = Config::parse(
            &json!({"issuer": "https://idp", "client_id": ["m"], "client_secret": ["s"]}),
            &NoRefs,
        )
        .unwrap();
        assert_eq!(c.auth_methods, DEFAULT_AUTH_METHODS);
    }
}
