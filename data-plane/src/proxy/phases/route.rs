//! The route phase: the request target's length, the Route that matches, its Service, and whether the
//! Route takes the request's protocol.

use std::sync::Arc;

use http::header::HeaderValue;
use http::Request;

use super::context::RequestCtx;
use crate::body::RequestBody;
use crate::proxy::error::ProxyError;
use crate::router::RequestInfo;
use crate::runtime::{RouteEntry, Scheme, ServiceEntry};

/// Longest request target accepted.
const MAX_URI_LEN: usize = 8 * 1024;

/// Where the request goes: its Route and that Route's (enabled) Service.
pub struct Routed<'a> {
    pub entry: &'a RouteEntry,
    pub service: Arc<ServiceEntry>,
    /// How much of the request path the Route's path matched.
    pub matched_len: usize,
}

/// Finds the request's Route and Service, or the reason it has none.
pub fn route<'a>(
    cx: &mut RequestCtx<'a>,
    req: &Request<RequestBody>,
) -> Result<Routed<'a>, ProxyError> {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URI_LEN {
        return Err(ProxyError::UriTooLong);
    }
    let rt = cx.rt;
    let (host, port) = cx.received.host_port();
    let m = rt
        .router
        .find(&RequestInfo {
            method: req.method().as_str(),
            host: &host,
            port: port.or(Some(cx.conn.local_port)),
            path: cx.received.uri.path(),
            headers: req.headers(),
        })
        .ok_or(ProxyError::NoRoute)?;
    let entry = &rt.routes[&m.route_id];
    let route = &entry.route;
    let service = route
        .service
        .and_then(|fk| rt.services.get(&fk.id).cloned());
    cx.measured.series = Some(cx.node.metrics.requests.get(
        route.id,
        service.as_ref().map(|s| s.service.id),
        || {
            (
                route.name.clone().unwrap_or_else(|| route.id.to_string()),
                service
                    .as_ref()
                    .map(|s| s.label.clone())
                    .unwrap_or_default(),
            )
        },
    ));
    if !entry.accepts(cx.conn.scheme) {
        return Err(match entry.https_redirect {
            Some(status) if cx.conn.scheme == Scheme::Http => {
                let target = cx.received.uri.path_and_query().map_or("/", |p| p.as_str());
                match HeaderValue::from_str(&format!("https://{host}{target}")) {
                    Ok(location) => ProxyError::HttpsRedirect { status, location },
                    Err(_) => ProxyError::ProtocolNotAllowed,
                }
            }
            _ => ProxyError::ProtocolNotAllowed,
        });
    }
    let service = service.ok_or(ProxyError::NoService)?;
    if !service.service.enabled {
        return Err(ProxyError::ServiceDisabled);
    }
    Ok(Routed {
        entry,
        service,
        matched_len: m.matched_len,
    })
}
