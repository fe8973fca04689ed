//! The `openid-connect` fields of the UserInfo endpoint (OpenID Connect Core 5.3): the `userinfo` auth
//! method (an access token is valid when the endpoint answers it), and `search_user_info` (its claims
//! complete the token's for consumer mapping, groups and headers). Kong 3.x names and defaults.

use serde::{Deserialize, Serialize};

use crate::plugins::url_field;
use crate::schema::Fields;

/// The UserInfo fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The endpoint; discovery's `userinfo_endpoint` when unset.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The answer asked for: JSON (Kong also offers `application/jwt`, which is not read here).
    #[serde(default = "json_media_type")]
    pub userinfo_accept: String,
    /// Ask the endpoint for claims missing from a token, and read them as the token's.
    #[serde(default)]
    pub search_user_info: bool,
    /// Keep answers per token until it expires (or `cache_ttl`).
    #[serde(default = "yes")]
    pub cache_user_info: bool,
}

fn yes() -> bool {
    true
}

fn json_media_type() -> String {
    "application/json".into()
}

impl UserInfo {
    pub(super) fn parse(f: &mut Fields<'_>) -> UserInfo {
        let userinfo_endpoint = url_field(f, "userinfo_endpoint", false);
        let userinfo_accept = f
            .opt_one_of("userinfo_accept", &["application/json", "application/jwt"])
            .unwrap_or_else(json_media_type);
        UserInfo {
            userinfo_endpoint,
            userinfo_accept,
            search_user_info: f.bool_or("search_user_info", false),
            cache_user_info: f.bool_or("cache_user_info", true),
        }
    }
}
