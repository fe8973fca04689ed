//! The plugin pipeline: a trait with default no-op hooks, one factory per plugin building each instance once
//! per snapshot, and [`registry`] listing every plugin in execution order.
//!
//! Adding a plugin: its config schema in `shared::plugins`, its implementation here, one line in
//! [`registry`], one end-to-end test.

pub mod credentials;
pub mod introspection_answer;
pub mod oauth2_introspection;
pub mod oidc_issuer;
pub mod openid_connect;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use shared::{ConfigState, Consumer, Route, Service};

use crate::cache::Caches;
use crate::metrics::Metrics;

/// Error type of bodies on the proxy path.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the proxy sends.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response with extra headers.
pub fn json_response(
    status: StatusCode,
    body: &Value,
    headers: &[(&str, String)],
) -> Response<ProxyBody> {
    let mut resp = Response::new(full(serde_json::to_vec(body).expect("json serialises")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    resp
}

/// The request body: still streaming from the client, or read whole by a plugin that needed it.
pub enum RequestBody {
    Streaming(hyper::body::Incoming),
    Buffered(Bytes),
    Empty,
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
    /// A request id for logs.
    pub request_id: String,
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

/// A plugin instance. Hooks run in registry order; `access` may answer the request itself.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// Before proxying. `Err` is the response to send instead of proxying.
    async fn access(&self, _ex: &mut Exchange) -> Result<(), Response<ProxyBody>> {
        Ok(())
    }
    /// On the upstream's response headers.
    fn header_filter(&self, _ex: &Exchange, _resp: &mut http::response::Parts) {}
    /// After the response was sent.
    fn log(&self, _ex: &Exchange, _status: u16) {}
}

/// Per-instance event counters (cache hits, misses, identity-provider calls), resolved once when the
/// instance is built so counting on the request path allocates nothing.
pub struct Events {
    counters: HashMap<&'static str, Arc<std::sync::atomic::AtomicU64>>,
}

impl Events {
    /// Registers `names` for plugin `plugin`, instance `instance`.
    pub fn new(
        metrics: &Metrics,
        plugin: &'static str,
        instance: &str,
        names: &[&'static str],
    ) -> Events {
        let counters = names
            .iter()
            .map(|n| {
                (
                    *n,
                    metrics.plugin_events.with(&[
                        ("plugin", plugin),
                        ("instance", instance),
                        ("event", n),
                    ]),
                )
            })
            .collect();
        Events { counters }
    }

    /// Counts one event (names not registered are ignored).
    pub fn add(&self, name: &str) {
        if let Some(c) = self.counters.get(name) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Pooled HTTP clients to identity providers, shared across snapshots so connections stay warm.
#[derive(Default)]
pub struct IdpClients {
    clients: Mutex<HashMap<(u64, u64, bool), reqwest::Client>>,
    /// Extra CA certificates (PEM) to trust for identity providers.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl IdpClients {
    /// Clients that also trust the CA certificates in `extra_ca_pem`.
    pub fn new(extra_ca_pem: Option<Vec<u8>>) -> Self {
        IdpClients {
            clients: Mutex::default(),
            extra_ca_pem,
        }
    }

    /// A client with `timeout_ms` per call and `keepalive_ms` idle lifetime of pooled connections.
    pub fn get(
        &self,
        timeout_ms: u64,
        keepalive_ms: u64,
        verify_tls: bool,
    ) -> Result<reqwest::Client, String> {
        let key = (timeout_ms, keepalive_ms, verify_tls);
        let mut clients = self.clients.lock().expect("client pool lock");
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms))
            .pool_idle_timeout(Duration::from_millis(keepalive_ms.max(1)))
            .pool_max_idle_per_host(64)
            .danger_accept_invalid_certs(!verify_tls)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &self.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("identity provider CA file: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        let c = b
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        clients.insert(key, c.clone());
        Ok(c)
    }
}

/// Node-wide resources plugin instances are built with.
pub struct BuildCtx {
    pub state: Arc<ConfigState>,
    /// The snapshot's Consumers indexed for lookups on the request path.
    pub consumers: Arc<ConsumerIndex>,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub clients: Arc<IdpClients>,
}

/// Builds one instance from a plugin entity.
pub type Factory = fn(&shared::Plugin, &BuildCtx) -> Result<Arc<dyn Plugin>, String>;

/// Every plugin, in execution order, with its version.
pub fn registry() -> &'static [(&'static str, &'static str, Factory)] {
    &[
        (
            shared::plugins::openid_connect::NAME,
            shared::plugins::openid_connect::VERSION,
            openid_connect::build,
        ),
        (
            shared::plugins::oauth2_introspection::NAME,
            shared::plugins::oauth2_introspection::VERSION,
            oauth2_introspection::build,
        ),
    ]
}

/// A snapshot's Consumers by username, `custom_id` and id, built once per snapshot so mapping a token to
/// its Consumer costs one hash lookup however many Consumers there are.
#[derive(Debug, Default, Clone)]
pub struct ConsumerIndex {
    by_username: imbl::HashMap<String, Arc<Consumer>>,
    by_custom_id: imbl::HashMap<String, Arc<Consumer>>,
    by_id: imbl::HashMap<String, Arc<Consumer>>,
}

impl ConsumerIndex {
    /// Indexes every Consumer of `state`.
    pub fn build(state: &ConfigState) -> ConsumerIndex {
        let ids: Vec<uuid::Uuid> = state.consumers.keys().copied().collect();
        ConsumerIndex::default().updated(&ConfigState::default(), state, &ids)
    }

    /// The index after the Consumers `ids` changed from `old` to `new` (added, replaced or removed); the
    /// entries of every other Consumer are shared with this index.
    pub fn updated(
        &self,
        old: &ConfigState,
        new: &ConfigState,
        ids: &[uuid::Uuid],
    ) -> ConsumerIndex {
        let mut index = self.clone();
        for id in ids {
            if let Some(c) = old.consumers.get(id) {
                let mine = |e: Option<&Arc<Consumer>>| e.is_some_and(|e| e.id == *id);
                if let Some(u) = &c.username {
                    if mine(index.by_username.get(u)) {
                        index.by_username.remove(u);
                    }
                }
                if let Some(cid) = &c.custom_id {
                    if mine(index.by_custom_id.get(cid)) {
                        index.by_custom_id.remove(cid);
                    }
                }
                index.by_id.remove(&id.to_string());
            }
            if let Some(c) = new.consumers.get(id) {
                // One copy per Consumer, shared by the three maps.
                let c = Arc::new(c.clone());
                if let Some(u) = &c.username {
                    index.by_username.insert(u.clone(), c.clone());
                }
                if let Some(cid) = &c.custom_id {
                    index.by_custom_id.insert(cid.clone(), c.clone());
                }
                index.by_id.insert(c.id.to_string(), c.clone());
            }
        }
        index
    }

    /// The Consumer whose `field` (`username`, `custom_id` or `id`) equals `value`.
    pub fn find(&self, field: &str, value: &str) -> Option<&Arc<Consumer>> {
        let map = match field {
            "username" => &self.by_username,
            "custom_id" => &self.by_custom_id,
            "id" => &self.by_id,
            _ => return None,
        };
        map.get(value)
    }
}

/// Finds a Consumer by id or username.
pub fn find_consumer(state: &ConfigState, key: &str) -> Option<Consumer> {
    use shared::Resolver;
    let id = state.resolve(shared::Kind::Consumer, key)?;
    state.consumers.get(&id).cloned()
}

/// The Consumer a plugin's `anonymous` setting names, which must exist in the snapshot.
pub fn anonymous_consumer(
    state: &ConfigState,
    anonymous: &Option<String>,
) -> Result<Option<Arc<Consumer>>, String> {
    match anonymous {
        Some(a) => find_consumer(state, a)
            .map(|c| Some(Arc::new(c)))
            .ok_or_else(|| format!("anonymous consumer '{a}' does not exist")),
        None => Ok(None),
    }
}

/// Hex SHA-256 prefix of a token, safe to log for correlation.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..6])
}

/// A claim value as a header value: strings as they are, arrays joined by commas, others as JSON.
pub fn claim_header_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(claim_header_value)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_found_by_username_custom_id_and_id() {
        let mut state = ConfigState::default();
        for i in 0..1000u128 {
            let c = Consumer {
                id: uuid::Uuid::from_u128(i + 1),
                username: Some(format!("user-{i}")),
                custom_id: (i % 2 == 0).then(|| format!("client-{i}")),
                tags: vec![],
                created_at: 0,
                updated_at: 0,
            };
            state.consumers.insert(c.id, c);
        }
        let index = ConsumerIndex::build(&state);
        assert_eq!(
            index.find("username", "user-999").map(|c| c.id),
            Some(uuid::Uuid::from_u128(1000))
        );
        assert_eq!(
            index.find("custom_id", "client-10").map(|c| c.id),
            Some(uuid::Uuid::from_u128(11))
        );
        assert!(index.find("custom_id", "client-11").is_none());
        let id = uuid::Uuid::from_u128(7).to_string();
        assert_eq!(
            index.find("id", &id).and_then(|c| c.username.clone()),
            Some("user-6".to_string())
        );
        assert!(index.find("username", "nobody").is_none());
        // One shared copy per Consumer: a request that authenticates takes a reference, not a copy.
        let by_name = index.find("username", "user-10").unwrap();
        let by_id = index
            .find("id", &uuid::Uuid::from_u128(11).to_string())
            .unwrap();
        assert!(Arc::ptr_eq(by_name, by_id));
        assert!(index.find("email", "user-1").is_none());
    }
}
