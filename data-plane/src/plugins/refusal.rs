//! A plugin's answer instead of the upstream's: its status, Kong's JSON body, the fields it is sent with
//! (`WWW-Authenticate`, `Retry-After`) and the reason it is counted under. The proxy turns it into a
//! response like every other error it answers itself (`ProxyError::Plugin`).

use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use smallvec::SmallVec;

use crate::body::{json_response_fields, ProxyBody};

/// Why a plugin answered the request itself.
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    body: Value,
    fields: SmallVec<[(HeaderName, HeaderValue); 1]>,
    reason: &'static str,
}

impl Refusal {
    /// A refusal with `status` and the JSON `body`, counted under `reason` (a short metric label).
    pub fn new(status: StatusCode, body: Value, reason: &'static str) -> Refusal {
        Refusal {
            status,
            body,
            fields: SmallVec::new(),
            reason,
        }
    }

    /// Kong's `{"message": …}` body.
    pub fn message(
        status: StatusCode,
        message: impl Into<String>,
        reason: &'static str,
    ) -> Refusal {
        Refusal::new(status, json!({ "message": message.into() }), reason)
    }

    /// The 503 a plugin answers when the identity provider cannot decide; `what` says which call failed.
    pub fn idp_unavailable(what: &str) -> Refusal {
        Refusal::message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The identity provider is unavailable: {what}"),
            "idp_unavailable",
        )
        .with_field(http::header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// The refusal with field `name` set to `value` on the answer.
    pub fn with_field(mut self, name: HeaderName, value: HeaderValue) -> Refusal {
        self.fields.push((name, value));
        self
    }

    /// The refusal with `WWW-Authenticate: challenge` (a challenge that cannot be a field value is left
    /// out rather than sent broken).
    pub fn challenge(self, challenge: &str) -> Refusal {
        match HeaderValue::from_str(challenge) {
            Ok(v) => self.with_field(http::header::WWW_AUTHENTICATE, v),
            Err(_) => self,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The metric label it is counted under.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The JSON body.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The answer the client gets.
    pub fn response(&self) -> Response<ProxyBody> {
        json_response_fields(self.status, &self.body, &self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_provider_answers_503_with_retry_after() {
        let r = Refusal::idp_unavailable("introspection timed out");
        assert_eq!(
            (r.status(), r.reason()),
            (StatusCode::SERVICE_UNAVAILABLE, "idp_unavailable")
        );
        let resp = r.response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "5");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(
            r.body()["message"],
            "The identity provider is unavailable: introspection timed out"
        );
    }

    #[test]
    fn a_challenge_is_sent_as_www_authenticate_unless_it_cannot_be_a_field_value() {
        let r = Refusal::message(StatusCode::UNAUTHORIZED, "Unauthorized", "unauthorized")
            .challenge("Bearer realm=\"service\", error=\"invalid_token\"");
        assert_eq!(
            r.response().headers()["www-authenticate"],
            "Bearer realm=\"service\", error=\"invalid_token\""
        );
        let broken = Refusal::message(StatusCode::UNAUTHORIZED, "Unauthorized", "unauthorized")
            .challenge("Bearer\r\nSet-Cookie: a=b");
        let resp = broken.response();
        assert!(resp.headers().get("www-authenticate").is_none());
        assert!(resp.headers().get("set-cookie").is_none());
    }
}
