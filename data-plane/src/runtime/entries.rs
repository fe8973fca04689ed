//! What the request path keeps per Route and per Service, prepared once per snapshot: a Route's
//! protocols, path handling and redirect; a Service's upstream scheme, authority, `Host`, TLS settings and
//! balancer.

use std::collections::HashMap;
use std::sync::Arc;

use shared::protocol::{Family, Protocol, ProtocolSet};
use shared::{ConfigState, Route, Service};

use super::balancer::Balancer;
use super::certificates::ServerCertificates;
use super::upstream_tls::UpstreamTls;

/// Where a Service's requests go, prepared once per snapshot.
pub struct ServiceEntry {
    pub service: Arc<Service>,
    /// `http`/`https` as the upstream URI says it (`grpc` is HTTP/2 over `http`, `grpcs` over `https`).
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// `Host` sent upstream (unless the route preserves the client's).
    pub host_header: http::HeaderValue,
    /// The Service's path (`/` without one): the upstream target of a request whose path the Route
    /// strips entirely.
    pub base_path: http::uri::PathAndQuery,
    /// The Service's name (or id) for metrics and logs.
    pub label: String,
    /// The Service's own TLS settings toward its upstream, if it has any.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The Upstream the Service's host names, if any: requests are balanced over its Targets.
    pub balancer: Option<Arc<Balancer>>,
}

impl ServiceEntry {
    pub(super) fn new(
        service: &Service,
        state: &ConfigState,
        balancers: &HashMap<&str, &Arc<Balancer>>,
        certificates: &ServerCertificates,
    ) -> Result<ServiceEntry, String> {
        let balancer = balancers
            .get(service.host.to_ascii_lowercase().as_str())
            .map(|b| Arc::clone(b));
        let default_port = service.protocol.default_port();
        let authority = if service.port == default_port {
            service.host.clone()
        } else {
            format!("{}:{}", service.host, service.port)
        };
        Ok(ServiceEntry {
            service: Arc::new(service.clone()),
            scheme: if service.protocol.is_tls() {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            authority: authority
                .parse()
                .map_err(|_| format!("service {}: bad host or port", service.id))?,
            host_header: http::HeaderValue::from_str(
                balancer
                    .as_ref()
                    .and_then(|b| b.upstream.host_header.as_deref())
                    .unwrap_or(&authority),
            )
            .map_err(|_| format!("service {}: bad host", service.id))?,
            base_path: service
                .path
                .as_deref()
                .unwrap_or("/")
                .parse()
                .map_err(|_| format!("service {}: bad path", service.id))?,
            label: service
                .name
                .clone()
                .unwrap_or_else(|| service.id.to_string()),
            tls: UpstreamTls::of(service, state, certificates)?.map(Arc::new),
            balancer,
        })
    }
}

/// A Route as the request path uses it: its keyword fields resolved once per snapshot.
#[derive(Clone)]
pub struct RouteEntry {
    pub route: Arc<Route>,
    /// Its `protocols`: one family, in clear, over TLS or both.
    protocols: ProtocolSet,
    pub family: Family,
    pub path_handling: PathHandling,
    /// Where plain HTTP to an HTTPS-only Route is redirected with (`https_redirect_status_code` other
    /// than 426, which refuses instead).
    pub https_redirect: Option<http::StatusCode>,
}

impl RouteEntry {
    pub(super) fn new(route: &Route) -> RouteEntry {
        let protocols = ProtocolSet::of(&route.protocols);
        RouteEntry {
            protocols,
            family: protocols.family(),
            path_handling: PathHandling::of(&route.path_handling),
            https_redirect: match route.https_redirect_status_code {
                426 => None,
                code => http::StatusCode::from_u16(code).ok(),
            },
            route: Arc::new(route.clone()),
        }
    }

    /// The protocol of a request on this Route that came in over `scheme`: the Route's family (a gRPC
    /// Route's requests are gRPC, a WebSocket Route's are handshakes) over the listener's scheme.
    pub fn protocol(&self, scheme: Scheme) -> Protocol {
        self.family.over(scheme == Scheme::Https)
    }

    /// Whether a request that came in over `scheme` may use this Route.
    pub fn accepts(&self, scheme: Scheme) -> bool {
        self.protocols.contains(self.protocol(scheme))
    }
}

/// The protocol a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Kong's `path_handling`: how a Service path and a request path are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathHandling {
    /// A slash between the two parts unless one has it (Kong's default).
    V0,
    /// The parts concatenated as they are (a service path of `/` adds nothing).
    V1,
}

impl PathHandling {
    /// The Route's `path_handling` (validated by the control plane: `v0` or `v1`).
    pub fn of(value: &str) -> PathHandling {
        if value == "v1" {
            PathHandling::V1
        } else {
            PathHandling::V0
        }
    }
}
