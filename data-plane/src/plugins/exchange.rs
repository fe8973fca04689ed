//! One request as it passes through the plugins: its parts, its body (read once when a plugin needs it),
//! the matched route and service, and the Consumer it was authenticated as.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use shared::{Consumer, Route, Service};
use smallvec::SmallVec;

use super::refusal::Refusal;
use crate::body::RequestBody;
use crate::header_block::HeaderBlock;

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

    /// 128 random bits in hex. The ids of a thread are cut from one shared block, so making one
    /// allocates only once per [`IDS_PER_BLOCK`] ids.
    pub fn random() -> RequestId {
        thread_local! {
            static BLOCK: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
        }
        let mut hex = [0u8; 32];
        hex::encode_to_slice(rand::random::<[u8; 16]>(), &mut hex)
            .expect("32 bytes hold 16 in hex");
        let id = BLOCK.with_borrow_mut(|block| {
            if block.capacity() < hex.len() {
                *block = BytesMut::with_capacity(hex.len() * IDS_PER_BLOCK);
            }
            block.extend_from_slice(&hex);
            block.split().freeze()
        });
        RequestId(HeaderValue::from_maybe_shared(id).expect("hex digits are a valid header value"))
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

/// How many request ids one allocation holds (see [`RequestId::random`]).
const IDS_PER_BLOCK: usize = 128;

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
    /// The credential the request was authenticated with (a digest of its access token), for limits per
    /// credential.
    pub credential: Option<super::credentials::token::CredentialId>,
    /// Groups an auth plugin found in the token (`authenticated_groups_claim`), for `acl`.
    pub authenticated_groups: Option<Arc<super::groups::Groups>>,
    /// Consumer groups an auth plugin mapped from the token (`consumer_groups_claim`); when unset, the
    /// request's consumer groups are the authenticated Consumer's.
    pub consumer_groups: Option<Arc<super::groups::Groups>>,
    /// The request's id, for logs.
    pub request_id: RequestId,
    /// Blocks of fields sent upstream after `parts.headers` (see [`Exchange::add_upstream_block`]).
    pub added: SmallVec<[Arc<HeaderBlock>; 1]>,
    /// Whether the request came over TLS (the listener's scheme).
    pub tls: bool,
    /// The client's `Origin` field, kept for the response phase: the request's fields are moved into the
    /// upstream request before it.
    pub origin: Option<HeaderValue>,
    /// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub preflight: bool,
    /// Fields a plugin adds to the client's answer (a renewed session cookie), appended to the
    /// upstream's response head.
    pub answer_fields: SmallVec<[(HeaderName, HeaderValue); 1]>,
}

impl Exchange {
    /// Reads the whole body (once) so a plugin can inspect it; the same bytes are then sent upstream.
    pub async fn buffered_body(&mut self) -> Result<Bytes, Refusal> {
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
                    Err(_) => Err(Refusal::message(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large to inspect for credentials",
                        "body_too_large",
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

    /// Sets a header to be sent upstream.
    pub fn set_upstream(&mut self, name: &HeaderName, value: HeaderValue) {
        self.parts.headers.insert(name.clone(), value);
    }

    /// Adds a block of fields to be sent upstream, made once and shared (a cache entry's derived headers).
    /// Its names must be the plugin's own: ones it removed from the client's headers
    /// ([`Exchange::strip_identity_headers`]) and that no other plugin sets, so they are sent once.
    pub fn add_upstream_block(&mut self, block: Arc<HeaderBlock>) {
        self.added.push(block);
    }

    /// Sets a header to be sent upstream, its name and value checked on the way (invalid ones are
    /// skipped). Names known in advance go through [`Exchange::set_upstream`] instead.
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

    /// The request's consumer groups: those an auth plugin's claim named, else the Consumer's.
    pub fn consumer_groups_in(
        &self,
        memberships: &super::groups::Memberships,
    ) -> Option<Arc<super::groups::Groups>> {
        self.consumer_groups.clone().or_else(|| {
            let consumer = self.consumer.as_ref()?;
            memberships.consumer_groups_of(&consumer.id).cloned()
        })
    }

    /// Sets the Consumer and its `X-Consumer-*` headers.
    pub fn set_consumer(&mut self, c: &Arc<Consumer>, anonymous: bool) {
        static ID: HeaderName = HeaderName::from_static("x-consumer-id");
        static USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
        static CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
        static ANONYMOUS: HeaderName = HeaderName::from_static("x-anonymous-consumer");
        let mut id = uuid::Uuid::encode_buffer();
        let id = c.id.hyphenated().encode_lower(&mut id);
        self.set_upstream(
            &ID,
            HeaderValue::from_str(id).expect("a UUID is a valid header value"),
        );
        if let Some(v) = c
            .username
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            self.set_upstream(&USERNAME, v);
        }
        if let Some(v) = c
            .custom_id
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            self.set_upstream(&CUSTOM_ID, v);
        }
        if anonymous {
            self.set_upstream(&ANONYMOUS, HeaderValue::from_static("true"));
        }
        self.consumer = Some(c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_hex_across_blocks() {
        let ids: Vec<RequestId> = (0..IDS_PER_BLOCK * 3 + 5)
            .map(|_| RequestId::random())
            .collect();
        let distinct: std::collections::HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.as_str().len(), 32);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
