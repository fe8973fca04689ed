//! Every way the proxy itself answers a request instead of the upstream: one enum that decides the
//! status, Kong's message, the upstream-error metric label, the log line and whether trying again would
//! be safe.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;
use tracing::{debug, warn};

use crate::body::{json_response, ProxyBody};
use crate::metrics::Metrics;
use crate::plugins::Refusal;

/// Why the proxy answered itself.
#[derive(Debug)]
pub enum ProxyError {
    /// No configuration has been applied yet.
    NotConfigured,
    /// The request target is longer than the node accepts.
    UriTooLong,
    /// No Route matches.
    NoRoute,
    /// The Route does not accept the request's protocol (plain HTTP to an HTTPS-only Route).
    ProtocolNotAllowed,
    /// A request that is not a WebSocket handshake on a `ws`/`wss` Route.
    WebSocketOnly,
    /// Plain HTTP to an HTTPS-only Route whose `https_redirect_status_code` redirects: go to `location`.
    HttpsRedirect {
        status: StatusCode,
        location: HeaderValue,
    },
    /// The Route has no Service.
    NoService,
    /// The Service is disabled.
    ServiceDisabled,
    /// The upstream URL cannot be formed from the request.
    BadUpstreamUri,
    /// The Service's Upstream has no healthy Target to send to (or less healthy weight than its
    /// threshold).
    NoHealthyPeer,
    /// No connection to the upstream could be made (every attempt failed); nothing was sent.
    UpstreamConnect {
        /// Connection attempts made.
        attempts: usize,
        /// The last failure and its causes.
        detail: String,
    },
    /// The upstream broke the exchange after the request was (maybe partly) sent.
    UpstreamProtocol {
        /// The failure and its causes.
        detail: String,
    },
    /// No response head within the Service's read + write timeouts.
    UpstreamTimeout,
    /// A plugin answered instead of the upstream (authentication, authorization, limits).
    Plugin {
        plugin: &'static str,
        refusal: Refusal,
    },
    /// The client's request body broke while it was being sent upstream (malformed chunked framing, or
    /// the client went away): the client's fault, and the upstream connection that carried the partial
    /// request is closed.
    ClientBody {
        /// The failure and its causes.
        detail: String,
    },
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotConfigured
            | ProxyError::NoService
            | ProxyError::ServiceDisabled
            | ProxyError::NoHealthyPeer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::ProtocolNotAllowed | ProxyError::WebSocketOnly => {
                StatusCode::UPGRADE_REQUIRED
            }
            ProxyError::HttpsRedirect { status, .. } => *status,
            ProxyError::Plugin { refusal, .. } => refusal.status(),
            ProxyError::BadUpstreamUri | ProxyError::ClientBody { .. } => StatusCode::BAD_REQUEST,
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamProtocol { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Kong's message for it (a redirect has none; a plugin's refusal carries its own body).
    pub fn message(&self) -> &'static str {
        match self {
            ProxyError::NotConfigured => "no configuration has been loaded yet",
            ProxyError::UriTooLong => "Request-URI Too Long",
            ProxyError::NoRoute => "no Route matched with those values",
            ProxyError::ProtocolNotAllowed => "Please use HTTPS protocol",
            ProxyError::WebSocketOnly => "This route only accepts WebSocket handshakes",
            ProxyError::HttpsRedirect { .. } | ProxyError::Plugin { .. } => "",
            ProxyError::NoService => "no Service found with those values",
            ProxyError::ServiceDisabled => "Service unavailable",
            ProxyError::BadUpstreamUri | ProxyError::ClientBody { .. } => "Bad request",
            ProxyError::NoHealthyPeer => "failure to get a peer from the ring-balancer",
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamProtocol { .. } => {
                "An invalid response was received from the upstream server"
            }
            ProxyError::UpstreamTimeout => "The upstream server is timing out",
        }
    }

    /// The `kind` label of `portcullis_upstream_errors_total`, for failures of the upstream.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            ProxyError::UpstreamConnect { .. } => Some("connect"),
            ProxyError::UpstreamProtocol { .. } => Some("protocol"),
            ProxyError::UpstreamTimeout => Some("timeout"),
            _ => None,
        }
    }

    /// True when the upstream cannot have seen the request, so sending it again could not repeat it.
    pub fn retry_safe(&self) -> bool {
        !matches!(
            self,
            ProxyError::UpstreamProtocol { .. }
                | ProxyError::UpstreamTimeout
                | ProxyError::ClientBody { .. }
        )
    }

    /// Counts and logs a failure of the exchange: the upstream's, or the client's body (nothing for the
    /// others, which are the configuration's doing and show in the request metrics by status).
    pub fn record(&self, metrics: &Metrics, service: &str, upstream: &str, request_id: &str) {
        if let ProxyError::ClientBody { detail } = self {
            metrics.client_errors.add(&[("kind", "body")], 1);
            debug!(request_id, upstream, service, error = %detail, "request body broken by the client");
            return;
        }
        let Some(kind) = self.upstream_kind() else {
            return;
        };
        let count = match self {
            ProxyError::UpstreamConnect { attempts, .. } => *attempts as u64,
            _ => 1,
        };
        metrics
            .upstream_errors
            .add(&[("service", service), ("kind", kind)], count);
        let detail = match self {
            ProxyError::UpstreamConnect { detail, .. } => format!("connect: {detail}"),
            ProxyError::UpstreamProtocol { detail } => detail.clone(),
            _ => "timeout".into(),
        };
        warn!(request_id, upstream, service, error = %detail, retry_safe = self.retry_safe(), "upstream request failed");
    }

    /// The text of a Kong `{"message": …}` answer, when this error has one (a redirect has no body; a
    /// plugin's refusal may have another).
    pub fn kong_message(&self) -> Option<&str> {
        match self {
            ProxyError::HttpsRedirect { .. } => None,
            ProxyError::Plugin { refusal, .. } => {
                let body = refusal.body()?.as_object()?;
                match (body.len(), body.get("message")) {
                    (1, Some(serde_json::Value::String(m))) => Some(m),
                    _ => None,
                }
            }
            _ => Some(self.message()),
        }
    }

    /// The Kong-style answer (the request id header is added to every response by `handle`).
    pub fn response(&self) -> Response<ProxyBody> {
        match self {
            ProxyError::HttpsRedirect { status, location } => {
                let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
                *resp.status_mut() = *status;
                resp.headers_mut()
                    .insert(header::LOCATION, location.clone());
                resp
            }
            ProxyError::ProtocolNotAllowed => {
                let mut resp = error(self.status(), self.message());
                let h = resp.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(
                    header::UPGRADE,
                    HeaderValue::from_static("TLS/1.2, HTTP/1.1"),
                );
                resp
            }
            ProxyError::WebSocketOnly => {
                let mut resp = error(self.status(), self.message());
                let h = resp.headers_mut();
                h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                resp
            }
            ProxyError::Plugin { refusal, .. } => refusal.response(),
            ProxyError::ClientBody { .. } => {
                // The rest of what the client sent cannot be framed: the connection ends here.
                let mut resp = error(self.status(), self.message());
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                resp
            }
            _ => error(self.status(), self.message()),
        }
    }
}

/// A Kong-style error body.
pub fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(status, &json!({ "message": message }), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_decides_status_message_label_and_retry_safety() {
        let connect = ProxyError::UpstreamConnect {
            attempts: 3,
            detail: "refused".into(),
        };
        let protocol = ProxyError::UpstreamProtocol {
            detail: "reset".into(),
        };
        let client_body = ProxyError::ClientBody {
            detail: "invalid chunk size".into(),
        };
        let cases = [
            (&ProxyError::NoRoute, 404, None, true),
            (&ProxyError::UriTooLong, 414, None, true),
            (&ProxyError::ProtocolNotAllowed, 426, None, true),
            (&ProxyError::WebSocketOnly, 426, None, true),
            (&ProxyError::NoService, 503, None, true),
            (&ProxyError::NotConfigured, 503, None, true),
            (&connect, 502, Some("connect"), true),
            (&protocol, 502, Some("protocol"), false),
            (&ProxyError::UpstreamTimeout, 504, Some("timeout"), false),
            (&client_body, 400, None, false),
        ];
        for (e, status, kind, safe) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.upstream_kind(), kind, "{e:?}");
            assert_eq!(e.retry_safe(), safe, "{e:?}");
            assert_eq!(e.response().status().as_u16(), status);
        }
        assert_eq!(
            ProxyError::NoRoute.message(),
            "no Route matched with those values"
        );
        let metrics = Metrics::default();
        connect.record(&metrics, "svc", "127.0.0.1:1", "rid");
        assert_eq!(
            metrics
                .upstream_errors
                .get(&[("service", "svc"), ("kind", "connect")]),
            3,
            "every connection attempt is counted"
        );
        client_body.record(&metrics, "svc", "127.0.0.1:1", "rid");
        assert_eq!(metrics.client_errors.get(&[("kind", "body")]), 1);
        assert_eq!(
            metrics
                .upstream_errors
                .get(&[("service", "svc"), ("kind", "protocol")]),
            0,
            "a broken request body is not the upstream's failure"
        );
        assert_eq!(client_body.response().headers()["connection"], "close");
    }
}
