//! One request from a client connection to its answer: the request id, the configuration it runs
//! with, the phases, what the proxy answers itself (gRPC-shaped for gRPC clients), and its metrics.
//! [`hyper_service`] is the same for requests hyper's server parsed, after the framing rules.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tracing::debug;

use super::ctx::{Connection, ProxyCtx};
use super::error::ProxyError;
use super::error_format::ErrorFormat;
use super::stamp::Stamp;
use super::{framing, grpc, phases};
use crate::body::{ProxyBody, RequestBody};
use crate::plugins::RequestId;

/// hyper's server, for the connections (and hand-offs) it serves.
pub(super) type ConnBuilder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// The hyper server's service for a connection: each request through [`handle`].
pub(super) fn hyper_service(
    ctx: Arc<ProxyCtx>,
    downstream: Connection,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (ctx, downstream) = (ctx.clone(), downstream.clone());
        async move {
            if let Err(refusal) = framing::check_parsed(&mut req) {
                return Ok(refused(&ctx, &downstream, refusal, req.version()));
            }
            let (mut resp, stamp) =
                handle(&ctx, req.map(RequestBody::Streaming), &downstream).await;
            stamp.apply(resp.headers_mut());
            Ok(resp)
        }
    })
}

/// The answer to a request head that hyper's server parsed and the framing rules refuse: its status,
/// and (HTTP/1.x) the end of the connection.
fn refused(
    ctx: &ProxyCtx,
    downstream: &Connection,
    refusal: framing::Refusal,
    version: http::Version,
) -> Response<ProxyBody> {
    ctx.metrics
        .client_errors
        .add(&[("kind", refusal.label())], 1);
    debug!(peer = %downstream.peer, reason = refusal.reason(), "request head refused");
    let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
    *resp.status_mut() = refusal.status();
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Handles one downstream request: the response, and the fields it is sent with (the request id under
/// the configured header on every response, whoever answered).
pub async fn handle(
    ctx: &ProxyCtx,
    req: Request<RequestBody>,
    conn: &Connection,
) -> (Response<ProxyBody>, Stamp) {
    let started = Instant::now();
    let rid = RequestId::from_client(req.headers().get(&ctx.request_id_header));
    let Some(rt) = ctx.config.load_full() else {
        let resp = ProxyError::NotConfigured.response();
        return (
            resp,
            Stamp::new((&ctx.request_id_header, rid.header_value()), None),
        );
    };
    let grpc = grpc::is_grpc(req.headers());
    let accept = req.headers().get(http::header::ACCEPT).cloned();
    let outcome = phases::run(ctx, &rt, req, conn, &rid, started).await;
    let (resp, upstream) = match outcome.result {
        Ok(answered) => answered,
        Err(e) => {
            let resp = e.response();
            match e.kong_message() {
                Some(m) if !grpc => (ErrorFormat::of(accept.as_ref()).rewrite(resp, m), None),
                _ => (resp, None),
            }
        }
    };
    // What Portcullis answered itself (no upstream exchange), a gRPC client gets in gRPC's shape.
    let resp = match (grpc, upstream) {
        (true, None) => grpc::refusal(resp).await,
        _ => resp,
    };
    let series = outcome.measured.series.unwrap_or_else(|| {
        ctx.metrics
            .requests
            .get(uuid::Uuid::nil(), None, || (String::new(), String::new()))
    });
    let took = outcome.measured.took.unwrap_or_else(|| started.elapsed());
    series.record(resp.status().as_u16(), took, upstream);
    let stamp = Stamp::new(
        (&ctx.request_id_header, rid.header_value()),
        outcome.measured.latencies,
    );
    (resp, stamp)
}
