//! A running node: the configuration it serves and how an update from the control plane (or the disk)
//! becomes live, the last-known-good store behind it, its identity, and what it reports about its
//! control-plane connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwapOption;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::background::Background;
use crate::cache::Caches;
use crate::dns::Dns;
use crate::identity::{self, Identity};
use crate::lkg::{self, Lkg, StoredSnapshot};
use crate::metrics::Metrics;
use crate::plugins::IdpClients;
use crate::runtime::balancer::Balancer;
use crate::runtime::{self, BuildError, EntityMap, RuntimeConfig};

/// Settings the running node needs.
pub struct Settings {
    /// Where the node's key and certificate are stored.
    pub identity_dir: PathBuf,
    pub node_name: String,
    pub request_id_header: http::HeaderName,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_config_bytes: usize,
    /// Plugins this node runs, with versions.
    pub plugins: Vec<(&'static str, &'static str)>,
    /// Protocol features announced in the hello (`delta`, `zstd`).
    pub sync_features: Vec<String>,
    /// Name servers for Target host names; `None`: the system's.
    pub dns_resolver: Option<shared::dns::Nameservers>,
}

/// Whether an applied snapshot is stored as last-known-good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    /// Stored durably.
    Yes,
    /// Not asked for (the snapshot came from the store itself).
    NotAsked,
    /// Applied and served, but storing failed for this reason: a restart would lose it.
    Failed(String),
}

/// What the node knows about its control-plane connection.
#[derive(Debug, Clone, Default)]
pub struct CpStatus {
    pub node_id: Option<String>,
    pub connected: bool,
    /// The control plane of the current (or last) stream.
    pub address: Option<String>,
    pub last_error: Option<String>,
    pub last_rejected: Option<String>,
    pub lkg_error: Option<String>,
    /// Why the node's identity (key and certificate) could not be stored, while that is so.
    pub identity_error: Option<String>,
    /// The last update applied from the control plane.
    pub last_sync: Option<LastSync>,
}

/// How the last update from the control plane arrived and what it cost.
#[derive(Debug, Clone)]
pub struct LastSync {
    /// `full` or `delta`.
    pub kind: &'static str,
    pub version: u64,
    /// Bytes on the wire (compressed when it was).
    pub received_bytes: u64,
    /// Time to decode, check and build it.
    pub apply_micros: u64,
    /// CPU time of that work.
    pub apply_cpu_micros: u64,
}

/// A running node: its settings, the live configuration, what it keeps across configurations (metrics,
/// caches, identity-provider clients), its last-known-good store and identity, and what it knows about
/// its control-plane connection. The proxy sees only the configuration cell and the metrics
/// ([`crate::proxy::ProxyCtx`]); the sync loop and the status listener go through the methods here.
pub struct Node {
    settings: Settings,
    runtime: Arc<ArcSwapOption<RuntimeConfig>>,
    metrics: Arc<Metrics>,
    caches: Arc<Caches>,
    clients: Arc<IdpClients>,
    traffic: Arc<crate::plugins::TrafficStores>,
    /// Sessions identity providers ended, kept across snapshots.
    revocations: Arc<crate::plugins::SessionRevocations>,
    /// Every Target's health on this node, kept across snapshots.
    health: Arc<crate::runtime::balancer::HealthRegistry>,
    /// Target host names and what they resolve to.
    dns: Arc<Dns>,
    lkg: Lkg,
    identity: Mutex<Option<Identity>>,
    cp_status: Mutex<CpStatus>,
    started: Instant,
    /// Where snapshots are built and stored and replaced configs are freed (see [`crate::background`]).
    background: Background,
}

/// A configuration as the control plane sends it, its payload already decompressed.
#[derive(Debug, Clone)]
pub enum Update {
    /// The whole configuration (`shared::state::encode`).
    Full {
        version: u64,
        hash: String,
        payload: Vec<u8>,
    },
    /// The changes (`shared::delta`) from the config `base_version`/`base_hash` to `version`/`hash`.
    Delta {
        base_version: u64,
        base_hash: String,
        version: u64,
        hash: String,
        changes: Vec<u8>,
    },
}

impl Update {
    /// The version this update brings the node to.
    pub fn version(&self) -> u64 {
        match self {
            Update::Full { version, .. } | Update::Delta { version, .. } => *version,
        }
    }

    /// The content hash of the config this update brings the node to.
    pub fn hash(&self) -> &str {
        match self {
            Update::Full { hash, .. } | Update::Delta { hash, .. } => hash,
        }
    }

    /// `full` or `delta`.
    pub fn kind(&self) -> &'static str {
        match self {
            Update::Full { .. } => "full",
            Update::Delta { .. } => "delta",
        }
    }
}

/// The outcome of an applied update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub persisted: Persisted,
    /// Time spent decoding, checking and building, in microseconds (0 when already live).
    pub micros: u64,
    /// CPU time the configuration thread spent on it, in microseconds.
    pub cpu_micros: u64,
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Node {
    /// A node with no configuration live yet; its identity (if it has one) comes from `identity_dir`.
    pub fn new(
        settings: Settings,
        lkg_dir: &Path,
        cache_max_entries: u64,
        idp_ca_pem: Option<Vec<u8>>,
    ) -> Result<Node> {
        let identity = Identity::load(&settings.identity_dir)?;
        let dns = Arc::new(Dns::new(settings.dns_resolver.as_ref()));
        Ok(Node {
            settings,
            runtime: Arc::new(ArcSwapOption::empty()),
            metrics: Arc::new(Metrics::default()),
            caches: Arc::new(Caches::new(cache_max_entries)),
            traffic: Arc::new(crate::plugins::TrafficStores::new(idp_ca_pem.clone())),
            clients: Arc::new(IdpClients::new(idp_ca_pem)),
            revocations: Arc::default(),
            health: Arc::default(),
            dns,
            lkg: Lkg::open(lkg_dir),
            cp_status: Mutex::new(CpStatus {
                node_id: identity.as_ref().map(|i| i.node_id.clone()),
                ..Default::default()
            }),
            identity: Mutex::new(identity),
            started: Instant::now(),
            background: Background::start().context("cannot start the configuration thread")?,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The configuration cell the proxy reads on every request.
    pub fn config_cell(&self) -> Arc<ArcSwapOption<RuntimeConfig>> {
        self.runtime.clone()
    }

    /// The live configuration's balancers, each time it is called (none before the first one).
    pub fn balancers_view(&self) -> impl Fn() -> EntityMap<Uuid, Arc<Balancer>> + Send + 'static {
        let runtime = self.runtime.clone();
        move || {
            runtime
                .load()
                .as_ref()
                .map(|rt| rt.balancers.clone())
                .unwrap_or_default()
        }
    }

    /// The live configuration's server certificates, for the TLS listener's handshakes.
    pub fn certificates_view(&self) -> crate::tls::Certificates {
        let runtime = self.runtime.clone();
        Box::new(move || runtime.load().as_ref().map(|rt| rt.tls.clone()))
    }

    /// The live configuration, if there is one.
    pub fn live(&self) -> Option<Arc<RuntimeConfig>> {
        self.runtime.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// Every Target's health on this node.
    pub fn health(&self) -> &crate::runtime::balancer::HealthRegistry {
        &self.health
    }

    /// Target host names and what they resolve to.
    pub fn dns(&self) -> &Arc<Dns> {
        &self.dns
    }

    /// Keeps Target host names resolved and the balancers in step until `shutdown` turns true.
    pub fn follow_dns(
        &self,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> {
        crate::dns::follow(
            self.balancers_view(),
            self.dns.clone(),
            self.health.clone(),
            shutdown,
        )
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// A copy of what the node knows about its control-plane connection.
    pub fn cp_status(&self) -> CpStatus {
        self.cp_status.lock().expect("cp status lock").clone()
    }

    /// Changes what the node reports about its control-plane connection.
    pub fn update_cp_status(&self, change: impl FnOnce(&mut CpStatus)) {
        change(&mut self.cp_status.lock().expect("cp status lock"));
    }

    /// The node's key and certificate, once paired.
    pub fn identity(&self) -> Option<Identity> {
        self.identity.lock().expect("identity lock").clone()
    }

    /// Takes `identity` (from pairing or a renewal) into use and stores it; a node whose identity cannot
    /// be stored keeps working with it in memory and reports that (it would need a new pairing token
    /// after a restart).
    pub fn adopt_identity(&self, identity: Identity) {
        let saved = identity
            .save(&self.settings.identity_dir)
            .context("cannot store the node identity");
        self.record_identity_saved(saved);
        self.update_cp_status(|st| st.node_id = Some(identity.node_id.clone()));
        *self.identity.lock().expect("identity lock") = Some(identity);
    }

    /// Runs `work` on the configuration thread (where updates are decoded and built) and waits for it
    /// without blocking the runtime.
    pub async fn on_config_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        self.background.run(work).await
    }

    /// Purges a plugin cache as the control plane asked (see [`Caches::purge`]); false for a malformed
    /// command.
    pub fn purge_cache(&self, cache: &str, key_hex: &str) -> bool {
        let done = self.caches.purge(cache, key_hex);
        if done {
            self.metrics.cache_purges.add(&[("cache", cache)], 1);
        }
        done
    }

    /// Sessions identity providers ended (back-channel logout), as this node knows them.
    pub fn session_revocations(&self) -> &Arc<crate::plugins::SessionRevocations> {
        &self.revocations
    }

    /// Applies a session revocation the control plane sent.
    pub fn learn_revocation(&self, r: proto::SessionRevocation) {
        let r = crate::plugins::session_revocations::Revocation::from_wire(r);
        if self.revocations.learn(&r, crate::unix_now()) {
            self.metrics
                .session_revocations
                .add(&[("source", "control_plane")], 1);
        }
    }

    /// Decodes, checks and builds an update, swaps it in, and (when `persist`) stores it as
    /// last-known-good: a full config as a new snapshot, a delta as a journal record (or a new snapshot
    /// when the journal is due for compaction or the stored chain is broken). On error the current config
    /// stays live. An update that is applied but cannot be stored is still served; the answer says why it
    /// is not persisted (and the ACK carries it).
    pub fn apply(&self, update: &Update, persist: bool) -> Result<Applied, BuildError> {
        let version = update.version();
        let hash = update.hash();
        let already_live = self
            .runtime
            .load_full()
            .is_some_and(|cur| cur.hash == hash && cur.version == version);
        let (mut micros, mut cpu_micros) = (0, 0);
        if !already_live {
            let started = Instant::now();
            let cpu_started = thread_cpu_time();
            let rt = match self.build(update) {
                Ok(rt) => rt,
                Err(reason) => {
                    self.metrics.config_rejected.fetch_add(1, Ordering::Relaxed);
                    warn!(version, kind = update.kind(), reason_kind = reason.kind(), %reason, "config rejected; keeping the current config");
                    return Err(reason);
                }
            };
            let routes = rt.routes.len();
            let rt = Arc::new(rt);
            if let Some(old) = self.runtime.swap(Some(rt.clone())) {
                self.background.retire(old);
            }
            self.metrics.config_applied.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .config_version
                .store(version, Ordering::Relaxed);
            micros = started.elapsed().as_micros() as u64;
            cpu_micros = thread_cpu_time().saturating_sub(cpu_started).as_micros() as u64;
            info!(
                version,
                hash,
                kind = update.kind(),
                routes,
                elapsed_us = micros,
                cpu_us = cpu_micros,
                "config applied"
            );
        }
        if !persist {
            return Ok(Applied {
                persisted: Persisted::NotAsked,
                micros,
                cpu_micros,
            });
        }
        if already_live && self.lkg_error().is_none() {
            return Ok(Applied {
                persisted: Persisted::Yes,
                micros,
                cpu_micros,
            });
        }
        let outcome = self.persist(update);
        self.metrics
            .lkg_degraded
            .store(u64::from(outcome.is_err()), Ordering::Relaxed);
        let mut st = self.cp_status.lock().expect("cp status lock");
        let persisted = match outcome {
            Ok(()) => {
                st.lkg_error = None;
                Persisted::Yes
            }
            Err(e) => {
                self.metrics
                    .lkg_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                error!(error = %e, version, "cannot store the last-known-good config; serving it anyway");
                st.lkg_error = Some(e.clone());
                Persisted::Failed(e)
            }
        };
        Ok(Applied {
            persisted,
            micros,
            cpu_micros,
        })
    }

    /// Stores the live config after `update`: a delta as a journal record when the journal continues the
    /// stored chain, otherwise the whole config as a snapshot.
    fn persist(&self, update: &Update) -> Result<(), String> {
        let chain_intact = self.lkg_error().is_none();
        match update {
            Update::Delta {
                base_version,
                base_hash,
                version,
                hash,
                changes,
            } if chain_intact && !self.lkg.compaction_due() => self
                .lkg
                .append(&lkg::StoredDelta {
                    base_version: *base_version,
                    base_hash: base_hash.clone(),
                    version: *version,
                    hash: hash.clone(),
                    changes: changes.clone(),
                })
                .map_err(|e| format!("{e:#}")),
            Update::Full {
                version,
                hash,
                payload,
            } => self
                .lkg
                .save(&StoredSnapshot {
                    version: *version,
                    hash: hash.clone(),
                    payload: payload.clone(),
                })
                .map_err(|e| format!("{e:#}")),
            Update::Delta { .. } => {
                let Some(rt) = self.runtime.load_full() else {
                    return Err("no config is live".into());
                };
                self.lkg
                    .save(&StoredSnapshot {
                        version: rt.version,
                        hash: rt.hash.clone(),
                        payload: shared::state::encode(&rt.state),
                    })
                    .map_err(|e| format!("{e:#}"))
            }
        }
    }

    fn record_identity_saved(&self, saved: Result<()>) {
        let error = saved.err().map(|e| format!("{e:#}"));
        if let Some(e) = &error {
            error!(error = %e, "cannot store the node identity; keeping it in memory");
        }
        self.cp_status
            .lock()
            .expect("cp status lock")
            .identity_error = error;
    }

    /// Why the last-known-good config could not be stored, while that is so.
    pub fn lkg_error(&self) -> Option<String> {
        self.cp_status
            .lock()
            .expect("cp status lock")
            .lkg_error
            .clone()
    }

    fn build(&self, update: &Update) -> Result<RuntimeConfig, BuildError> {
        let resources = self.resources();
        match update {
            Update::Full {
                version,
                hash,
                payload,
            } => {
                if payload.len() > self.settings.max_config_bytes {
                    return Err(BuildError::TooLarge {
                        size: payload.len(),
                        limit: self.settings.max_config_bytes,
                    });
                }
                if let Some(cur) = self.runtime.load_full().filter(|cur| cur.hash == *hash) {
                    // The same content under a new version number: nothing to rebuild.
                    let (state, digest) = (cur.state.clone(), cur.digest.clone());
                    return cur.updated(*version, state, digest, &Default::default(), &resources);
                }
                let (state, digest) =
                    shared::state::decode(payload, hash).map_err(BuildError::Undecodable)?;
                RuntimeConfig::build(*version, Arc::new(state), digest, &resources)
            }
            Update::Delta {
                base_version,
                base_hash,
                version,
                hash,
                changes,
            } => {
                let cur = self.runtime.load_full().ok_or(BuildError::NoBase {
                    base_version: *base_version,
                })?;
                cur.with_delta(
                    (*base_version, base_hash),
                    (*version, hash),
                    changes,
                    &resources,
                )
            }
        }
    }

    fn resources(&self) -> runtime::Resources {
        runtime::Resources {
            caches: self.caches.clone(),
            metrics: self.metrics.clone(),
            clients: self.clients.clone(),
            traffic: self.traffic.clone(),
            revocations: self.revocations.clone(),
            health: self.health.clone(),
            addresses: self.dns.cache.clone(),
            allowed: self.settings.plugins.iter().map(|(n, _)| *n).collect(),
        }
    }

    /// The lifetime the current certificate was issued for, in seconds.
    pub fn cert_lifetime_hint(&self, identity: &Identity) -> i64 {
        identity::pem_validity(&identity.cert_pem)
            .map(|(nb, na)| na - nb)
            .unwrap_or(86_400)
    }

    /// Applies the stored snapshot and the journal's deltas after it. A journal that ends early (a torn or
    /// damaged record, or a delta that does not apply) is folded into a fresh snapshot of what did apply, so
    /// later deltas are appended to a chain that holds.
    pub fn restore_lkg(&self) {
        let stored = match self.lkg.load() {
            Ok(Some(stored)) => stored,
            Ok(None) => return info!("no last-known-good config yet"),
            Err(e) => {
                return error!(error = %format!("{e:#}"), "cannot read the last-known-good config; waiting for the control plane")
            }
        };
        let snap = stored.snapshot;
        let full = Update::Full {
            version: snap.version,
            hash: snap.hash,
            payload: snap.payload,
        };
        if let Err(reason) = self.apply(&full, false) {
            return error!(%reason, "the stored last-known-good config is unusable; waiting for the control plane");
        }
        let mut broken = stored.journal_damage;
        for d in stored.deltas {
            let update = Update::Delta {
                base_version: d.base_version,
                base_hash: d.base_hash,
                version: d.version,
                hash: d.hash,
                changes: d.changes,
            };
            if let Err(reason) = self.apply(&update, false) {
                broken = Some(format!("version {}: {reason}", d.version));
                break;
            }
        }
        if let Some(rt) = self.runtime.load_full() {
            info!(version = rt.version, "serving the last-known-good config");
            if let Some(why) = broken {
                warn!(%why, version = rt.version, "the last-known-good journal ends early; storing what applied as a snapshot");
                let snap = StoredSnapshot {
                    version: rt.version,
                    hash: rt.hash.clone(),
                    payload: shared::state::encode(&rt.state),
                };
                if let Err(e) = self.lkg.save(&snap) {
                    warn!(error = %format!("{e:#}"), "cannot rewrite the last-known-good snapshot");
                }
            }
        }
    }
}
