//! What one request carries through the phases: the node's and the configuration's parts it may touch,
//! the connection it came on, what it looked like on arrival, and what is measured on the way.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Response, Uri};

use crate::body::ProxyBody;
use crate::metrics::Series;
use crate::plugins::RequestId;
use crate::proxy::ctx::{Connection, ProxyCtx};
use crate::proxy::error::ProxyError;
use crate::proxy::forward;
use crate::runtime::RuntimeConfig;

/// One request's context, made when it arrives and read by every phase.
pub struct RequestCtx<'a> {
    pub node: &'a ProxyCtx,
    /// The configuration the request started with (a new snapshot does not change it mid-way).
    pub rt: &'a RuntimeConfig,
    pub conn: &'a Connection,
    pub rid: &'a RequestId,
    pub started: Instant,
    pub received: Received,
    pub measured: Measured,
}

/// The request's target and `Host` as they arrived (plugins may change the ones sent upstream):
/// reference-counted copies, so keeping them copies nothing.
pub struct Received {
    pub uri: Uri,
    pub host: Option<HeaderValue>,
}

impl Received {
    pub fn of<B>(req: &http::Request<B>) -> Received {
        Received {
            uri: req.uri().clone(),
            host: req.headers().get(header::HOST).cloned(),
        }
    }

    /// The host the client named: `Host`, else the target's authority (HTTP/2), else empty.
    pub fn host_header(&self) -> &str {
        self.host
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
    }

    /// [`Received::host_header`] split into its name (lower case) and port.
    pub fn host_port(&self) -> (Cow<'_, str>, Option<u16>) {
        forward::split_host_port(self.host_header())
    }
}

/// What the phases learn for the request's metrics on the way.
#[derive(Default)]
pub struct Measured {
    /// The request-metrics series of the matched Route (none when nothing matched).
    pub series: Option<Arc<Series>>,
    /// How long the request took until its response head was ready, when the phases measured it.
    pub took: Option<Duration>,
    /// Upstream and proxy latency of a proxied response, for its headers ([`crate::proxy::stamp::Stamp`]).
    pub latencies: Option<(Duration, Duration)>,
}

/// What became of a request.
pub struct Outcome {
    pub measured: Measured,
    /// The response and, when the upstream answered, how long it took; or why the proxy answered.
    pub result: Result<(Response<ProxyBody>, Option<Duration>), ProxyError>,
}
