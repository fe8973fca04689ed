//! Config schema of `cors` (Kong's field set). An origin is `*`, an exact origin
//! (`https://app.example.com`) or a regular expression (anything with other characters than letters,
//! digits, `.`, `:`, `/` and `-`), matched whole.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entity::Resolver;
use crate::http_syntax;
use crate::schema::{FieldErrors, Fields};

/// The plugin's name.
pub const NAME: &str = "cors";
/// The schema version this release speaks.
pub const VERSION: &str = "1.0.0";
/// Fields that hold secrets.
pub const SECRET_FIELDS: &[&str] = &[];

/// The methods a preflight may be allowed, and the default list.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// A validated `cors` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Empty, or `*` alone: every origin.
    pub origins: Vec<String>,
    /// `Access-Control-Allow-Headers`; empty: the preflight's `Access-Control-Request-Headers` echoed.
    pub headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub methods: Vec<String>,
    /// Seconds a browser may cache a preflight's answer.
    pub max_age: Option<u64>,
    pub credentials: bool,
    pub private_network: bool,
    /// Send preflights on to the upstream instead of answering them.
    pub preflight_continue: bool,
    /// Add the response fields to requests without `Origin` too.
    pub allow_origin_absent: bool,
}

/// True when the origin entry is written as a regular expression rather than an exact origin.
pub fn is_regex_origin(origin: &str) -> bool {
    origin
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'-')))
}

impl Config {
    /// Validates a raw config, filling in defaults.
    pub fn parse(v: &Value, _resolver: &dyn Resolver) -> Result<Config, FieldErrors> {
        let mut f = Fields::new(v, "")?;
        let origins = f.strings("origins");
        for (i, origin) in origins.iter().enumerate() {
            if origin != "*" && is_regex_origin(origin) && regex::Regex::new(origin).is_err() {
                f.error(
                    &format!("origins.{}", i + 1),
                    format!("'{origin}' is not a valid regex"),
                );
            }
        }
        let headers = f.strings("headers");
        let exposed_headers = f.strings("exposed_headers");
        for (field, names) in [("headers", &headers), ("exposed_headers", &exposed_headers)] {
            for (i, name) in names.iter().enumerate() {
                if !http_syntax::is_header_name(name) {
                    f.error(
                        &format!("{field}.{}", i + 1),
                        http_syntax::INVALID_HEADER_NAME,
                    );
                }
            }
        }
        let methods = f
            .opt_many_of("methods", &METHODS)
            .unwrap_or_else(|| METHODS.iter().map(|m| m.to_string()).collect());
        let max_age = f.opt_int("max_age", 0, i32::MAX as i64).map(|n| n as u64);
        let credentials = f.bool_or("credentials", false);
        let private_network = f.bool_or("private_network", false);
        let preflight_continue = f.bool_or("preflight_continue", false);
        let allow_origin_absent = f.bool_or("allow_origin_absent", true);
        f.finish().into_result(Config {
            origins,
            headers,
            exposed_headers,
            methods,
            max_age,
            credentials,
            private_network,
            preflight_continue,
            allow_origin_absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::describe::NoEntities as Nothing;
    use serde_json::json;

    #[test]
    fn defaults_allow_every_origin_and_method() {
        let c = Config::parse(&json!({}), &Nothing).unwrap();
        assert!(c.origins.is_empty() && c.headers.is_empty());
        assert_eq!(c.methods.len(), 9);
        assert!(!c.credentials && !c.preflight_continue && c.allow_origin_absent);
        assert_eq!(c.max_age, None);
    }

    #[test]
    fn origins_are_exact_or_valid_regexes() {
        assert!(!is_regex_origin("https://app.example.com:8443"));
        assert!(is_regex_origin(r"https://.*\.example\.com"));
        let e = Config::parse(&json!({"origins": ["https://ok.test", "(unclosed"], "methods": ["GET", "FETCH"], "headers": ["bad header"]}), &Nothing)
            .unwrap_err();
        assert_eq!(e.get("origins.2"), Some("'(unclosed' is not a valid regex"));
        assert!(e.contains("methods.2") && e.contains("headers.1"), "{e:?}");
    }
}
