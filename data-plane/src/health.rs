//! Active health checks: for every Upstream whose active checks have a probe interval, one task on the
//! node probes each peer (`http`/`https`: a GET of `http_path` whose status is judged by the Upstream's
//! lists; `tcp`: a connection) every `healthy.interval` seconds while the peer is healthy and every
//! `unhealthy.interval` while it is not, and reports to the peer's health. Tasks follow the live
//! configuration: [`ActiveChecks::follow`] starts, restarts and stops them as Upstreams change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::upstream::ProbeType;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use crate::runtime::balancer::{Balancer, Outcome, Peer, PeerKey};
use crate::runtime::EntityMap;

/// How often the configuration is looked at for changed Upstreams.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Runs the probe tasks of the live balancers (what `balancers` returns each time it is asked) until
/// `shutdown` turns true.
pub async fn follow(
    balancers: impl Fn() -> EntityMap<Uuid, Arc<Balancer>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks: HashMap<Uuid, (Arc<Balancer>, JoinHandle<()>)> = HashMap::new();
    loop {
        let balancers = balancers();
        tasks.retain(|id, (running, handle)| {
            let keep = balancers
                .get(id)
                .is_some_and(|b| Arc::ptr_eq(b, running) && probes(b));
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, b) in balancers.iter() {
            if probes(b) && !tasks.contains_key(id) {
                tasks.insert(*id, (b.clone(), tokio::spawn(probe_loop(b.clone()))));
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
    for (_, (_, handle)) in tasks {
        handle.abort();
    }
}

/// Whether `b`'s Upstream probes at all.
fn probes(b: &Balancer) -> bool {
    let a = &b.upstream.healthchecks.active;
    a.healthy.interval.unwrap_or(0.0) > 0.0 || a.unhealthy.interval.unwrap_or(0.0) > 0.0
}

fn secs(s: Option<f64>) -> Option<Duration> {
    s.filter(|s| *s > 0.0).map(Duration::from_secs_f64)
}

/// Probes every peer of `b` when it is due, forever.
async fn probe_loop(b: Arc<Balancer>) {
    let active = &b.upstream.healthchecks.active;
    let (healthy_every, unhealthy_every) = (
        secs(active.healthy.interval),
        secs(active.unhealthy.interval),
    );
    let tick = [healthy_every, unhealthy_every]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(1));
    let timeout = Duration::from_secs_f64(active.timeout.max(0.001));
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(!active.https_verify_certificate)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return warn!(error = %e, upstream = %b.upstream.name, "cannot build the health-check client")
        }
    };
    let mut last: HashMap<PeerKey, Instant> = HashMap::new();
    let rules = (&active.healthy, &active.unhealthy);
    loop {
        let now = Instant::now();
        // The peers as they are now: a name that resolves to other addresses is probed at those.
        let set = b.peers();
        last.retain(|k, _| set.peers.iter().any(|p| p.key == *k));
        let due: Vec<&Peer> = set
            .peers
            .iter()
            .filter(|p| {
                let every = if p.health.is_healthy() {
                    healthy_every
                } else {
                    unhealthy_every
                };
                every.is_some_and(|e| last.get(&p.key).is_none_or(|t| now.duration_since(*t) >= e))
            })
            .take(active.concurrency.max(1) as usize)
            .collect();
        let probes = due.iter().map(|peer| {
            let client = &client;
            async move {
                let outcome = match active.kind {
                    ProbeType::Tcp => {
                        let connect = tokio::net::TcpStream::connect(peer.authority.as_str());
                        match tokio::time::timeout(timeout, connect).await {
                            Ok(Ok(_)) => Outcome::Status(200),
                            Ok(Err(_)) => Outcome::TcpFailure,
                            Err(_) => Outcome::Timeout,
                        }
                    }
                    kind => {
                        let scheme = if kind == ProbeType::Https {
                            "https"
                        } else {
                            "http"
                        };
                        let url = format!("{scheme}://{}{}", peer.authority, active.http_path);
                        let mut probe = client.get(url);
                        for (name, values) in active.headers.iter().flatten() {
                            for value in values {
                                probe = probe.header(name, value);
                            }
                        }
                        match probe.send().await {
                            Ok(r) => Outcome::Status(r.status().as_u16()),
                            Err(e) if e.is_timeout() => Outcome::Timeout,
                            Err(_) => Outcome::TcpFailure,
                        }
                    }
                };
                (peer, outcome)
            }
        });
        for (peer, outcome) in futures::future::join_all(probes).await {
            if let Some(healthy) = peer.health.report(outcome, rules) {
                info!(upstream = %b.upstream.name, target = %peer.key.target, address = %peer.key.address, healthy, ?outcome, "active health check changed a target's health");
            }
        }
        for peer in due {
            last.insert(peer.key.clone(), now);
        }
        tokio::time::sleep(tick).await;
    }
}
