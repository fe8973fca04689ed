//! The proxy: route, run plugins, forward upstream with pooled connections, stream bodies both ways, and
//! answer errors the way Kong does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use shared::accept::AcceptBackoff;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::metrics::Series;
use crate::plugins::{full, json_response, BoxError, Exchange, ProxyBody, RequestBody};
use crate::router::RequestInfo;
use crate::runtime::RuntimeConfig;
use crate::Node;

/// Longest request target accepted.
const MAX_URI_LEN: usize = 8 * 1024;

/// A pooled client for one kind of upstream. Plain-HTTP Services get a client without the TLS layer,
/// which costs about a tenth of the proxy's throughput per request even when it only passes bytes through.
#[derive(Clone)]
enum Upstream {
    Plain(Client<RetryingConnector, ProxyBody>),
    Tls(Client<hyper_rustls::HttpsConnector<RetryingConnector>, ProxyBody>),
}

impl Upstream {
    fn request(&self, req: Request<ProxyBody>) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            Upstream::Plain(c) => c.request(req),
            Upstream::Tls(c) => c.request(req),
        }
    }
}

/// A TCP connector that tries up to `attempts` times: a Service's `retries` apply to connection failures,
/// where nothing has been sent yet, so every request (streamed bodies included) can be retried safely and
/// the request itself never needs to be copied for a retry.
#[derive(Clone)]
struct RetryingConnector {
    http: HttpConnector,
    attempts: usize,
}

/// Every connection attempt failed.
#[derive(Debug)]
struct ConnectFailed {
    attempts: usize,
    last: BoxError,
}

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connection attempt(s) failed, last: {}",
            self.attempts, self.last
        )
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.last)
    }
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<TokioIo<tokio::net::TcpStream>, ConnectFailed>>
            + Send,
    >,
>;

impl tower::Service<http::Uri> for RetryingConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = ConnectFailed;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ConnectFailed>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Connecting {
        let http = self.http.clone();
        let attempts = self.attempts.max(1);
        Box::pin(async move {
            let mut last: Option<BoxError> = None;
            for attempt in 0..attempts {
                match tower::ServiceExt::oneshot(http.clone(), dst.clone()).await {
                    Ok(io) => return Ok(io),
                    Err(e) => {
                        debug!(upstream = %dst, attempt, error = %e, "upstream connect failed");
                        last = Some(Box::new(e));
                    }
                }
            }
            Err(ConnectFailed {
                attempts,
                last: last.unwrap_or_else(|| "no attempt".into()),
            })
        })
    }
}

/// How many connection attempts a failed upstream request made (1 when the error does not say).
fn connect_attempts(e: &hyper_util::client::legacy::Error) -> usize {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(failed) = s.downcast_ref::<ConnectFailed>() {
            return failed.attempts;
        }
        source = s.source();
    }
    1
}

/// Connect timeout (ms), retries and, for HTTPS, whether the certificate is verified.
type ClientKey = (u64, u32, Option<bool>);

/// Upstream clients by connect timeout, retries, scheme and certificate verification, shared across
/// snapshots so pools stay warm. HTTPS upstreams are verified against the Mozilla roots plus
/// `--upstream-ca-file`, unless the Service sets `tls_verify: false`; HTTP/2 is used when the upstream
/// offers it by ALPN.
pub struct UpstreamClients {
    clients: Mutex<HashMap<ClientKey, Upstream>>,
    roots: Arc<rustls::RootCertStore>,
}

impl UpstreamClients {
    /// Clients trusting the Mozilla roots and the certificates in `extra_ca_pem`.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> anyhow::Result<UpstreamClients> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(cert.map_err(|e| anyhow::anyhow!("--upstream-ca-file: {e}"))?)?;
                n += 1;
            }
            anyhow::ensure!(n > 0, "--upstream-ca-file holds no certificate");
        }
        Ok(UpstreamClients {
            clients: Mutex::default(),
            roots: Arc::new(roots),
        })
    }

    /// The client for a Service: `https` gets TLS, with `verify` deciding certificate checks; a failed
    /// connection is tried again up to `retries` times.
    fn get(&self, connect_timeout_ms: u64, retries: u32, https: bool, verify: bool) -> Upstream {
        let mut clients = self.clients.lock().expect("upstream clients lock");
        clients
            .entry((connect_timeout_ms, retries, https.then_some(verify)))
            .or_insert_with(|| {
                let mut tcp = HttpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
                let http = RetryingConnector {
                    http: tcp,
                    attempts: retries as usize + 1,
                };
                let pooled = || {
                    let mut b = Client::builder(TokioExecutor::new());
                    b.pool_idle_timeout(Duration::from_secs(60))
                        .pool_max_idle_per_host(256);
                    b
                };
                if !https {
                    return Upstream::Plain(pooled().build(http));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions");
                let tls = if verify {
                    builder
                        .with_root_certificates(self.roots.clone())
                        .with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                        .with_no_client_auth()
                };
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                Upstream::Tls(pooled().build(connector))
            })
            .clone()
    }
}

/// Accepts any upstream certificate: only for Services that set `tls_verify: false`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    // One pass over the few names present rather than a hash lookup per hop-by-hop name; nothing is
    // allocated when there is nothing to remove (the usual case).
    let mut remove: Vec<HeaderName> = h
        .keys()
        .filter(|n| HOP_BY_HOP.contains(&n.as_str()))
        .cloned()
        .collect();
    if remove.is_empty() {
        return;
    }
    remove.extend(
        h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
    );
    for n in remove {
        h.remove(n);
    }
}

/// A Kong-style error body (the request id header is added to every response by [`handle`]).
pub fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(status, &json!({ "message": message }), &[])
}

/// Joins the service path and the (possibly stripped) request path, as Kong's `path_handling` does.
pub fn upstream_path(
    service_path: Option<&str>,
    request_path: &str,
    matched_len: usize,
    strip: bool,
    handling: &str,
) -> String {
    let rest = if strip {
        &request_path[matched_len.min(request_path.len())..]
    } else {
        request_path
    };
    let base = service_path.unwrap_or("/");
    if rest.is_empty() {
        return base.to_string();
    }
    match handling {
        "v1" => {
            if base == "/" && !rest.starts_with('/') {
                format!("/{rest}")
            } else if base == "/" {
                rest.to_string()
            } else {
                format!("{base}{rest}")
            }
        }
        _ => match (base.ends_with('/'), rest.starts_with('/')) {
            (true, true) => format!("{base}{}", &rest[1..]),
            (false, false) => format!("{base}/{rest}"),
            _ => format!("{base}{rest}"),
        },
    }
}

fn request_id(node: &Node, req: &Request<Incoming>) -> String {
    req.headers()
        .get(&node.settings.request_id_header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()))
}

/// `Via` on every proxied response.
const VIA: &str = concat!("1.1 portcullis/", env!("CARGO_PKG_VERSION"));

/// Handles one downstream request.
pub async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_port: u16,
    scheme: &'static str,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let rid = request_id(&node, &req);
    let Some(rt) = node.runtime.load_full() else {
        let resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration has been loaded yet",
        );
        return Ok(with_request_id(resp, &node, &rid));
    };
    let (resp, series, upstream) =
        proxy(&node, &rt, req, peer, local_port, scheme, &rid, started).await;
    let series = series.unwrap_or_else(|| {
        node.metrics
            .requests
            .get(uuid::Uuid::nil(), None, || (String::new(), String::new()))
    });
    series.record(resp.status().as_u16(), started.elapsed(), upstream);
    // Every response carries the request id under the configured header, whoever answered.
    Ok(with_request_id(resp, &node, &rid))
}

type Outcome = (Response<ProxyBody>, Option<Arc<Series>>, Option<Duration>);

#[allow(clippy::too_many_arguments)]
async fn proxy(
    node: &Node,
    rt: &RuntimeConfig,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_port: u16,
    scheme: &'static str,
    rid: &str,
    started: Instant,
) -> Outcome {
    if req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0)
        > MAX_URI_LEN
    {
        return (
            error(StatusCode::URI_TOO_LONG, "Request-URI Too Long"),
            None,
            None,
        );
    }
    let host_header = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let (host, port) = split_host_port(&host_header);
    let path = req.uri().path().to_string();
    let m = rt.router.find(&RequestInfo {
        method: req.method().as_str(),
        host: &host,
        port: port.or(Some(local_port)),
        path: &path,
        headers: req.headers(),
    });
    let Some(m) = m else {
        return (
            error(StatusCode::NOT_FOUND, "no Route matched with those values"),
            None,
            None,
        );
    };
    let route = rt.routes[&m.route_id].clone();
    let target = route.service.and_then(|fk| rt.targets.get(&fk.id).cloned());
    let series = Some(node.metrics.requests.get(
        route.id,
        target.as_ref().map(|t| t.service.id),
        || {
            (
                route.name.clone().unwrap_or_else(|| route.id.to_string()),
                target.as_ref().map(|t| t.label.clone()).unwrap_or_default(),
            )
        },
    ));
    if !route.protocols.iter().any(|p| p == scheme) {
        return (
            error(StatusCode::UPGRADE_REQUIRED, "Please use HTTPS protocol"),
            series,
            None,
        );
    }
    let Some(target) = target else {
        return (
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no Service found with those values",
            ),
            series,
            None,
        );
    };
    let service = target.service.clone();
    if !service.enabled {
        return (
            error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            series,
            None,
        );
    }
    let (parts, body) = req.into_parts();
    let mut ex = Exchange {
        parts,
        body: RequestBody::Streaming(body),
        client_ip: peer.ip(),
        route: route.clone(),
        service: Some(service.clone()),
        consumer: None,
        request_id: rid.to_string(),
    };
    let mut ran = Vec::new();
    for name in &rt.active_plugins {
        let consumer = ex.consumer.as_ref().map(|c| c.id);
        if let Some(p) = rt.plugin_for(name, route.id, Some(service.id), consumer) {
            if let Err(resp) = p.access(&mut ex).await {
                return (resp, series, None);
            }
            ran.push(p.clone());
        }
    }

    // Build the upstream request.
    let mut path_and_query = upstream_path(
        service.path.as_deref(),
        ex.parts.uri.path(),
        m.matched_len,
        route.strip_path,
        &route.path_handling,
    );
    if let Some(q) = ex.parts.uri.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let uri = match http::Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(path_and_query)
        .build()
    {
        Ok(u) => u,
        Err(_) => return (error(StatusCode::BAD_REQUEST, "Bad request"), series, None),
    };
    let mut headers = std::mem::take(&mut ex.parts.headers);
    strip_hop_by_hop(&mut headers);
    // Room for the forwarded headers below, so the map grows at most once.
    headers.reserve(8);
    let host_value = if route.preserve_host && !host_header.is_empty() {
        HeaderValue::from_str(&host_header).ok()
    } else {
        Some(target.host_header.clone())
    };
    if let Some(v) = host_value {
        headers.insert(header::HOST, v);
    }
    let client_ip = peer.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {client_ip}"),
        None => client_ip.clone(),
    };
    let set = |h: &mut http::HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut headers, "x-forwarded-for", &xff);
    set(&mut headers, "x-real-ip", &client_ip);
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    set(&mut headers, "x-forwarded-host", &host);
    headers.insert(
        "x-forwarded-port",
        HeaderValue::from(port.unwrap_or(local_port)),
    );
    set(&mut headers, "x-forwarded-path", &path);
    if let Ok(v) = HeaderValue::from_str(rid) {
        headers.insert(node.settings.request_id_header.clone(), v);
    }
    let body: ProxyBody = match std::mem::replace(&mut ex.body, RequestBody::Empty) {
        RequestBody::Streaming(inc) => inc.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
        RequestBody::Buffered(bytes) => full(bytes),
        RequestBody::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
    };
    let mut up = Request::new(body);
    *up.method_mut() = ex.parts.method.clone();
    *up.uri_mut() = uri;
    *up.headers_mut() = headers;
    let client = node.upstreams.get(
        service.connect_timeout,
        service.retries,
        target.scheme == http::uri::Scheme::HTTPS,
        service.tls_verify.unwrap_or(true),
    );
    // One window for connecting (with retries), sending and the response head, like Kong's
    // write + read timeouts; a connect timeout inside it is answered 504, as nginx does.
    let window = Duration::from_millis(service.read_timeout.saturating_add(service.write_timeout));
    let upstream_started = Instant::now();
    let service_label = target.label.as_str();
    let outcome = tokio::time::timeout(window, client.request(up)).await;
    let result = match outcome {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) if e.is_connect() => {
            node.metrics.upstream_errors.add(
                &[("service", service_label), ("kind", "connect")],
                connect_attempts(&e) as u64,
            );
            Err((
                StatusCode::BAD_GATEWAY,
                "An invalid response was received from the upstream server",
                format!("connect: {}", error_chain(&e)),
            ))
        }
        Ok(Err(e)) => {
            node.metrics
                .upstream_errors
                .add(&[("service", service_label), ("kind", "protocol")], 1);
            Err((
                StatusCode::BAD_GATEWAY,
                "An invalid response was received from the upstream server",
                error_chain(&e),
            ))
        }
        Err(_) => {
            node.metrics
                .upstream_errors
                .add(&[("service", service_label), ("kind", "timeout")], 1);
            Err((
                StatusCode::GATEWAY_TIMEOUT,
                "The upstream server is timing out",
                "timeout".into(),
            ))
        }
    };
    let resp = match result {
        Ok(resp) => resp,
        Err((status, msg, detail)) => {
            warn!(request_id = %rid, upstream = %target.authority, service = %service_label, error = %detail, "upstream request failed");
            return (error(status, msg), series, None);
        }
    };
    let upstream_elapsed = upstream_started.elapsed();
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let proxy_ms = started
        .elapsed()
        .saturating_sub(upstream_elapsed)
        .as_millis() as u64;
    parts.headers.insert(
        "x-portcullis-upstream-latency",
        HeaderValue::from(upstream_elapsed.as_millis() as u64),
    );
    parts
        .headers
        .insert("x-portcullis-proxy-latency", HeaderValue::from(proxy_ms));
    parts.headers.insert("via", HeaderValue::from_static(VIA));
    for p in &ran {
        p.header_filter(&ex, &mut parts);
    }
    let status = parts.status.as_u16();
    for p in &ran {
        p.log(&ex, status);
    }
    let resp = Response::from_parts(
        parts,
        body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
    );
    (resp, series, Some(upstream_elapsed))
}

/// An error and its sources on one line (no secrets: upstream errors carry addresses and OS errors only).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn with_request_id(mut resp: Response<ProxyBody>, node: &Node, rid: &str) -> Response<ProxyBody> {
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut()
            .insert(node.settings.request_id_header.clone(), v);
    }
    resp
}

fn split_host_port(h: &str) -> (String, Option<u16>) {
    let h = h.trim().to_ascii_lowercase();
    if h.starts_with('[') {
        if let Some(end) = h.find(']') {
            let port = h[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (h[..=end].to_string(), port);
        }
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name.to_string(), port.parse().ok()),
        _ => (h, None),
    }
}

/// Counts a failed `accept()` and, when the process is out of descriptors or memory, pauses the accept loop
/// (exponentially, up to 1 s) instead of spinning; connections already accepted keep being served.
pub async fn pause_after_accept_error(
    metrics: &crate::metrics::Metrics,
    listener: &'static str,
    backoff: &mut AcceptBackoff,
    error: &std::io::Error,
) {
    let (class, pause) = backoff.failed(error);
    metrics
        .accept_errors
        .add(&[("listener", listener), ("kind", class.label())], 1);
    if pause.is_zero() {
        debug!(%error, listener, "accept failed");
        return;
    }
    if backoff.first_of_run() {
        warn!(%error, listener, kind = class.label(), "cannot accept connections; pausing accepts until resources free up");
    }
    tokio::time::sleep(pause).await;
}

/// Serves the proxy on `listener` until `shutdown` turns true, then finishes in-flight requests (bounded).
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(c) => { backoff.accepted(); c }
                    Err(e) => {
                        pause_after_accept_error(&node.metrics, "proxy", &mut backoff, &e).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let node = node.clone();
                let metrics = node.metrics.clone();
                let svc = hyper::service::service_fn(move |req| handle(node.clone(), req, peer, local_port, "http"));
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    metrics.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Err(e) = conn.await {
                        debug!(error = %e, "connection ended with an error");
                    }
                    metrics.connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish within the drain timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_joining_like_kong() {
        // service path, request path, matched prefix length, strip_path, path_handling -> upstream path
        assert_eq!(upstream_path(None, "/api/users", 4, true, "v0"), "/users");
        assert_eq!(upstream_path(None, "/api", 4, true, "v0"), "/");
        assert_eq!(
            upstream_path(Some("/anything"), "/api/users", 4, true, "v0"),
            "/anything/users"
        );
        assert_eq!(
            upstream_path(Some("/anything/"), "/api/users", 4, true, "v0"),
            "/anything/users"
        );
        assert_eq!(
            upstream_path(Some("/anything"), "/api", 4, true, "v0"),
            "/anything"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/api/users", 4, false, "v0"),
            "/s/api/users"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/fv0req", 4, true, "v0"),
            "/s/req"
        );
        assert_eq!(upstream_path(Some("/s"), "/fv1req", 4, true, "v1"), "/sreq");
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("Example.com:8000"),
            ("example.com".into(), Some(8000))
        );
        assert_eq!(split_host_port("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(split_host_port("h"), ("h".into(), None));
    }
}
