//! What an identity provider's introspection answer (RFC 7662) says about a token, decided once for both
//! auth plugins: an answer that is not a JSON object, or whose registered claims have the wrong types, is
//! a fault of the provider (503); `active: false`, or claims outside their validity window, is an answer
//! about the token (401).

use serde_json::Value;
use shared::jwt::{self, ClaimRules};

/// Why an answer does not let the token through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The token is not (or no longer, or not yet) valid.
    Inactive(String),
    /// The provider's answer cannot be trusted or read.
    Fault(String),
}

/// Reads an answer body: a JSON object.
pub fn parse(body: &[u8]) -> Result<Value, Rejected> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Rejected::Fault(
            "answered with JSON that is not an object".into(),
        )),
        Err(_) => Err(Rejected::Fault(
            "answered with a body that is not JSON".into(),
        )),
    }
}

/// Judges an answer at time `now`: `active` must be `true` when `require_active`, and the registered
/// claims must be well typed and current.
pub fn judge(answer: Value, require_active: bool, now: i64) -> Result<Value, Rejected> {
    if require_active && answer.get("active") != Some(&Value::Bool(true)) {
        return Err(Rejected::Inactive("token is not active".into()));
    }
    match jwt::check_claims(&answer, &ClaimRules::default(), now) {
        Ok(()) => Ok(answer),
        Err(e) if e.is_outside_validity() => Err(Rejected::Inactive(e.to_string())),
        Err(e) => Err(Rejected::Fault(format!(
            "answered with invalid claims ({e})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_judged_by_kind() {
        let now = 1_000;
        assert!(judge(json!({"active": true, "exp": 2_000}), true, now).is_ok());
        assert!(matches!(
            judge(json!({"active": false}), true, now),
            Err(Rejected::Inactive(_))
        ));
        assert!(matches!(
            judge(json!({"active": "true"}), true, now),
            Err(Rejected::Inactive(_))
        ));
        assert!(matches!(
            judge(json!({"active": true, "exp": 10}), true, now),
            Err(Rejected::Inactive(_))
        ));
        assert!(matches!(
            judge(json!({"active": true, "exp": "x"}), true, now),
            Err(Rejected::Fault(_))
        ));
        assert!(judge(json!({"active": false}), false, now).is_ok());
        assert!(matches!(parse(b"[1]"), Err(Rejected::Fault(_))));
        assert!(matches!(parse(b"<html>"), Err(Rejected::Fault(_))));
    }
}
