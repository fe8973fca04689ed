//! The gRPC `Cluster` service: Pair, Renew and the long-lived Sync stream.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use proto::{control_message, node_message, ControlMessage, NodeMessage};
use shared::pairing::PairingToken;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::counters::SyncCounters;
use super::nodes::{missing_plugins, LastSync, NodeRecord, Refusal, TargetHealth};
use super::revocations::{self, SessionRevocation};
use super::token_record::{take_one_use, TokenRecord};
use super::transport::PeerInfo;
use super::{unix_now, Cluster};
use crate::store::Records;

/// The gRPC service over the shared cluster state.
#[derive(Clone)]
pub struct ClusterService {
    cluster: Arc<Cluster>,
}

impl ClusterService {
    /// Wraps the shared cluster state.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        ClusterService { cluster }
    }

    /// The node id proven by the peer's certificate, if it may connect.
    async fn authenticated_node(
        &self,
        peer: Option<PeerInfo>,
    ) -> Result<(String, PeerInfo), Status> {
        let peer = peer.ok_or_else(|| Status::internal("connection has no peer information"))?;
        let Some(node_id) = peer.node_id.clone() else {
            return Err(Status::unauthenticated(
                "a client certificate issued by this cluster's CA is required; pair the node first",
            ));
        };
        match self.cluster.nodes.admit(&node_id).await {
            Ok(()) => Ok((node_id, peer)),
            Err(Refusal::Unknown) => Err(Status::permission_denied(format!(
                "node {node_id} is not known to this control plane"
            ))),
            Err(Refusal::Revoked) => Err(Status::permission_denied(format!(
                "node {node_id} has been revoked"
            ))),
        }
    }

    /// Pairs a node with an enrollment token: checks and takes one use of the token, signs the node's
    /// CSR and stores its record.
    async fn enroll(
        &self,
        req: Request<proto::PairRequest>,
    ) -> Result<Response<proto::PairResponse>, Status> {
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .map(|p| p.addr.to_string())
            .unwrap_or_default();
        let req = req.into_inner();
        let token = PairingToken::parse(&req.token).map_err(Status::invalid_argument)?;
        if token.ca_fingerprint != self.cluster.pki.ca_fingerprint {
            return Err(Status::permission_denied(
                "pairing token was issued by another cluster (CA fingerprint differs)",
            ));
        }
        let store = self.cluster.nodes_store();
        let record = store
            .get_record(Records::PairingTokens, &token.id)
            .await
            .map_err(internal)?
            .as_ref()
            .and_then(TokenRecord::read)
            .ok_or_else(|| {
                Status::permission_denied("pairing token is unknown, revoked or already used")
            })?;
        if !constant_time_eq(
            record.secret_hash.as_bytes(),
            token.secret_hash().as_bytes(),
        ) {
            warn!(token_id = %token.id, %peer, "pairing refused: wrong token secret");
            return Err(Status::permission_denied(
                "pairing token is unknown, revoked or already used",
            ));
        }
        if record.expired(unix_now()) {
            let _ = store.take_record(Records::PairingTokens, &token.id).await;
            return Err(Status::permission_denied(format!(
                "pairing token expired at {} (unix seconds)",
                record.expires_at
            )));
        }
        // Take one use; the store hands out each use once, however many nodes race for it. The record
        // goes when its last use is taken.
        let taken = store
            .update_record(Records::PairingTokens, &token.id, &take_one_use)
            .await
            .map_err(internal)?;
        if taken
            .as_ref()
            .and_then(TokenRecord::read)
            .is_none_or(|r| r.uses_left() == 0)
        {
            return Err(Status::permission_denied(
                "pairing token is unknown, revoked or already used",
            ));
        }
        let node_id = uuid::Uuid::new_v4().to_string();
        let issued = self
            .cluster
            .pki
            .issue_node_cert(&req.csr_pem, &node_id, self.cluster.settings.cert_lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let labels = record.labels;
        self.cluster
            .nodes
            .add(NodeRecord {
                id: node_id.clone(),
                hostname: req.hostname.clone(),
                labels,
                paired_at: unix_now(),
                cert_not_after: issued.not_after,
                revoked: false,
            })
            .await
            .map_err(internal)?;
        info!(node_id = %node_id, hostname = %req.hostname, token_id = %token.id, %peer, "node paired");
        Ok(Response::new(proto::PairResponse {
            node_id,
            certificate_pem: issued.pem,
            ca_pem: self.cluster.pki.ca_pem.clone(),
            not_after: issued.not_after,
        }))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn internal(e: impl std::fmt::Display) -> Status {
    warn!(error = %e, "cluster request failed");
    Status::internal("the control plane could not complete the request; see its logs")
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl proto::cluster_server::Cluster for ClusterService {
    async fn pair(
        &self,
        req: Request<proto::PairRequest>,
    ) -> Result<Response<proto::PairResponse>, Status> {
        let outcome = self.enroll(req).await;
        let counters = &self.cluster.nodes.counters;
        SyncCounters::bump(match outcome {
            Ok(_) => &counters.enrollments,
            Err(_) => &counters.enrollments_refused,
        });
        outcome
    }
    async fn renew(
        &self,
        req: Request<proto::RenewRequest>,
    ) -> Result<Response<proto::RenewResponse>, Status> {
        let (node_id, _) = self
            .authenticated_node(req.extensions().get::<PeerInfo>().cloned())
            .await?;
        let issued = self
            .cluster
            .pki
            .issue_node_cert(
                &req.get_ref().csr_pem,
                &node_id,
                self.cluster.settings.cert_lifetime,
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.cluster
            .nodes
            .set_cert_not_after(&node_id, issued.not_after)
            .await
            .map_err(internal)?;
        info!(node_id = %node_id, not_after = issued.not_after, "node certificate renewed");
        Ok(Response::new(proto::RenewResponse {
            certificate_pem: issued.pem,
            not_after: issued.not_after,
        }))
    }

    type SyncStream = SyncStream;

    async fn sync(
        &self,
        req: Request<Streaming<NodeMessage>>,
    ) -> Result<Response<SyncStream>, Status> {
        let (node_id, peer) = self
            .authenticated_node(req.extensions().get::<PeerInfo>().cloned())
            .await?;
        let mut inbound = req.into_inner();
        let timeout = self.cluster.settings.heartbeat_timeout;
        let hello = match tokio::time::timeout(timeout, inbound.message()).await {
            Ok(Ok(Some(NodeMessage {
                kind: Some(node_message::Kind::Hello(h)),
            }))) => h,
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message on the sync stream must be hello",
                ))
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Status::deadline_exceeded("no hello received")),
        };
        if hello.node_id != node_id {
            return Err(Status::permission_denied(
                "hello names another node than the client certificate",
            ));
        }
        let (session, kill) =
            self.cluster
                .nodes
                .connect(&node_id, peer.addr.ip().to_string(), unix_now());
        self.cluster.nodes.update(&node_id, |live| {
            live.software_version = Some(hello.software_version.clone());
            live.plugins = hello
                .plugins
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect();
            live.applied_version = hello.config_version;
            live.applied_hash = hello.config_hash.clone();
            live.features = hello.features.clone();
            live.nack = None;
        });
        if hello.cert_not_after > 0 {
            if let Err(e) = self
                .cluster
                .nodes
                .set_cert_not_after(&node_id, hello.cert_not_after)
                .await
            {
                warn!(node_id = %node_id, error = %e, "cannot store the node's certificate expiry");
            }
        }
        info!(node_id = %node_id, hostname = %hello.hostname, ip = %peer.addr.ip(), version = hello.config_version, "node connected");
        let (tx, rx) = mpsc::channel(16);
        let has = |f: &str| hello.features.iter().any(|x| x == f);
        let session_state = Session {
            cluster: self.cluster.clone(),
            node_id,
            session,
            deltas: has(proto::payload::FEATURE_DELTA),
            zstd: has(proto::payload::FEATURE_ZSTD),
            parts: has(proto::payload::FEATURE_PARTS),
            acked: (hello.config_version, hello.config_hash.clone()),
            base: (hello.config_version, hello.config_hash),
            sent_version: 0,
            in_flight: VecDeque::new(),
            full_next: false,
        };
        tokio::spawn(session_state.run(inbound, tx, kill));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl Cluster {
    fn nodes_store(&self) -> &Arc<dyn crate::store::Store> {
        self.nodes.store()
    }
}

struct Session {
    cluster: Arc<Cluster>,
    node_id: String,
    session: u64,
    /// The node applies `Delta` messages.
    deltas: bool,
    /// The node reads zstd payloads.
    zstd: bool,
    /// The node assembles payloads sent as `PayloadPart`s (large ones are, so that the stream's message
    /// buffer stays small).
    parts: bool,
    /// Version and hash the node last said it runs (hello, then ACKs).
    acked: (u64, String),
    /// Version and hash the node will run once everything sent has been applied: the base of the next
    /// delta.
    base: (u64, String),
    /// The last version sent on this stream.
    sent_version: u64,
    /// Versions and kinds sent and not yet answered, with when they were sent, oldest first (the node
    /// answers in order).
    in_flight: VecDeque<(u64, SyncKind, Instant)>,
    /// The next version goes as a full snapshot (the node refused a delta).
    full_next: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncKind {
    Full,
    Delta,
}

type Tx = mpsc::Sender<Result<ControlMessage, Status>>;

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<NodeMessage>,
        tx: Tx,
        mut kill: tokio::sync::watch::Receiver<bool>,
    ) {
        let settings = self.cluster.settings.clone();
        let mut snapshots = self.cluster.snapshots.clone();
        let mut purges = self.cluster.purges.subscribe();
        let mut revocations = self.cluster.revocations.subscribe();
        if self.send_kept_revocations(&tx).await.is_err() {
            self.cluster.nodes.disconnect(&self.node_id, self.session);
            return;
        }
        let mut shutdown = self.cluster.shutdown.clone();
        let mut deadline = Instant::now() + settings.heartbeat_timeout;
        let reason = loop {
            if self.offer_snapshot(&tx).await.is_err() {
                break "stream closed by the node";
            }
            tokio::select! {
                _ = kill.changed() => break "session closed by the control plane (revoked or replaced)",
                _ = shutdown.changed() => break "control plane shutting down",
                changed = snapshots.changed() => if changed.is_err() { break "control plane shutting down" },
                purge = purges.recv() => {
                    if let Ok(p) = purge {
                        let msg = ControlMessage { kind: Some(control_message::Kind::Purge(proto::Purge { cache: p.cache, key: p.key })) };
                        if tx.send(Ok(msg)).await.is_err() { break "stream closed by the node" }
                    }
                }
                revoked = revocations.recv() => {
                    if let Ok(r) = revoked {
                        let msg = ControlMessage { kind: Some(control_message::Kind::SessionRevocation(r.to_node())) };
                        if tx.send(Ok(msg)).await.is_err() { break "stream closed by the node" }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break "heartbeat timeout",
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => {
                        deadline = Instant::now() + settings.heartbeat_timeout;
                        // A node's heartbeat is answered with one: the node times the control plane by
                        // the answers, so one wake-up per interval serves both directions.
                        let answer = matches!(m.kind, Some(node_message::Kind::Heartbeat(_)));
                        self.handle(m);
                        if answer {
                            let msg = ControlMessage { kind: Some(control_message::Kind::Heartbeat(proto::Heartbeat { sent_at_ms: platform::unix_ms() })) };
                            if tx.send(Ok(msg)).await.is_err() { break "stream closed by the node" }
                        }
                    }
                    Ok(None) => break "stream closed by the node",
                    Err(e) => { warn!(node_id = %self.node_id, error = %e, "sync stream error"); break "stream error" }
                },
            }
        };
        self.cluster.nodes.disconnect(&self.node_id, self.session);
        info!(node_id = %self.node_id, reason, "node disconnected");
    }

    fn handle(&mut self, m: NodeMessage) {
        let now = unix_now();
        match m.kind {
            Some(node_message::Kind::Ack(ack)) => {
                info!(node_id = %self.node_id, version = ack.version, hash = %ack.hash, kind = %ack.sync_kind, bytes = ack.received_bytes, apply_us = ack.apply_micros, "node applied config");
                if let Some((_, sent)) = self.answered(ack.version) {
                    (self.cluster.nodes.counters)
                        .ack_latency
                        .observe(sent.elapsed());
                }
                self.acked = (ack.version, ack.hash.clone());
                (self.cluster.nodes.counters).acked(&ack.sync_kind, ack.received_bytes);
                self.cluster.nodes.update(&self.node_id, |live| {
                    live.applied_version = ack.version;
                    live.applied_hash = ack.hash;
                    live.not_persisted = Some(ack.not_persisted).filter(|w| !w.is_empty());
                    live.last_sync = Some(LastSync {
                        kind: ack.sync_kind,
                        received_bytes: ack.received_bytes,
                        apply_micros: ack.apply_micros,
                        apply_cpu_micros: ack.apply_cpu_micros,
                        acked_at_ms: platform::unix_ms(),
                    });
                    live.last_seen = now;
                });
            }
            Some(node_message::Kind::Nack(nack)) => {
                warn!(node_id = %self.node_id, version = nack.version, reason = %nack.reason, "node rejected config");
                let refused = self.answered(nack.version).map(|(kind, _)| kind);
                self.cluster.nodes.counters.nacks.refused(&nack.kind);
                // The node still runs what it last acknowledged; everything sent after the refused message
                // was built on it and will be refused too, unless a full snapshot is already on its way.
                self.base = self.acked.clone();
                let full_pending = self.in_flight.iter().any(|(_, k, _)| *k == SyncKind::Full);
                if refused == Some(SyncKind::Delta) && !full_pending {
                    self.full_next = true;
                    self.sent_version = 0;
                }
                self.cluster.nodes.update(&self.node_id, |live| {
                    live.nack = Some((nack.version, nack.hash, nack.reason));
                    live.last_seen = now;
                });
            }
            Some(node_message::Kind::CertNotAfter(t)) => {
                let (cluster, id) = (self.cluster.clone(), self.node_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = cluster.nodes.set_cert_not_after(&id, t).await {
                        warn!(node_id = %id, error = %e, "cannot store the node's certificate expiry");
                    }
                });
                self.cluster
                    .nodes
                    .update(&self.node_id, |live| live.last_seen = now);
            }
            Some(node_message::Kind::Health(report)) => {
                self.cluster.nodes.update(&self.node_id, |live| {
                    live.target_health = report
                        .targets
                        .into_iter()
                        .map(|t| TargetHealth {
                            upstream_id: t.upstream_id,
                            target: t.target,
                            address: t.address,
                            healthy: t.healthy,
                        })
                        .collect();
                    live.last_seen = now;
                });
            }
            Some(node_message::Kind::SessionRevocation(m)) => {
                self.revoked(m, now);
                self.cluster
                    .nodes
                    .update(&self.node_id, |live| live.last_seen = now);
            }
            Some(node_message::Kind::Heartbeat(_)) | Some(node_message::Kind::Hello(_)) | None => {
                self.cluster
                    .nodes
                    .update(&self.node_id, |live| live.last_seen = now);
            }
        }
    }

    /// Keeps a session revocation the node received from an identity provider and sends it to every node
    /// (the sender too: that tells it the revocation is kept).
    fn revoked(&self, m: proto::SessionRevocation, now: i64) {
        let r = match SessionRevocation::from_node(m, now) {
            Ok(r) => r,
            Err(why) => {
                return warn!(node_id = %self.node_id, why, "ignored a malformed session revocation")
            }
        };
        let counters = &self.cluster.nodes.counters;
        counters
            .session_revocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(node_id = %self.node_id, issuer = %r.issuer, by_sid = !r.sid.is_empty(), by_sub = !r.sub.is_empty(), "sessions revoked by the identity provider");
        let (store, id) = (self.cluster.nodes_store().clone(), self.node_id.clone());
        tokio::spawn(async move {
            if let Err(e) = revocations::record(store.as_ref(), r).await {
                // The node sends it again on its next stream, since nothing echoed it.
                warn!(node_id = %id, error = %e, "cannot keep a session revocation");
            }
        });
    }

    /// Sends the node every session revocation still kept (a node that was away misses none).
    async fn send_kept_revocations(&self, tx: &Tx) -> Result<(), ()> {
        let kept = match revocations::current(self.cluster.nodes_store().as_ref(), unix_now()).await
        {
            Ok(kept) => kept,
            Err(e) => {
                warn!(node_id = %self.node_id, error = %e, "cannot read the kept session revocations; the node gets them on its next stream");
                return Ok(());
            }
        };
        for r in kept {
            let msg = ControlMessage {
                kind: Some(control_message::Kind::SessionRevocation(r.to_node())),
            };
            tx.send(Ok(msg)).await.map_err(drop)?;
        }
        Ok(())
    }

    /// Takes the oldest unanswered message off the list when it is the one `version` answers; its kind.
    fn answered(&mut self, version: u64) -> Option<(SyncKind, Instant)> {
        match self.in_flight.front() {
            Some((v, _, _)) if *v == version => {
                let (_, kind, sent) = self.in_flight.pop_front()?;
                Some((kind, sent))
            }
            _ => None,
        }
    }

    /// Brings the node to the latest published version when it is not there and has not been sent it on
    /// this stream, and supports every plugin it uses: the changes since its config when the change log
    /// covers them (and the node takes deltas), else a full snapshot.
    async fn offer_snapshot(&mut self, tx: &Tx) -> Result<(), ()> {
        let Some(latest) = self.cluster.latest() else {
            return Ok(());
        };
        let at_latest = self.base.0 == latest.version && self.base.1 == latest.hash;
        if at_latest || latest.version <= self.sent_version {
            return Ok(());
        }
        let mut node_plugins = BTreeMap::new();
        self.cluster
            .nodes
            .update(&self.node_id, |live| node_plugins = live.plugins.clone());
        let missing = missing_plugins(&node_plugins, &latest.plugins);
        if !missing.is_empty() {
            warn!(node_id = %self.node_id, version = latest.version, missing = ?missing, "snapshot not pushed: node lacks plugins");
            self.sent_version = latest.version;
            return Ok(());
        }
        let encoding = if self.zstd {
            proto::payload::ZSTD.to_string()
        } else {
            String::new()
        };
        let delta = (self.deltas && !self.full_next)
            .then(|| latest.delta(self.base.0, &self.base.1, self.zstd))
            .flatten();
        let (kind, payload) = match delta {
            Some(changes) => (SyncKind::Delta, changes),
            None => (SyncKind::Full, latest.full(self.zstd).await),
        };
        let (parts, rest) = if self.parts {
            proto::payload::split(&payload)
        } else {
            (Vec::new(), payload)
        };
        let msg = match kind {
            SyncKind::Delta => control_message::Kind::Delta(proto::Delta {
                base_version: self.base.0,
                base_hash: self.base.1.clone(),
                version: latest.version,
                hash: latest.hash.clone(),
                changes: rest,
                encoding,
            }),
            SyncKind::Full => control_message::Kind::Snapshot(proto::Snapshot {
                version: latest.version,
                hash: latest.hash.clone(),
                payload: rest,
                encoding,
            }),
        };
        self.sent_version = latest.version;
        self.base = (latest.version, latest.hash.clone());
        self.full_next = false;
        self.in_flight
            .push_back((latest.version, kind, Instant::now()));
        for data in parts {
            let part = control_message::Kind::Part(proto::PayloadPart { data });
            tx.send(Ok(ControlMessage { kind: Some(part) }))
                .await
                .map_err(|_| ())?;
        }
        tx.send(Ok(ControlMessage { kind: Some(msg) }))
            .await
            .map_err(|_| ())
    }
}
