//! Sending the request upstream, within one timeout window of the Service's write + read timeouts:
//! [`direct`] to the Service's host (failed connections retried inside the connector, up to `retries`),
//! or [`balanced`] when the host names an Upstream: pick a peer, send, and when no connection could be
//! made (nothing was sent) pick another peer, up to `retries`. Every balanced exchange is reported to the
//! peer's passive health, and its response body holds the peer's in-flight count until it is done
//! (least-connections reads it).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::capture_connection;

use super::ctx::ProxyCtx;
use super::error::ProxyError;
use super::forward::Forwarded;
use super::framing;
use super::h1;
use super::header_maps;
use super::upstream::{connect_attempts, Dial, Upstream};
use crate::body::{BoxError, ProxyBody};
use crate::runtime::balancer::{Balancer, InFlight, Outcome, Peer};
use crate::runtime::ServiceEntry;

/// What is sent, whichever peer it goes to.
pub(super) struct Outgoing {
    pub method: Method,
    pub path_and_query: http::uri::PathAndQuery,
    pub headers: HeaderMap,
    /// The forwarded headers while they are not in `headers`: an in-task exchange writes them straight
    /// into the request head; anything else puts them in the map first ([`Outgoing::forwarded_in_map`]).
    pub forwarded: Option<Forwarded>,
    pub body: ProxyBody,
    /// The client's own deadline (gRPC's `grpc-timeout`), when shorter than the Service's window.
    pub deadline: Option<Duration>,
    /// Whether the request asks for a protocol upgrade (HTTP/1.1 upstream connections only).
    pub upgrade: bool,
}

impl Outgoing {
    /// Puts the forwarded headers in the header map, if they are not there yet.
    pub fn forwarded_in_map(&mut self) {
        if let Some(f) = self.forwarded.take() {
            f.apply(&mut self.headers);
        }
    }
}

/// A request body that can be handed to the next attempt as long as the previous one never read it.
struct TakeOnce {
    slot: Arc<Mutex<Option<ProxyBody>>>,
    taken: Option<ProxyBody>,
}

impl TakeOnce {
    fn with_inner<T>(&self, f: impl FnOnce(&ProxyBody) -> T, none: T) -> T {
        match &self.taken {
            Some(b) => f(b),
            None => match self.slot.lock().expect("body slot").as_ref() {
                Some(b) => f(b),
                None => none,
            },
        }
    }
}

impl Body for TakeOnce {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.taken.is_none() {
            this.taken = this.slot.lock().expect("body slot").take();
        }
        match &mut this.taken {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.with_inner(Body::is_end_stream, true)
    }

    fn size_hint(&self) -> SizeHint {
        self.with_inner(Body::size_hint, SizeHint::with_exact(0))
    }
}

/// A response body that keeps its peer's in-flight count until the upstream has sent all of it (or it is
/// dropped). The count ends before the body's last bytes are handed on, so a client that sends its next
/// request as soon as it has a whole answer finds the peer idle again.
struct Counted {
    inner: ProxyBody,
    in_flight: Option<InFlight>,
}

impl Counted {
    fn new(inner: ProxyBody, in_flight: InFlight) -> Counted {
        let done = inner.is_end_stream();
        Counted {
            inner,
            in_flight: (!done).then_some(in_flight),
        }
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || this.inner.is_end_stream() {
            this.in_flight = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How long the upstream has to answer: the Service's write + read timeouts, or the client's deadline
/// when that is sooner.
fn window(target: &ServiceEntry, deadline: Option<Duration>) -> Duration {
    let s = &target.service;
    let service = Duration::from_millis(s.read_timeout.saturating_add(s.write_timeout));
    deadline.map_or(service, |d| d.min(service))
}

/// Sends `out` to the Service's own host; the response and the time the upstream exchange took. A
/// connect timeout inside the window is answered 504, as nginx does.
pub(super) async fn direct(
    ctx: &ProxyCtx,
    target: &ServiceEntry,
    mut out: Outgoing,
) -> Result<(Response<ProxyBody>, Duration), ProxyError> {
    let service = &target.service;
    let window = window(target, out.deadline);
    let started = Instant::now();
    if in_task(target, &out) {
        let dial = h1::Dial {
            authority: &target.authority,
            connect_timeout: Duration::from_millis(service.connect_timeout),
            attempts: service.retries as usize + 1,
        };
        let resp = exchange_in_task(ctx, &dial, &bodiless(&out), started, window).await;
        header_maps::give(out.headers);
        return Ok((resp?, started.elapsed()));
    }
    out.forwarded_in_map();
    let uri = http::Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(out.path_and_query)
        .build()
        .map_err(|_| ProxyError::BadUpstreamUri)?;
    let upgrade = out.upgrade;
    let client = ctx
        .upstreams
        .get(&Dial::of(target, service.retries, upgrade));
    let mut req = Request::new(out.body);
    *req.method_mut() = out.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = out.headers;
    let resp = pooled(&client, req, window, upgrade).await?;
    Ok((resp, started.elapsed()))
}

/// Sends `req` with a pooled client within `window`. A response whose `Transfer-Encoding` overrode a
/// `Content-Length` has the length removed and its connection retired: an upstream that framed one
/// answer ambiguously is not trusted to frame the next (RFC 9112, 6.3).
async fn pooled(
    client: &Upstream,
    mut req: Request<ProxyBody>,
    window: Duration,
    upgrade: bool,
) -> Result<Response<ProxyBody>, ProxyError> {
    let connection = capture_connection(&mut req);
    let mut resp = from_client(tokio::time::timeout(window, client.request(req)).await)?;
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS && !upgrade {
        // The connection went to an upgrade nobody asked for; it is dropped with the response.
        return Err(ProxyError::UpstreamProtocol {
            detail: "101 Switching Protocols to a request that asked for no upgrade".into(),
        });
    }
    if framing::coding_overrides_length(resp.headers_mut()) {
        if let Some(connected) = connection.connection_metadata().as_ref() {
            connected.poison();
        }
    }
    Ok(resp)
}

/// Whether `out` is exchanged in the request's own task ([`h1`]): a bodiless request to a plain-HTTP
/// upstream that is neither a protocol upgrade nor a gRPC call.
fn in_task(target: &ServiceEntry, out: &Outgoing) -> bool {
    target.scheme == http::uri::Scheme::HTTP
        && !out.upgrade
        && !target.service.protocol.is_grpc()
        && out.body.is_end_stream()
}

/// What an in-task exchange sends of `out` (its body is empty).
fn bodiless(out: &Outgoing) -> h1::BodylessRequest<'_> {
    h1::BodylessRequest {
        method: &out.method,
        path_and_query: &out.path_and_query,
        headers: &out.headers,
        forwarded: out.forwarded.as_ref(),
    }
}

/// One in-task exchange begun at `started`, within `window` of that.
async fn exchange_in_task(
    ctx: &ProxyCtx,
    dial: &h1::Dial<'_>,
    req: &h1::BodylessRequest<'_>,
    started: Instant,
    window: Duration,
) -> Result<Response<ProxyBody>, ProxyError> {
    let deadline = tokio::time::Instant::from_std(started + window);
    let exchange = h1::send(&ctx.upstreams.h1, dial, req, started);
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(h1::H1Error::Connect { attempts, detail })) => {
            Err(ProxyError::UpstreamConnect { attempts, detail })
        }
        Ok(Err(h1::H1Error::Protocol(detail))) => Err(ProxyError::UpstreamProtocol { detail }),
        Err(_) => Err(ProxyError::UpstreamTimeout),
    }
}

/// The pooled client's answer (within its window) as the proxy's.
fn from_client(
    result: Result<
        Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
        tokio::time::error::Elapsed,
    >,
) -> Result<Response<ProxyBody>, ProxyError> {
    match result {
        Ok(Ok(r)) => Ok(r.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync())),
        Ok(Err(e)) if crate::body::is_client_body_error(&e) => Err(ProxyError::ClientBody {
            detail: shared::error::chain(&e),
        }),
        Ok(Err(e)) if e.is_connect() => Err(ProxyError::UpstreamConnect {
            attempts: connect_attempts(&e),
            detail: shared::error::chain(&e),
        }),
        Ok(Err(e)) => Err(ProxyError::UpstreamProtocol {
            detail: shared::error::chain(&e),
        }),
        Err(_) => Err(ProxyError::UpstreamTimeout),
    }
}

/// Sends `out` to a peer of `balancer` (consistent hashing on `hash` when given), trying other peers on
/// connection failures; the response and the time the upstream exchange took.
pub(super) async fn balanced(
    ctx: &ProxyCtx,
    target: &ServiceEntry,
    balancer: &Balancer,
    hash: Option<u64>,
    mut out: Outgoing,
) -> Result<(Response<ProxyBody>, Duration), ProxyError> {
    out.forwarded_in_map();
    let service = &target.service;
    let window = window(target, out.deadline);
    // A client's deadline running out says nothing about the peer's health; the Service's does.
    let service_window = window >= self::window(target, None);
    let started = Instant::now();
    let fast = in_task(target, &out);
    let slot = Arc::new(Mutex::new(Some(std::mem::take(&mut out.body))));
    let mut tried = Vec::new();
    let attempts = service.retries as usize + 1;
    let set = balancer.peers();
    loop {
        let Some(i) = balancer.pick(&set, hash, &tried) else {
            return Err(match tried.len() {
                0 => ProxyError::NoHealthyPeer,
                n => ProxyError::UpstreamConnect {
                    attempts: n,
                    detail: "every peer tried refused the connection".into(),
                },
            });
        };
        tried.push(i);
        let peer = &set.peers[i];
        let in_flight = InFlight::start(&peer.health);
        let left = window.saturating_sub(started.elapsed());
        let result = match fast {
            true => {
                let dial = h1::Dial {
                    authority: &peer.authority,
                    connect_timeout: Duration::from_millis(service.connect_timeout),
                    attempts: 1,
                };
                exchange_in_task(ctx, &dial, &bodiless(&out), Instant::now(), left).await
            }
            false => {
                let client = ctx.upstreams.get(&Dial::of(target, 0, out.upgrade));
                let uri = http::Uri::builder()
                    .scheme(target.scheme.clone())
                    .authority(peer.authority.clone())
                    .path_and_query(out.path_and_query.clone())
                    .build()
                    .map_err(|_| ProxyError::BadUpstreamUri)?;
                let mut req = Request::new(
                    TakeOnce {
                        slot: slot.clone(),
                        taken: None,
                    }
                    .boxed_unsync(),
                );
                *req.method_mut() = out.method.clone();
                *req.uri_mut() = uri;
                *req.headers_mut() = out.headers.clone();
                pooled(&client, req, left, out.upgrade).await
            }
        };
        let failure = match result {
            Ok(resp) => {
                report(balancer, peer, Outcome::Status(resp.status().as_u16()));
                let (parts, body) = resp.into_parts();
                let body = Counted::new(body, in_flight);
                return Ok((
                    Response::from_parts(parts, body.boxed_unsync()),
                    started.elapsed(),
                ));
            }
            Err(ProxyError::UpstreamConnect { detail, .. }) => {
                report(balancer, peer, Outcome::TcpFailure);
                ProxyError::UpstreamConnect {
                    attempts: tried.len(),
                    detail,
                }
            }
            // The client's fault says nothing about the peer.
            Err(e @ ProxyError::ClientBody { .. }) => return Err(e),
            Err(ProxyError::UpstreamTimeout) => {
                if service_window {
                    report(balancer, peer, Outcome::Timeout);
                }
                return Err(ProxyError::UpstreamTimeout);
            }
            Err(e) => {
                report(balancer, peer, Outcome::TcpFailure);
                return Err(e);
            }
        };
        // Another peer only when nothing of the request was sent (its body is still here).
        let body_left = slot.lock().expect("body slot").is_some();
        if tried.len() >= attempts || !body_left {
            return Err(failure);
        }
    }
}

/// Counts an exchange with `peer` for its passive health, and logs a change of health.
fn report(balancer: &Balancer, peer: &Peer, outcome: Outcome) {
    let passive = &balancer.upstream.healthchecks.passive;
    if let Some(healthy) = peer
        .health
        .report(outcome, (&passive.healthy, &passive.unhealthy))
    {
        tracing::warn!(upstream = %balancer.upstream.name, target = %peer.key.target, address = %peer.key.address, healthy, ?outcome, "passive health check changed a target's health");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::balancer::PeerHealth;
    use http_body_util::{Full, StreamBody};

    fn in_flight(peer: &Arc<PeerHealth>) -> InFlight {
        InFlight::start(peer)
    }

    #[tokio::test]
    async fn the_in_flight_count_ends_with_the_last_frame_not_with_the_body() {
        let peer = Arc::new(PeerHealth::default());
        let whole = Full::new(Bytes::from_static(b"answer"))
            .map_err(|e| match e {})
            .boxed_unsync();
        let mut body = Counted::new(whole, in_flight(&peer));
        assert_eq!(peer.in_flight(), 1);
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().unwrap(), "answer");
        assert_eq!(peer.in_flight(), 0, "the last frame ends the count");
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(
            peer.in_flight(),
            0,
            "and dropping the body does not end it twice"
        );
    }

    #[tokio::test]
    async fn a_streamed_body_counts_until_its_end_and_an_empty_one_not_at_all() {
        let peer = Arc::new(PeerHealth::default());
        let frames = futures::stream::iter(
            ["a", "b"].map(|s| Ok::<_, BoxError>(Frame::data(Bytes::from_static(s.as_bytes())))),
        );
        let mut body = Counted::new(StreamBody::new(frames).boxed_unsync(), in_flight(&peer));
        body.frame().await.expect("a").expect("data");
        body.frame().await.expect("b").expect("data");
        assert_eq!(
            peer.in_flight(),
            1,
            "a stream's end is only known when it is read"
        );
        assert!(body.frame().await.is_none());
        assert_eq!(peer.in_flight(), 0);
        let empty = Full::new(Bytes::new())
            .map_err(|e| match e {})
            .boxed_unsync();
        let _body = Counted::new(empty, in_flight(&peer));
        assert_eq!(
            peer.in_flight(),
            0,
            "an answer without a body is done at once"
        );
    }
}
