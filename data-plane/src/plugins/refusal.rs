//! A plugin's answer instead of the upstream's: its status, Kong's JSON body (none for a redirect), the
//! fields it is sent with (`WWW-Authenticate`, `Retry-After`, `Location`, `Set-Cookie`) and the reason it
//! is counted under. The proxy turns it into a response like every other error it answers itself
//! (`ProxyError::Plugin`).

use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use smallvec::SmallVec;

use crate::body::{json_response_fields, ProxyBody};

/// Why a plugin answered the request itself (or, for a preflight, that it answered it).
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    body: Option<Value>,
    fields: SmallVec<[(HeaderName, HeaderValue); 2]>,
    reason: &'static str,
}

impl Refusal {
    /// A refusal with `status` and the JSON `body`, counted under `reason` (a short metric label).
    pub fn new(status: StatusCode, body: Value, reason: &'static str) -> Refusal {
        Refusal {
            status,
            body: Some(body),
            fields: SmallVec::new(),
            reason,
        }
    }

    /// An answer with `status` and no body (a preflight's 200).
    pub fn empty(status: StatusCode, reason: &'static str) -> Refusal {
        Refusal {
            status,
            body: None,
            fields: SmallVec::new(),
            reason,
        }
    }

    /// A `302 Found` to `location`, without a body.
    pub fn redirect(location: HeaderValue, reason: &'static str) -> Refusal {
        Refusal::empty(StatusCode::FOUND, reason).with_field(http::header::LOCATION, location)
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

    /// The refusal with field `name` set to `value` on the answer (added to any earlier one of that name).
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

    /// The JSON body, if it has one.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The answer the client gets.
    pub fn response(&self) -> Response<ProxyBody> {
        match &self.body {
            Some(body) => json_response_fields(self.status, body, &self.fields),
            None => {
                let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
                *resp.status_mut() = self.status;
                for (name, value) in &self.fields {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
                resp
            }
        }
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
            r.body().unwrap()["message"],
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

    #[test]
    fn a_redirect_has_no_body_and_keeps_every_cookie() {
        let r = Refusal::redirect(
            HeaderValue::from_static("https://idp/authorize?x=1"),
            "login",
        )
        .with_field(http::header::SET_COOKIE, HeaderValue::from_static("a=1"))
        .with_field(http::header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let resp = r.response();
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(resp.headers()["location"], "https://idp/authorize?x=1");
        assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 2);
        assert!(r.body().is_none());
    }
}
