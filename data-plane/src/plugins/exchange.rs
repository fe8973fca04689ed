//! One request as it passes through the plugins: its parts, its body (read once when a plugin needs it),
//! the matched route and service, and the Consumer it was authenticated as.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use shared::{Consumer, Route, Service};

use crate::body::{json_response, ProxyBody, RequestBody};

/// A request's id: the client's when it sent a usable one under the configured header, else a new random
/// one. It is kept as the header value it is forwarded and answered with, so passing it on copies nothing.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id (`sent`) when it is visible ASCII of at most 200 bytes, else a new one.
    pub fn from_client(sent: Option<&HeaderValue>) -> RequestId {
        match sent.filter(|v| !v.is_empty() && v.len() <= 200 && v.to_str().is_ok()) {
            Some(v) => RequestId(v.clone()),
            None => RequestId::random(),
        }
    }

    /// 128 random bits in hex.
    pub fn random() -> RequestId {
        let mut hex = [0u8; 32];
        hex::encode_to_slice(rand::random::<[u8; 16]>(), &mut hex)
            .expect("32 bytes hold 16 in hex");
        RequestId(HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value"))
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever kept (see `from_client`).
        self.0.to_str().unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest body a plugin buffers to look for credentials.
pub const BODY_INSPECT_LIMIT: usize = 1024 * 1024;

/// One request as it passes through the plugins.
pub struct Exchange {
    /// Method, URI and headers as they will be sent upstream (plugins may change them).
    pub parts: http::request::Parts,
    pub body: RequestBody,
    pub client_ip: IpAddr,
    pub route: Arc<Route>,
    pub service: Option<Arc<Service>>,
    /// The authenticated (or anonymous) Consumer, shared with the snapshot's Consumer index.
    pub consumer: Option<Arc<Consumer>>,
    /// The request's id, for logs.
    pub request_id: RequestId,
}

impl Exchange {
    /// Reads the whole body (once) so a plugin can inspect it; the same bytes are then sent upstream.
    pub async fn buffered_body(&mut self) -> Result<Bytes, Response<ProxyBody>> {
        match std::mem::replace(&mut self.body, RequestBody::Empty) {
            RequestBody::Buffered(b) => {
                self.body = RequestBody::Buffered(b.clone());
                Ok(b)
            }
            RequestBody::Empty => Ok(Bytes::new()),
            RequestBody::Streaming(incoming) => {
                let limited = http_body_util::Limited::new(incoming, BODY_INSPECT_LIMIT);
                match limited.collect().await {
                    Ok(c) => {
                        let b = c.to_bytes();
                        self.body = RequestBody::Buffered(b.clone());
                        Ok(b)
                    }
                    Err(_) => Err(json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &serde_json::json!({"message": "request body too large to inspect for credentials"}),
                        &[],
                    )),
                }
            }
        }
    }

    /// Replaces the body (and its Content-Length).
    pub fn set_body(&mut self, b: Bytes) {
        self.parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
        self.body = RequestBody::Buffered(b);
    }

    /// The media type of the request body, lowercase, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
    }

    /// Sets a header to be sent upstream (invalid values are skipped).
    pub fn set_upstream_header(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.parts.headers.insert(n, v);
        }
    }

    /// Removes identity headers a client might send to impersonate someone.
    pub fn strip_identity_headers(&mut self) {
        let spoofable: Vec<http::HeaderName> = self
            .parts
            .headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                n.starts_with("x-consumer-")
                    || n.starts_with("x-credential-")
                    || n.starts_with("x-authenticated-")
                    || n == "x-anonymous-consumer"
            })
            .cloned()
            .collect();
        for k in spoofable {
            self.parts.headers.remove(k);
        }
    }

    /// Sets the Consumer and its `X-Consumer-*` headers.
    pub fn set_consumer(&mut self, c: &Arc<Consumer>, anonymous: bool) {
        self.set_upstream_header("x-consumer-id", &c.id.to_string());
        if let Some(u) = &c.username {
            self.set_upstream_header("x-consumer-username", u);
        }
        if let Some(cid) = &c.custom_id {
            self.set_upstream_header("x-consumer-custom-id", cid);
        }
        if anonymous {
            self.set_upstream_header("x-anonymous-consumer", "true");
        }
        self.consumer = Some(c.clone());
    }
}
