//! The response-headers and log phases: the upstream's head made ready for the client (hop-by-hop
//! fields out, the balancer's cookie in, an upgrade's tunnel started), then through the plugins that
//! ran, then their log hooks.

use std::time::Duration;

use http::header;
use http::Response;

use super::access::Ran;
use super::context::RequestCtx;
use super::rewrite::Upgrade;
use super::route::Routed;
use super::upstream_request::Answered;
use crate::body::ProxyBody;
use crate::plugins::Exchange;
use crate::proxy::{forward, upgrade};

/// The response-headers phase: the response the client gets.
pub fn headers(
    cx: &mut RequestCtx<'_>,
    routed: &Routed<'_>,
    ex: &Exchange,
    ran: &Ran,
    upgrade: Upgrade,
    answered: Answered,
) -> Response<ProxyBody> {
    let (mut parts, body) = answered.response.into_parts();
    let switched = (parts.status == http::StatusCode::SWITCHING_PROTOCOLS)
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    if let Some(cookie) = answered.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    let total = cx.started.elapsed();
    cx.measured.took = Some(total);
    forward::strip_hop_by_hop(&mut parts.headers);
    cx.measured.latencies = Some((answered.elapsed, total.saturating_sub(answered.elapsed)));
    if let (Some(protocol), Some(client)) = (switched, upgrade.client) {
        if let Some(upstream) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
            match upgrade.over_h2 {
                true => upgrade::as_http2_accept(&mut parts),
                false => upgrade::restore(&mut parts.headers, protocol),
            }
            let service = &routed.service.service;
            let timeouts = (
                Duration::from_millis(service.read_timeout),
                Duration::from_millis(service.write_timeout),
            );
            upgrade::tunnel(client, upstream, timeouts, cx.node.metrics.clone());
        }
    }
    for (name, value) in &ex.answer_fields {
        parts.headers.append(name.clone(), value.clone());
    }
    for p in ran {
        p.header_filter(ex, &mut parts);
    }
    Response::from_parts(parts, body)
}

/// The log phase: each plugin that ran learns the status the client got.
pub fn log(ex: &Exchange, ran: &Ran, status: u16) {
    for p in ran {
        p.log(ex, status);
    }
}
