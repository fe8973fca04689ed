//! The rewrite phase: what the request asks of the proxy before any plugin sees it (a protocol upgrade,
//! kept for the tunnel), and the request as plugins see it ([`Exchange`]).

use http::header::HeaderValue;
use http::Request;
use shared::protocol::Family;
use smallvec::SmallVec;

use super::context::RequestCtx;
use super::route::Routed;
use crate::body::RequestBody;
use crate::plugins::Exchange;
use crate::proxy::error::ProxyError;
use crate::proxy::upgrade;
use crate::runtime::Scheme;

/// A protocol upgrade the client asked for (WebSocket over HTTP/1.1 or HTTP/2's extended CONNECT).
#[derive(Default)]
pub struct Upgrade {
    /// The protocol asked for (`websocket` for an extended CONNECT).
    pub protocol: Option<HeaderValue>,
    /// An HTTP/2 extended CONNECT (RFC 8441), sent upstream as an HTTP/1.1 handshake.
    pub over_h2: bool,
    /// The client's side of the tunnel, once the upstream switches.
    pub client: Option<hyper::upgrade::OnUpgrade>,
}

/// The request's upgrade and the request as the access phase gets it.
pub fn rewrite(
    cx: &RequestCtx<'_>,
    routed: &Routed<'_>,
    mut req: Request<RequestBody>,
) -> Result<(Exchange, Upgrade), ProxyError> {
    let over_h2 = upgrade::is_extended_connect(&req);
    let protocol = match over_h2 {
        true => Some(HeaderValue::from_static("websocket")),
        false => upgrade::requested(req.headers()),
    };
    let websocket = protocol
        .as_ref()
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if routed.entry.family == Family::WebSocket && !websocket {
        return Err(ProxyError::WebSocketOnly);
    }
    let client = protocol
        .as_ref()
        .and_then(|_| req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>());
    let (parts, body) = req.into_parts();
    let origin = parts
        .headers
        .get(http::header::ORIGIN)
        .filter(|o| !o.is_empty())
        .cloned();
    let preflight = parts.method == http::Method::OPTIONS
        && origin.is_some()
        && parts
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let ex = Exchange {
        parts,
        body,
        client_ip: cx.conn.peer.ip(),
        route: routed.entry.route.clone(),
        service: Some(routed.service.service.clone()),
        consumer: None,
        credential: None,
        authenticated_groups: None,
        consumer_groups: None,
        request_id: cx.rid.clone(),
        added: SmallVec::new(),
        tls: cx.conn.scheme == Scheme::Https,
        origin,
        preflight,
        answer_fields: SmallVec::new(),
    };
    Ok((
        ex,
        Upgrade {
            protocol,
            over_h2,
            client,
        },
    ))
}
