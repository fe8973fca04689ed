//! The upstream-request phase: the request as it goes upstream (path joined with the Service's, `Host`,
//! forwarded fields, the upgrade's fields, the body's framing), then the exchange itself, direct or
//! balanced over the Service's Upstream.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::Response;
use http_body_util::{BodyExt, Empty};

use super::context::RequestCtx;
use super::rewrite::Upgrade;
use super::route::Routed;
use crate::body::{full, ProxyBody, RequestBody};
use crate::plugins::Exchange;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{self, Downstream, Forwarded};
use crate::proxy::{grpc, send, upgrade};

/// The upstream's answer, how long it took, and the balancer's sticky cookie to set, if any.
pub struct Answered {
    pub response: Response<ProxyBody>,
    pub elapsed: Duration,
    pub set_cookie: Option<HeaderValue>,
}

/// Makes the upstream request from what the access phase left and sends it.
pub async fn send(
    cx: &RequestCtx<'_>,
    routed: &Routed<'_>,
    ex: &mut Exchange,
    upgrade: &Upgrade,
) -> Result<Answered, ProxyError> {
    let mut out = outgoing(cx, routed, ex, upgrade)?;
    let target = &routed.service;
    let mut set_cookie = None;
    let sent = match &target.balancer {
        Some(b) => {
            // Hashing on a header sees the request as it goes upstream.
            out.forwarded_in_map();
            let (hash, cookie) =
                b.hash_input(&out.headers, cx.conn.peer.ip(), ex.consumer.as_deref());
            set_cookie = cookie;
            send::balanced(cx.node, target, b, hash, out).await
        }
        None => send::direct(cx.node, target, out).await,
    };
    let (response, elapsed) = sent.inspect_err(|e| {
        e.record(
            &cx.node.metrics,
            &target.label,
            target.authority.as_ref(),
            cx.rid.as_str(),
        )
    })?;
    Ok(Answered {
        response,
        elapsed,
        set_cookie,
    })
}

/// The request as it goes upstream.
fn outgoing(
    cx: &RequestCtx<'_>,
    routed: &Routed<'_>,
    ex: &mut Exchange,
    upgrade: &Upgrade,
) -> Result<send::Outgoing, ProxyError> {
    let (route, target) = (&routed.entry.route, &routed.service);
    let service = &target.service;
    let joined = forward::upstream_path(
        service.path.as_deref(),
        ex.parts.uri.path(),
        routed.matched_len,
        route.strip_path,
        routed.entry.path_handling,
    );
    let path_and_query = match ex.parts.uri.path_and_query() {
        // The upstream gets the path the client sent: its own target is reused as it is.
        Some(sent) if joined == ex.parts.uri.path() => sent.clone(),
        // The Route took the whole path: the Service's own path, made once per snapshot.
        _ if ex.parts.uri.query().is_none() && joined == target.base_path.as_str() => {
            target.base_path.clone()
        }
        _ => {
            let mut joined = joined.into_owned();
            if let Some(q) = ex.parts.uri.query() {
                joined.push('?');
                joined.push_str(q);
            }
            joined
                .parse::<http::uri::PathAndQuery>()
                .map_err(|_| ProxyError::BadUpstreamUri)?
        }
    };
    let received = &cx.received;
    let host_header = received.host_header();
    let host_value = if route.preserve_host && !host_header.is_empty() {
        received
            .host
            .clone()
            .or_else(|| HeaderValue::from_str(host_header).ok())
    } else {
        Some(target.host_header.clone())
    };
    // A gRPC call's own deadline bounds the upstream exchange too.
    let deadline = grpc::is_grpc(&ex.parts.headers)
        .then(|| grpc::deadline(&ex.parts.headers))
        .flatten();
    let mut headers = forward::request_headers(std::mem::take(&mut ex.parts.headers), host_value);
    let (host, port) = received.host_port();
    let conn = cx.conn;
    let mut forwarded = Forwarded::new(
        &Downstream {
            client: &conn.peer_value,
            scheme: conn.scheme,
            host: &host,
            port: match port {
                Some(p) if p != conn.local_port => HeaderValue::from(p),
                _ => conn.port_value.clone(),
            },
            path: received.uri.path(),
        },
        (&cx.node.request_id_header, cx.rid.header_value()),
    );
    forwarded.added = std::mem::take(&mut ex.added);
    if let Some(protocol) = &upgrade.protocol {
        upgrade::restore(&mut headers, protocol.clone());
        if upgrade.over_h2 {
            upgrade::add_http1_handshake(&mut headers);
            ex.parts.method = http::Method::GET;
        }
    }
    if service.protocol.is_grpc() {
        // Required on gRPC requests ("TE: trailers"), though hop-by-hop in general.
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let body: ProxyBody = match std::mem::replace(&mut ex.body, RequestBody::Empty) {
        RequestBody::Streaming(inc) => crate::body::from_client(inc),
        RequestBody::Buffered(bytes) => full(bytes),
        RequestBody::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
    };
    // A body of unknown length is sent chunked whatever the method: hyper's client would otherwise send
    // a GET, HEAD or CONNECT body as no body at all. (gRPC is HTTP/2 only, where the field is illegal;
    // an HTTPS upstream that chose HTTP/2 has it dropped by hyper's client.)
    if !service.protocol.is_grpc()
        && !http_body::Body::is_end_stream(&body)
        && http_body::Body::size_hint(&body).exact().is_none()
    {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    Ok(send::Outgoing {
        method: ex.parts.method.clone(),
        path_and_query,
        headers,
        forwarded: Some(forwarded),
        body,
        deadline,
        upgrade: upgrade.protocol.is_some(),
    })
}
