//! Config schema of `oauth2-introspection` (Kong's field set, plus `negative_ttl`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{anonymous_field, url_field};
use crate::entity::Resolver;
use crate::http_syntax;
use crate::schema::{FieldErrors, Fields};

/// The plugin's name.
pub const NAME: &str = "oauth2-introspection";
/// The schema version this release speaks.
pub const VERSION: &str = "1.0.0";
/// Fields that hold secrets.
/// Fields that hold secrets. Headers sent to the identity provider often carry credentials too.
pub const SECRET_FIELDS: &[&str] = &["authorization_value", "custom_introspection_headers"];

crate::keywords! {
    /// The claim that names the Consumer: `username` matches a Consumer's username, `client_id` its
    /// `custom_id` (Kong's rule).
    pub enum ConsumerBy { Username = "username", ClientId = "client_id" }
}

/// A validated `oauth2-introspection` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub introspection_url: String,
    pub authorization_value: String,
    pub token_type_hint: Option<String>,
    /// Seconds a positive result is cached, never past the token's `exp`; 0 means "until `exp`".
    pub ttl: u64,
    /// Seconds an `active:false` result is cached.
    pub negative_ttl: u64,
    pub hide_credentials: bool,
    /// Milliseconds for the introspection call.
    pub timeout: u64,
    /// Milliseconds an idle pooled connection to the identity provider is kept.
    pub keepalive: u64,
    pub introspect_request: bool,
    pub custom_introspection_headers: BTreeMap<String, String>,
    pub custom_claims_forward: Vec<String>,
    /// Where the groups the `acl` plugin reads are in the introspection response (a claim path); empty:
    /// the token sets none.
    #[serde(default)]
    pub authenticated_groups_claim: Vec<String>,
    /// Where the names of the request's consumer groups are (a claim path); empty: the Consumer's.
    #[serde(default)]
    pub consumer_groups_claim: Vec<String>,
    /// Let the request through when the claim names no consumer group (else 403).
    #[serde(default)]
    pub consumer_groups_optional: bool,
    /// `username` or `client_id`.
    pub consumer_by: ConsumerBy,
    pub anonymous: Option<String>,
    pub run_on_preflight: bool,
}

impl Config {
    /// Validates a raw config, filling in defaults.
    pub fn parse(v: &Value, resolver: &dyn Resolver) -> Result<Config, FieldErrors> {
        let mut f = Fields::new(v, "")?;
        let introspection_url = url_field(&mut f, "introspection_url", true).unwrap_or_default();
        let authorization_value = f.string("authorization_value").unwrap_or_default();
        let token_type_hint = f.opt_string("token_type_hint").filter(|s| !s.is_empty());
        let ttl = f.int_or("ttl", 0, i32::MAX as i64, 30) as u64;
        let negative_ttl = f.int_or("negative_ttl", 0, i32::MAX as i64, 5) as u64;
        let hide_credentials = f.bool_or("hide_credentials", false);
        let timeout = f.int_or("timeout", 1, i32::MAX as i64, 10_000) as u64;
        let keepalive = f.int_or("keepalive", 0, i32::MAX as i64, 60_000) as u64;
        let introspect_request = f.bool_or("introspect_request", false);
        let custom_introspection_headers = f
            .opt_string_map("custom_introspection_headers")
            .unwrap_or_default();
        f.check(
            "authorization_value",
            &authorization_value,
            http_syntax::is_header_value,
            http_syntax::INVALID_HEADER_VALUE,
        );
        for (name, value) in &custom_introspection_headers {
            let field = format!("custom_introspection_headers.{name}");
            f.check(
                &field,
                name,
                http_syntax::is_header_name,
                http_syntax::INVALID_HEADER_NAME,
            );
            f.check(
                &field,
                value,
                http_syntax::is_header_value,
                http_syntax::INVALID_HEADER_VALUE,
            );
        }
        let custom_claims_forward = f.strings("custom_claims_forward");
        let authenticated_groups_claim = f.strings("authenticated_groups_claim");
        let consumer_groups_claim = f.strings("consumer_groups_claim");
        let consumer_groups_optional = f.bool_or("consumer_groups_optional", false);
        let consumer_by = f.opt_keyword("consumer_by").unwrap_or(ConsumerBy::Username);
        let anonymous = anonymous_field(&mut f, resolver);
        let run_on_preflight = f.bool_or("run_on_preflight", true);
        let errors = f.finish();
        errors.into_result(Config {
            introspection_url,
            authorization_value,
            token_type_hint,
            ttl,
            negative_ttl,
            hide_credentials,
            timeout,
            keepalive,
            introspect_request,
            custom_introspection_headers,
            custom_claims_forward,
            authenticated_groups_claim,
            consumer_groups_claim,
            consumer_groups_optional,
            consumer_by,
            anonymous,
            run_on_preflight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Kind;
    use serde_json::json;
    use uuid::Uuid;

    struct Consumers;
    impl Resolver for Consumers {
        fn resolve(&self, kind: Kind, key: &str) -> Option<Uuid> {
            (kind == Kind::Consumer && key == "anon").then(Uuid::nil)
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = Config::parse(
            &json!({"introspection_url": "https://idp/introspect", "authorization_value": "Basic eDp5"}),
            &Consumers,
        )
        .unwrap();
        assert_eq!(
            (c.ttl, c.negative_ttl, c.timeout, c.keepalive),
            (30, 5, 10_000, 60_000)
        );
        assert_eq!(c.consumer_by, ConsumerBy::Username);
        assert!(c.run_on_preflight && !c.hide_credentials);
    }

    #[test]
    fn errors_name_each_field() {
        let e = Config::parse(
            &json!({"introspection_url": "ftp://x", "ttl": -1, "consumer_by": "email", "anonymous": "ghost", "colour": 1}),
            &Consumers,
        )
        .unwrap_err();
        for field in [
            "introspection_url",
            "authorization_value",
            "ttl",
            "consumer_by",
            "anonymous",
            "colour",
        ] {
            assert!(e.contains(field), "{field} missing in {e:?}");
        }
    }

    #[test]
    fn anonymous_must_exist() {
        let ok = json!({"introspection_url": "http://idp/i", "authorization_value": "x", "anonymous": "anon"});
        assert!(Config::parse(&ok, &Consumers).is_ok());
    }
}
