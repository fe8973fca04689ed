//! The plugin pipeline: a trait with default no-op hooks, one factory per plugin building each instance once
//! per snapshot, and [`registry`] listing every plugin in execution order.
//!
//! Adding a plugin: its config schema in `shared::plugins`, its implementation here, one line in
//! [`registry`], one end-to-end test.

mod consumers;
pub mod credentials;
mod exchange;
pub mod idp;
pub mod introspection_answer;
pub mod oauth2_introspection;
pub mod oidc_issuer;
pub mod openid_connect;

pub use consumers::{anonymous_consumer, find_consumer, ConsumerField, ConsumerIndex};
pub use exchange::{Exchange, RequestId, BODY_INSPECT_LIMIT};
pub use idp::IdpClients;

use std::sync::Arc;

use http::{HeaderValue, Response};
use serde_json::Value;
use shared::ConfigState;

use crate::body::ProxyBody;
use crate::cache::Caches;
use crate::metrics::Metrics;

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
/// instance is built so counting on the request path allocates nothing. A handful of names: a scan beats
/// hashing the name.
pub struct Events {
    counters: Vec<(&'static str, Arc<std::sync::atomic::AtomicU64>)>,
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
        if let Some((_, c)) = self.counters.iter().find(|(n, _)| *n == name) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
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

/// Hex SHA-256 prefix of a token, safe to log for correlation.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..6])
}

/// [`claim_header_value`] as a header value (`None` when it cannot be one). Strings and integers, the
/// usual claims, are turned into one without an intermediate string.
pub fn claim_header(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::String(s) => HeaderValue::from_str(s).ok(),
        Value::Number(n) if n.is_i64() => {
            HeaderValue::from_str(itoa::Buffer::new().format(n.as_i64()?)).ok()
        }
        Value::Number(n) if n.is_u64() => {
            HeaderValue::from_str(itoa::Buffer::new().format(n.as_u64()?)).ok()
        }
        _ => HeaderValue::from_str(&claim_header_value(v)?).ok(),
    }
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
