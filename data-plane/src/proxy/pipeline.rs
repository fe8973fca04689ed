//! One request through the node: route → plugins (`access`) → forward upstream → plugins
//! (`header_filter`, `log`). Everything the proxy answers itself is a [`ProxyError`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use shared::protocol::Family;
use smallvec::SmallVec;

use super::error::ProxyError;
use super::forward::{self, Downstream, Forwarded};
use super::grpc;
use super::send;
use super::upgrade;
use super::ProxyCtx;
use crate::body::{full, ProxyBody, RequestBody};
use crate::metrics::Series;
use crate::plugins::{Exchange, RequestId};
use crate::router::RequestInfo;
use crate::runtime::RuntimeConfig;

/// Longest request target accepted.
const MAX_URI_LEN: usize = 8 * 1024;

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

/// What became of a request.
pub struct Outcome {
    pub measured: Measured,
    /// The response and, when the upstream answered, how long it took; or why the proxy answered.
    pub result: Result<(Response<ProxyBody>, Option<Duration>), ProxyError>,
}

/// What the pipeline learns for the request's metrics on the way.
#[derive(Default)]
pub struct Measured {
    /// The request-metrics series of the matched Route (none when nothing matched).
    pub series: Option<Arc<Series>>,
    /// How long the request took until its response head was ready, when the pipeline measured it.
    pub took: Option<Duration>,
    /// Upstream and proxy latency of a proxied response, for its headers ([`super::stamp::Stamp`]).
    pub latencies: Option<(Duration, Duration)>,
}

/// Runs the pipeline for one request.
pub async fn run(
    ctx: &ProxyCtx,
    rt: &RuntimeConfig,
    req: Request<RequestBody>,
    conn: &Connection,
    rid: &RequestId,
    started: Instant,
) -> Outcome {
    let mut measured = Measured::default();
    let result = pipeline(ctx, rt, req, conn, rid, started, &mut measured).await;
    Outcome { measured, result }
}

async fn pipeline(
    ctx: &ProxyCtx,
    rt: &RuntimeConfig,
    mut req: Request<RequestBody>,
    conn: &Connection,
    rid: &RequestId,
    started: Instant,
    measured: &mut Measured,
) -> Result<(Response<ProxyBody>, Option<Duration>), ProxyError> {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URI_LEN {
        return Err(ProxyError::UriTooLong);
    }
    // Borrowed from copies of the request's own (reference-counted) values: nothing is copied.
    let uri = req.uri().clone();
    let host_value = req.headers().get(header::HOST).cloned();
    let host_header = host_value
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let (host, port) = forward::split_host_port(host_header);
    let path = uri.path();

    // Route.
    let m = rt
        .router
        .find(&RequestInfo {
            method: req.method().as_str(),
            host: &host,
            port: port.or(Some(conn.local_port)),
            path,
            headers: req.headers(),
        })
        .ok_or(ProxyError::NoRoute)?;
    let entry = &rt.routes[&m.route_id];
    let route = entry.route.clone();
    let target = route.service.and_then(|fk| rt.targets.get(&fk.id).cloned());
    measured.series = Some(ctx.metrics.requests.get(
        route.id,
        target.as_ref().map(|t| t.service.id),
        || {
            (
                route.name.clone().unwrap_or_else(|| route.id.to_string()),
                target.as_ref().map(|t| t.label.clone()).unwrap_or_default(),
            )
        },
    ));
    if !entry.accepts(conn.scheme) {
        return Err(match entry.https_redirect {
            Some(status) if conn.scheme == Scheme::Http => {
                let target = uri.path_and_query().map_or("/", |p| p.as_str());
                match HeaderValue::from_str(&format!("https://{host}{target}")) {
                    Ok(location) => ProxyError::HttpsRedirect { status, location },
                    Err(_) => ProxyError::ProtocolNotAllowed,
                }
            }
            _ => ProxyError::ProtocolNotAllowed,
        });
    }
    let target = target.ok_or(ProxyError::NoService)?;
    let service = target.service.clone();
    if !service.enabled {
        return Err(ProxyError::ServiceDisabled);
    }

    // Plugins, in priority order; one may answer instead of the upstream.
    // A protocol upgrade (WebSocket) keeps its headers upstream and its connection for the tunnel.
    let over_h2 = upgrade::is_extended_connect(&req);
    let upgrade = match over_h2 {
        true => Some(HeaderValue::from_static("websocket")),
        false => upgrade::requested(req.headers()),
    };
    let websocket = upgrade
        .as_ref()
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if entry.family == Family::WebSocket && !websocket {
        return Err(ProxyError::WebSocketOnly);
    }
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>());
    let (parts, body) = req.into_parts();
    let mut ex = Exchange {
        parts,
        body,
        client_ip: conn.peer.ip(),
        route: route.clone(),
        service: Some(service.clone()),
        consumer: None,
        request_id: rid.clone(),
        added: SmallVec::new(),
    };
    // The plugins that ran, for the response phases (inline: a route rarely has more than four).
    let mut ran: SmallVec<[_; 4]> = SmallVec::new();
    let protocol = entry.protocol(conn.scheme);
    for plugin in &rt.active_plugins {
        let consumer = ex.consumer.as_ref().map(|c| c.id);
        if let Some(p) = rt.plugin_for(plugin, protocol, route.id, Some(service.id), consumer) {
            if let Err(resp) = p.access(&mut ex).await {
                return Ok((resp, None));
            }
            ran.push(p.clone());
        }
    }

    // Forward.
    let joined = forward::upstream_path(
        service.path.as_deref(),
        ex.parts.uri.path(),
        m.matched_len,
        route.strip_path,
        entry.path_handling,
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
    let host_value = if route.preserve_host && !host_header.is_empty() {
        host_value
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
    let mut forwarded = Forwarded::new(
        &Downstream {
            client: &conn.peer_value,
            scheme: conn.scheme,
            host: &host,
            port: match port {
                Some(p) if p != conn.local_port => HeaderValue::from(p),
                _ => conn.port_value.clone(),
            },
            path,
        },
        (&ctx.request_id_header, rid.header_value()),
    );
    forwarded.added = std::mem::take(&mut ex.added);
    if let Some(protocol) = &upgrade {
        upgrade::restore(&mut headers, protocol.clone());
        if over_h2 {
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
    let mut out = send::Outgoing {
        method: ex.parts.method.clone(),
        path_and_query,
        headers,
        forwarded: Some(forwarded),
        body,
        deadline,
        upgrade: upgrade.is_some(),
    };
    let mut set_cookie = None;
    let sent = match &target.balancer {
        Some(b) => {
            // Hashing on a header sees the request as it goes upstream.
            out.forwarded_in_map();
            let (hash, cookie) = b.hash_input(&out.headers, conn.peer.ip(), ex.consumer.as_deref());
            set_cookie = cookie;
            send::balanced(ctx, &target, b, hash, out).await
        }
        None => send::direct(ctx, &target, out).await,
    };
    let (resp, upstream_elapsed) = sent.inspect_err(|e| {
        e.record(
            &ctx.metrics,
            &target.label,
            target.authority.as_ref(),
            rid.as_str(),
        )
    })?;

    // The response, through the plugins that ran.
    let (mut parts, body) = resp.into_parts();
    let switched = (parts.status == http::StatusCode::SWITCHING_PROTOCOLS)
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    if let Some(cookie) = set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    let total = started.elapsed();
    measured.took = Some(total);
    forward::strip_hop_by_hop(&mut parts.headers);
    measured.latencies = Some((upstream_elapsed, total.saturating_sub(upstream_elapsed)));
    if let (Some(protocol), Some(client)) = (switched, client_upgrade) {
        if let Some(upstream) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
            match over_h2 {
                true => upgrade::as_http2_accept(&mut parts),
                false => upgrade::restore(&mut parts.headers, protocol),
            }
            let timeouts = (
                Duration::from_millis(service.read_timeout),
                Duration::from_millis(service.write_timeout),
            );
            upgrade::tunnel(client, upstream, timeouts, ctx.metrics.clone());
        }
    }
    for p in &ran {
        p.header_filter(&ex, &mut parts);
    }
    let status = parts.status.as_u16();
    for p in &ran {
        p.log(&ex, status);
    }
    Ok((Response::from_parts(parts, body), Some(upstream_elapsed)))
}
