//! One request's life as named phases over one context ([`RequestCtx`]), in Kong's order:
//!
//! | phase | module | what happens | who may answer |
//! |---|---|---|---|
//! | route | [`route`] | target length, Route match, Service, protocol check | the proxy (404, 414, 426, 503) |
//! | rewrite | [`rewrite`] | protocol upgrade noted, the plugins' view of the request made | the proxy (426) |
//! | access | [`access`] | plugins' `access` hooks in priority order | a plugin ([`crate::plugins::Refusal`]) |
//! | upstream request | [`upstream_request`] | upstream path, `Host`, forwarded fields, body framing; the exchange | the proxy (400, 502, 503, 504) |
//! | response headers | [`response::headers`] | hop-by-hop fields, sticky cookie, upgrade tunnel; plugins' `header_filter` | — |
//! | log | [`response::log`] | plugins' `log` hooks with the status | — |
//!
//! The body streams to the client after the phases: nothing here holds it. Every answer the proxy or
//! a plugin gives instead of the upstream is a [`ProxyError`].

pub mod access;
pub mod context;
pub mod response;
pub mod rewrite;
pub mod route;
pub mod upstream_request;

use std::time::{Duration, Instant};

use http::{Request, Response};

use crate::body::{ProxyBody, RequestBody};
use crate::plugins::RequestId;
use crate::proxy::ctx::{Connection, ProxyCtx};
use crate::proxy::error::ProxyError;
use crate::runtime::RuntimeConfig;
pub use context::{Measured, Outcome, Received, RequestCtx};

/// Runs the phases for one request.
pub async fn run(
    node: &ProxyCtx,
    rt: &RuntimeConfig,
    req: Request<RequestBody>,
    conn: &Connection,
    rid: &RequestId,
    started: Instant,
) -> Outcome {
    let mut cx = RequestCtx {
        node,
        rt,
        conn,
        rid,
        started,
        received: Received::of(&req),
        measured: Measured::default(),
    };
    let result = phases(&mut cx, req).await;
    Outcome {
        measured: cx.measured,
        result,
    }
}

/// The phases in order; the first error ends the request.
async fn phases(
    cx: &mut RequestCtx<'_>,
    req: Request<RequestBody>,
) -> Result<(Response<ProxyBody>, Option<Duration>), ProxyError> {
    let routed = route::route(cx, &req)?;
    let (mut ex, upgrade) = rewrite::rewrite(cx, &routed, req)?;
    let ran = access::access(cx, &routed, &mut ex).await?;
    let answered = upstream_request::send(cx, &routed, &mut ex, &upgrade).await?;
    let elapsed = answered.elapsed;
    let resp = response::headers(cx, &routed, &ex, &ran, upgrade, answered);
    response::log(&ex, &ran, resp.status().as_u16());
    Ok((resp, Some(elapsed)))
}
