//! The sync client: one long-lived mTLS stream to the control plane, turned into atomic swaps of the
//! runtime config. Reconnects with jittered exponential backoff; renews the node certificate in-band.

use std::sync::Arc;
use std::time::Duration;

use crate::unix_now;
use crate::{LastSync, Persisted, Update};
use anyhow::{anyhow, Result};
use proto::cluster_client::ClusterClient;
use proto::{control_message, node_message, NodeMessage};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::control_planes::{Candidate, ControlPlanes};
use crate::identity::{self, Identity};
use crate::Node;

/// Exponential backoff with full jitter, from about 0.5 s up to 30 s.
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Self {
        Backoff { attempt: 0 }
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let cap = (500u64 << self.attempt.min(6)).min(30_000);
        self.attempt += 1;
        let jittered = cap / 2 + rand::random::<u64>() % (cap / 2 + 1);
        Duration::from_millis(jittered)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the sync loop on a thread of its own (a single-threaded runtime at the configuration thread's low
/// priority), so receiving, decrypting and reassembling a multi-megabyte snapshot never runs on the
/// proxy's threads. Ends when `shutdown` turns true.
pub fn spawn(
    node: Arc<Node>,
    cps: ControlPlanes,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("portcullis-sync".into())
        .spawn(move || {
            crate::background::lower_priority();
            rt.block_on(run(node, cps, shutdown));
        })
}

/// Runs the sync loop until `shutdown` turns true. Each connection attempt takes the next control-plane
/// address, so when one control plane is gone the next attempt goes to another.
pub async fn run(node: Arc<Node>, cps: ControlPlanes, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new();
    let mut attempt = 0usize;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.changed() => return,
            r = async {
                let cp = cps.pick(attempt).await?;
                session(&node, &cp, &mut backoff).await
            } => r,
        };
        attempt = attempt.wrapping_add(1);
        {
            node.update_cp_status(|st| {
                st.connected = false;
                if let Err(e) = &outcome {
                    st.last_error = Some(format!("{e:#}"));
                }
            });
        }
        match outcome {
            Ok(()) => info!("sync stream ended; reconnecting"),
            Err(e) => warn!(error = %format!("{e:#}"), "control plane connection failed"),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn session(node: &Arc<Node>, cp: &Candidate, backoff: &mut Backoff) -> Result<()> {
    let identity = node
        .identity()
        .ok_or_else(|| anyhow!("node has no identity"))?;
    let channel = identity::connect(
        cp,
        identity.client_tls()?,
        node.settings().heartbeat_timeout,
    )
    .await?;
    // Snapshots are as large as the node allows (--max-config-bytes), not gRPC's 4 MiB default.
    let mut client = ClusterClient::new(channel)
        .max_decoding_message_size(node.settings().max_config_bytes.saturating_add(64 * 1024));
    let (tx, rx) = mpsc::channel::<NodeMessage>(16);
    let rt = node.live();
    let hello = proto::Hello {
        node_id: identity.node_id.clone(),
        hostname: node.settings().node_name.clone(),
        software_version: shared::VERSION.to_string(),
        plugins: node
            .settings()
            .plugins
            .iter()
            .map(|(n, v)| proto::PluginVersion {
                name: n.to_string(),
                version: v.to_string(),
            })
            .collect(),
        config_version: rt.as_ref().map(|r| r.version).unwrap_or(0),
        config_hash: rt.as_ref().map(|r| r.hash.clone()).unwrap_or_default(),
        cert_not_after: identity.cert_not_after,
        features: node.settings().sync_features.clone(),
    };
    tx.send(NodeMessage {
        kind: Some(node_message::Kind::Hello(hello)),
    })
    .await?;
    let mut inbound = client
        .sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| anyhow!("control plane refused the sync stream: {}", s.message()))?
        .into_inner();
    {
        node.update_cp_status(|st| {
            st.connected = true;
            st.address = Some(cp.to_string());
            st.last_error = None;
        });
    }
    info!(node_id = %identity.node_id, control_plane = %cp, "connected to the control plane");
    backoff.reset();
    let settings = node.settings();
    let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
    let mut deadline = Instant::now() + settings.heartbeat_timeout;
    let mut renew_check =
        tokio::time::interval(Duration::from_secs(1).min(settings.heartbeat_interval));
    // Target health last reported on this stream (a new stream reports it again).
    let mut reported_health = None;
    let revocations = node.session_revocations().clone();
    let mut revocations_sent = Vec::new();
    // A payload sent in parts: the parts so far.
    let mut parts = proto::payload::Assembly::default();
    send_revocations(&tx, &revocations, &mut revocations_sent).await?;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let hb = proto::Heartbeat { sent_at_ms: unix_now() * 1000 };
                tx.send(NodeMessage { kind: Some(node_message::Kind::Heartbeat(hb)) }).await?;
                let health = health_report(node);
                if reported_health.as_ref() != Some(&health) {
                    tx.send(NodeMessage { kind: Some(node_message::Kind::Health(health.clone())) }).await?;
                    reported_health = Some(health);
                }
            }
            _ = renew_check.tick() => {
                if let Some(not_after) = renew_if_due(node, &mut client).await? {
                    tx.send(NodeMessage { kind: Some(node_message::Kind::CertNotAfter(not_after)) }).await?;
                }
            }
            _ = revocations.reported() => send_revocations(&tx, &revocations, &mut revocations_sent).await?,
            _ = tokio::time::sleep_until(deadline) => return Err(anyhow!("no heartbeat from the control plane within {:?}", settings.heartbeat_timeout)),
            msg = inbound.message() => {
                let Some(msg) = msg.map_err(|s| anyhow!("sync stream closed by the control plane: {}", s.message()))? else { return Ok(()) };
                deadline = Instant::now() + settings.heartbeat_timeout;
                match msg.kind {
                    Some(control_message::Kind::Part(p)) => parts.push(&p.data, settings.max_config_bytes),
                    Some(control_message::Kind::Snapshot(s)) => {
                        let received = Received { version: s.version, hash: s.hash, encoding: s.encoding, bytes: parts.finish(s.payload), base: None };
                        let reply = apply(node, received).await;
                        tx.send(NodeMessage { kind: Some(reply) }).await?;
                    }
                    Some(control_message::Kind::Delta(d)) => {
                        let received = Received { version: d.version, hash: d.hash, encoding: d.encoding, bytes: parts.finish(d.changes), base: Some((d.base_version, d.base_hash)) };
                        let reply = apply(node, received).await;
                        tx.send(NodeMessage { kind: Some(reply) }).await?;
                    }
                    Some(control_message::Kind::Purge(p)) => {
                        if node.purge_cache(&p.cache, &p.key) {
                            info!(cache = %p.cache, single = !p.key.is_empty(), "cache purged by the control plane");
                        } else {
                            warn!(cache = %p.cache, "ignored a malformed purge command");
                        }
                    }
                    Some(control_message::Kind::SessionRevocation(r)) => node.learn_revocation(r),
                    Some(control_message::Kind::Heartbeat(_)) | None => {}
                }
            }
        }
    }
}

/// Sends the session revocations reported here that the control plane has not echoed yet and that
/// this stream has not carried (`sent`).
async fn send_revocations(
    tx: &mpsc::Sender<NodeMessage>,
    revocations: &crate::plugins::SessionRevocations,
    sent: &mut Vec<crate::plugins::session_revocations::Revocation>,
) -> Result<()> {
    for r in revocations.unsent() {
        if sent.contains(&r) {
            continue;
        }
        let kind = node_message::Kind::SessionRevocation(r.to_wire());
        tx.send(NodeMessage { kind: Some(kind) }).await?;
        sent.push(r);
    }
    Ok(())
}

/// A snapshot or delta as it came off the stream.
struct Received {
    version: u64,
    hash: String,
    encoding: String,
    /// The payload, assembled from its parts (an error when they were too large).
    bytes: Result<bytes::Bytes, proto::payload::PayloadError>,
    /// Version and hash a delta applies to; `None` for a full snapshot.
    base: Option<(u64, String)>,
}

/// Decompresses and applies on the configuration thread, and answers with an ACK or a NACK.
/// Every Target's health on this node.
fn health_report(node: &Node) -> proto::HealthReport {
    proto::HealthReport {
        targets: node
            .health()
            .snapshot()
            .into_iter()
            .map(|p| proto::TargetHealth {
                upstream_id: p.key.upstream.to_string(),
                target: p.key.target,
                address: p.key.address,
                healthy: p.healthy,
            })
            .collect(),
    }
}

async fn apply(node: &Arc<Node>, r: Received) -> node_message::Kind {
    let (version, hash) = (r.version, r.hash.clone());
    let received_bytes = r.bytes.as_ref().map_or(0, |b| b.len()) as u64;
    let kind = if r.base.is_some() { "delta" } else { "full" };
    let n = node.clone();
    let result = node
        .on_config_thread(move || {
            let refused = |e: proto::payload::PayloadError| (e.to_string(), e.kind());
            let bytes = r.bytes.map_err(refused)?;
            let plain =
                proto::payload::decompress(&r.encoding, &bytes, n.settings().max_config_bytes)
                    .map_err(refused)?;
            let update = match r.base {
                None => Update::Full {
                    version: r.version,
                    hash: r.hash,
                    payload: plain,
                },
                Some((base_version, base_hash)) => Update::Delta {
                    base_version,
                    base_hash,
                    version: r.version,
                    hash: r.hash,
                    changes: plain,
                },
            };
            n.apply(&update, true)
                .map_err(|e| (e.to_string(), e.kind()))
        })
        .await
        .unwrap_or_else(|e| Err((e, "node_error")));
    match result {
        Ok(applied) => {
            let last = LastSync {
                kind,
                version,
                received_bytes,
                apply_micros: applied.micros,
                apply_cpu_micros: applied.cpu_micros,
            };
            node.update_cp_status(|st| st.last_sync = Some(last));
            node_message::Kind::Ack(proto::Ack {
                version,
                hash,
                not_persisted: match applied.persisted {
                    Persisted::Failed(why) => why,
                    Persisted::Yes | Persisted::NotAsked => String::new(),
                },
                sync_kind: kind.to_string(),
                received_bytes,
                apply_micros: applied.micros,
                apply_cpu_micros: applied.cpu_micros,
            })
        }
        Err((reason, why)) => {
            let rejected = format!("version {version} ({kind}): {reason}");
            node.update_cp_status(|st| st.last_rejected = Some(rejected));
            node_message::Kind::Nack(proto::Nack {
                version,
                hash,
                reason,
                kind: why.to_string(),
            })
        }
    }
}

/// Renews the node certificate when less than a third of its lifetime is left. Returns the new expiry.
async fn renew_if_due(
    node: &Arc<Node>,
    client: &mut ClusterClient<tonic::transport::Channel>,
) -> Result<Option<i64>> {
    let identity = node
        .identity()
        .ok_or_else(|| anyhow!("node has no identity"))?;
    let now = unix_now();
    let issued_for = node.cert_lifetime_hint(&identity);
    if identity.cert_not_after - now > issued_for / 3 {
        return Ok(None);
    }
    let (key_pem, csr_pem) = identity::new_key_and_csr()?;
    let resp = client
        .renew(proto::RenewRequest { csr_pem })
        .await
        .map_err(|s| anyhow!("certificate renewal refused: {}", s.message()))?
        .into_inner();
    let renewed = Identity {
        key_pem,
        cert_not_after: identity::pem_not_after(&resp.certificate_pem)?,
        cert_pem: resp.certificate_pem,
        ..identity
    };
    // A certificate that cannot be stored is still used: the node keeps its stream and reports it.
    info!(
        not_after = renewed.cert_not_after,
        "node certificate renewed"
    );
    let not_after = renewed.cert_not_after;
    node.adopt_identity(renewed);
    Ok(Some(not_after))
}
