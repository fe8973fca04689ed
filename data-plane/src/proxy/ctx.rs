//! What every request on the node may touch ([`ProxyCtx`]) and the connection it arrived on
//! ([`Connection`]).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::header::{HeaderName, HeaderValue};

use super::upstream::UpstreamClients;
use crate::metrics::Metrics;
use crate::runtime::{RuntimeConfig, Scheme};

/// What a request needs from the node, and nothing else: the current configuration, the metrics, the
/// upstream pools and the request-id header. The configuration cell and the metrics are shared with
/// the rest of the node; the upstream pools belong to the proxy.
pub struct ProxyCtx {
    pub(super) config: Arc<ArcSwapOption<RuntimeConfig>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) upstreams: UpstreamClients,
    pub(super) request_id_header: HeaderName,
}

impl ProxyCtx {
    /// A context reading `config`, counting into `metrics` and connecting through `upstreams`.
    pub fn new(
        config: Arc<ArcSwapOption<RuntimeConfig>>,
        metrics: Arc<Metrics>,
        upstreams: UpstreamClients,
        request_id_header: HeaderName,
    ) -> ProxyCtx {
        ProxyCtx {
            config,
            metrics,
            upstreams,
            request_id_header,
        }
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's port.
    pub local_port: u16,
    pub scheme: Scheme,
    /// The client's IP address and the listener's port as header values, made once per connection for
    /// the forwarded headers of each of its requests.
    pub peer_value: HeaderValue,
    pub port_value: HeaderValue,
}

impl Connection {
    pub fn new(peer: SocketAddr, local_port: u16, scheme: Scheme) -> Connection {
        let peer_value = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        Connection {
            peer,
            local_port,
            scheme,
            peer_value,
            port_value: HeaderValue::from(local_port),
        }
    }
}
