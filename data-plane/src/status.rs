//! The status listener: `/status`, `/status/ready`, `/metrics` and read-only cache views.

use shared::accept::AcceptBackoff;
use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{full, json_response, ProxyBody};
use crate::runtime::RuntimeConfig;
use crate::Node;

async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let rt = node.live();
    let resp = match req.uri().path() {
        "/status" => {
            let cp = node.cp_status();
            json_response(
                StatusCode::OK,
                &json!({
                    "node_id": cp.node_id,
                    "node_name": node.settings().node_name,
                    "version": shared::VERSION,
                    "uptime_seconds": node.uptime().as_secs(),
                    "config": rt.as_ref().map(|r| json!({"version": r.version, "hash": r.hash, "routes": r.routes.len(), "services": r.services.len(), "plugins": r.active_plugins.iter().map(|a| a.name).collect::<Vec<_>>()})),
                    "control_plane": {"connected": cp.connected, "address": cp.address, "last_error": cp.last_error, "last_rejected": cp.last_rejected, "features": node.settings().sync_features},
                    "last_sync": cp.last_sync.as_ref().map(|l| json!({"kind": l.kind, "version": l.version, "received_bytes": l.received_bytes, "apply_micros": l.apply_micros, "apply_cpu_micros": l.apply_cpu_micros})),
                    "connections": node.metrics().connections.load(std::sync::atomic::Ordering::Relaxed),
                    "lkg": {"persisted": cp.lkg_error.is_none(), "error": cp.lkg_error},
                    "identity": {"persisted": cp.identity_error.is_none(), "error": cp.identity_error},
                    "degraded": cp.lkg_error.is_some() || cp.identity_error.is_some(),
                }),
                &[],
            )
        }
        "/status/ready" => match &rt {
            Some(r) if !r.state.is_empty() => json_response(
                StatusCode::OK,
                &json!({"ready": true, "config_version": r.version}),
                &[],
            ),
            _ => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "message": "no configuration is live yet"}),
                &[],
            ),
        },
        "/metrics" => {
            let mut r = Response::new(full(node.metrics().render()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        path if path.starts_with("/upstreams/") && path.ends_with("/health") => {
            let key = &path["/upstreams/".len()..path.len() - "/health".len()];
            upstream_health(&node, rt.as_deref(), key)
        }
        "/status/caches" => json_response(StatusCode::OK, &node.caches().sizes(), &[]),
        "/status/issuers" => json_response(
            StatusCode::OK,
            &json!({"data": node.caches().issuers.view()}),
            &[],
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"message": "Not found"}), &[]),
    };
    Ok(resp)
}

/// Serves the status endpoints until `shutdown` turns true.
pub async fn serve(listener: TcpListener, node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => { backoff.accepted(); tcp }
                    Err(e) => {
                        crate::proxy::pause_after_accept_error(node.metrics(), "status", &mut backoff, &e).await;
                        continue;
                    }
                };
                let node = node.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(node.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        }
    }
}

/// `GET /upstreams/{id|name}/health`: each Target of an Upstream with its health on this node, in Kong's
/// shape: the Target is `HEALTHY` while one of its addresses is, `DNS_ERROR` while its name has never
/// resolved, `HEALTHCHECKS_OFF` when the Upstream neither probes nor counts failures; `data.addresses`
/// lists each address with its own health.
fn upstream_health(node: &Node, rt: Option<&RuntimeConfig>, key: &str) -> Response<ProxyBody> {
    let found = rt.and_then(|rt| {
        let b = rt.balancers.values().find(|b| {
            b.upstream.id.to_string() == key || b.upstream.name.eq_ignore_ascii_case(key)
        })?;
        Some((rt, b))
    });
    let Some((rt, b)) = found else {
        return json_response(StatusCode::NOT_FOUND, &json!({"message": "Not found"}), &[]);
    };
    let checks_off = !b.upstream.healthchecks.enabled();
    let set = b.peers();
    let word = |healthy: bool| match (checks_off, healthy) {
        (true, _) => "HEALTHCHECKS_OFF",
        (false, true) => "HEALTHY",
        (false, false) => "UNHEALTHY",
    };
    let data: Vec<Value> = rt
        .state
        .targets
        .values()
        .filter(|t| t.upstream.id == b.upstream.id)
        .filter_map(|t| {
            let peers: Vec<_> = set
                .peers
                .iter()
                .filter(|p| p.key.target == t.target)
                .collect();
            if peers.is_empty() {
                return None;
            }
            let addr = shared::upstream::TargetAddr::parse(&t.target).ok()?;
            let health = match node.dns().cache.failure(addr.bare()) {
                Some(_) => "DNS_ERROR",
                None => word(peers.iter().any(|p| p.health.is_healthy())),
            };
            let addresses: Vec<Value> = peers
                .iter()
                .map(|p| {
                    let (ip, port) = match p.key.address.parse::<std::net::SocketAddr>() {
                        Ok(a) => (json!(a.ip().to_string()), json!(a.port())),
                        Err(_) => (json!(p.key.address), Value::Null),
                    };
                    json!({
                        "ip": ip,
                        "port": port,
                        "weight": p.weight,
                        "health": word(p.health.is_healthy()),
                        "in_flight": p.health.in_flight(),
                    })
                })
                .collect();
            let mut view = t.health_view(health);
            view["in_flight"] = json!(peers.iter().map(|p| p.health.in_flight()).sum::<usize>());
            view["data"] = json!({"addresses": addresses});
            Some(view)
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"node_id": node.cp_status().node_id, "total": data.len(), "data": data}),
        &[],
    )
}
