//! The parts of JWT validation that need no key: the JOSE header's shape (RFC 7515) and the registered
//! claims' types and times (RFC 7519). Signatures are checked by the data plane with the issuer's keys;
//! everything else is decided here, strictly: a claim of the wrong type makes the token invalid, it is
//! never skipped.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Why a token's header or claims were refused. Messages name the claim and never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The compact serialization is not three base64url segments, or the header is not a JSON object.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header lists critical extensions (RFC 7515 §4.1.11); this gateway understands none.
    #[error("JWT header has critical extensions this gateway does not understand: {0}")]
    Critical(String),
    /// A header parameter has the wrong type.
    #[error("JWT header parameter '{0}' has the wrong type")]
    HeaderType(&'static str),
    /// A registered claim has the wrong JSON type.
    #[error("claim '{0}' has the wrong type")]
    ClaimType(&'static str),
    /// A claim the rules require is absent.
    #[error("claim '{0}' is missing")]
    Missing(&'static str),
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("issuer is not the expected one")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("audience does not name this gateway")]
    WrongAudience,
}

impl JwtError {
    /// True when the claims are well formed but the token is outside its validity window: an answer
    /// about the token, not a fault of whoever issued the claims.
    pub fn is_outside_validity(&self) -> bool {
        matches!(self, JwtError::Expired | JwtError::NotYetValid)
    }
}

/// The JOSE header parameters this gateway reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    /// `alg`, as written (the caller decides which algorithms it accepts).
    pub alg: String,
    /// `kid`, when present.
    pub kid: Option<String>,
    /// `typ`, when present.
    pub typ: Option<String>,
}

/// Splits a compact JWS and reads its header strictly: three segments, a JSON object header with a string
/// `alg`, string `kid`/`typ` when present, and no `crit` (no extension is understood, so any is refused).
pub fn parse_header(token: &str) -> Result<JoseHeader, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated segments"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(JwtError::Malformed("header is not a JSON object"));
    };
    if let Some(crit) = map.get("crit") {
        let names = match crit {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => return Err(JwtError::HeaderType("crit")),
        };
        return Err(JwtError::Critical(names));
    }
    let alg = match map.get("alg") {
        Some(Value::String(a)) => a.clone(),
        Some(_) => return Err(JwtError::HeaderType("alg")),
        None => return Err(JwtError::Malformed("header has no 'alg'")),
    };
    Ok(JoseHeader {
        alg,
        kid: opt_header_string(&map, "kid")?,
        typ: opt_header_string(&map, "typ")?,
    })
}

fn opt_header_string(
    map: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::HeaderType(name)),
    }
}

/// What the registered claims must satisfy besides their types.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimRules<'a> {
    /// When set, `iss` must be present, a string, and equal to it.
    pub issuer: Option<&'a str>,
    /// When set, `aud` must be present and name it (a string, or an array of strings holding it).
    pub audience: Option<&'a str>,
    /// `exp` must be present.
    pub require_exp: bool,
    /// `iat` must be present.
    pub require_iat: bool,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
}

/// Checks the registered claims of a decoded payload at time `now` (Unix seconds): the payload is an
/// object; `exp`, `nbf`, `iat` are numbers; `iss`, `sub`, `jti`, `azp` are strings; `aud` is a string or a
/// non-empty array of strings; then times against `now` and the issuer and audience against the rules.
pub fn check_claims(claims: &Value, rules: &ClaimRules<'_>, now: i64) -> Result<(), JwtError> {
    let Value::Object(map) = claims else {
        return Err(JwtError::Malformed("claims are not a JSON object"));
    };
    let exp = numeric_date(map, "exp")?;
    let nbf = numeric_date(map, "nbf")?;
    let iat = numeric_date(map, "iat")?;
    let iss = string_claim(map, "iss")?;
    for name in ["sub", "jti", "azp"] {
        string_claim(map, name)?;
    }
    let aud = audience(map)?;

    let now = now as f64;
    let leeway = rules.leeway as f64;
    match exp {
        Some(exp) if now >= exp + leeway => return Err(JwtError::Expired),
        None if rules.require_exp => return Err(JwtError::Missing("exp")),
        _ => {}
    }
    if nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(JwtError::NotYetValid);
    }
    if iat.is_none() && rules.require_iat {
        return Err(JwtError::Missing("iat"));
    }
    if let Some(expected) = rules.issuer {
        match iss {
            None => return Err(JwtError::Missing("iss")),
            Some(iss) if iss != expected => return Err(JwtError::WrongIssuer),
            Some(_) => {}
        }
    }
    if let Some(expected) = rules.audience {
        match aud {
            None => return Err(JwtError::Missing("aud")),
            Some(list) if !list.contains(&expected) => return Err(JwtError::WrongAudience),
            Some(_) => {}
        }
    }
    Ok(())
}

/// A NumericDate claim: absent, or a JSON number (integer or fraction); anything else is a type error.
fn numeric_date(map: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::ClaimType(name)),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}

fn string_claim<'a>(
    map: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}

/// `aud`: a string, or a non-empty array of strings (RFC 7519 §4.1.3).
fn audience(map: &Map<String, Value>) -> Result<Option<Vec<&str>>, JwtError> {
    match map.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().ok_or(JwtError::ClaimType("aud")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(JwtError::ClaimType("aud")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://idp.example";

    fn token(header: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        format!("{h}.e30.c2ln")
    }

    fn bearer() -> ClaimRules<'static> {
        ClaimRules {
            issuer: Some(ISS),
            require_exp: true,
            ..ClaimRules::default()
        }
    }

    fn good() -> Value {
        json!({"iss": ISS, "sub": "alex", "exp": NOW + 60, "nbf": NOW - 5, "iat": NOW - 5, "aud": ["a", "b"]})
    }

    fn with(claim: &str, value: Value) -> Value {
        let mut c = good();
        c[claim] = value;
        c
    }

    fn without(claim: &str) -> Value {
        let mut c = good();
        c.as_object_mut().unwrap().remove(claim);
        c
    }

    #[test]
    fn headers_are_read_strictly() {
        let h = parse_header(&token(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}))).unwrap();
        assert_eq!((h.alg.as_str(), h.kid.as_deref()), ("ES256", Some("k1")));
        for (header, why) in [
            (json!({"alg": "ES256", "crit": ["exp"], "exp": 1}), "crit"),
            (json!({"alg": "ES256", "crit": []}), "empty crit"),
            (json!({"alg": "ES256", "crit": "b64"}), "crit as a string"),
            (json!({"kid": "k1"}), "no alg"),
            (json!({"alg": 1}), "alg as a number"),
            (json!({"alg": "ES256", "kid": 7}), "kid as a number"),
            (json!(["alg"]), "header as an array"),
        ] {
            assert!(parse_header(&token(&header)).is_err(), "{why}");
        }
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.c2ln", "bm90IGpzb24.e30.c2ln"] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn well_formed_claims_pass() {
        assert_eq!(check_claims(&good(), &bearer(), NOW), Ok(()));
        assert_eq!(
            check_claims(&with("aud", json!("a")), &bearer(), NOW),
            Ok(())
        );
        assert_eq!(
            check_claims(&with("exp", json!(NOW as f64 + 0.5)), &bearer(), NOW),
            Ok(())
        );
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused() {
        for (claim, value) in [
            ("iss", json!(42)),
            ("iss", json!([ISS])),
            ("iss", json!(null)),
            ("nbf", json!((NOW + 600).to_string())),
            ("nbf", json!("0")),
            ("exp", json!((NOW + 600).to_string())),
            ("exp", json!(null)),
            ("iat", json!("yesterday")),
            ("aud", json!(7)),
            ("aud", json!([])),
            ("aud", json!(["a", 1])),
            ("azp", json!(["a"])),
            ("sub", json!(1)),
            ("jti", json!({})),
        ] {
            assert_eq!(
                check_claims(&with(claim, value.clone()), &bearer(), NOW),
                Err(JwtError::ClaimType(claim)),
                "{claim} = {value}"
            );
        }
        assert!(check_claims(&json!([1]), &bearer(), NOW).is_err());
    }

    #[test]
    fn times_issuer_and_audience_are_enforced() {
        let rules = bearer();
        assert_eq!(
            check_claims(&without("iss"), &rules, NOW),
            Err(JwtError::Missing("iss"))
        );
        assert_eq!(
            check_claims(&without("exp"), &rules, NOW),
            Err(JwtError::Missing("exp"))
        );
        assert_eq!(
            check_claims(&with("iss", json!("https://evil.example")), &rules, NOW),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            check_claims(&with("exp", json!(NOW)), &rules, NOW),
            Err(JwtError::Expired)
        );
        assert_eq!(
            check_claims(&with("nbf", json!(NOW + 10)), &rules, NOW),
            Err(JwtError::NotYetValid)
        );
        let lenient = ClaimRules {
            leeway: 30,
            ..rules
        };
        assert_eq!(
            check_claims(&with("exp", json!(NOW - 10)), &lenient, NOW),
            Ok(())
        );
        assert_eq!(
            check_claims(&with("nbf", json!(NOW + 10)), &lenient, NOW),
            Ok(())
        );
        // Without an expected issuer, iss may be absent but is still type-checked.
        let open = ClaimRules {
            issuer: None,
            ..rules
        };
        assert_eq!(check_claims(&without("iss"), &open, NOW), Ok(()));
        assert!(check_claims(&with("iss", json!(1)), &open, NOW).is_err());
        let addressed = ClaimRules {
            audience: Some("b"),
            require_iat: true,
            ..rules
        };
        assert_eq!(check_claims(&good(), &addressed, NOW), Ok(()));
        assert_eq!(
            check_claims(&with("aud", json!("c")), &addressed, NOW),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            check_claims(&without("aud"), &addressed, NOW),
            Err(JwtError::Missing("aud"))
        );
        assert_eq!(
            check_claims(&without("iat"), &addressed, NOW),
            Err(JwtError::Missing("iat"))
        );
    }
}
