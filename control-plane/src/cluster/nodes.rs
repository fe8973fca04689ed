//! What the control plane knows about each paired node: its durable record (identity, labels, revocation)
//! and its live session (connection, applied config, sync status).
//!
//! With a shared store, node records are read back from the store (a node may have paired with another
//! control plane) and each control plane writes the live part of the nodes it holds as
//! [`Records::NodeStatus`] (see [`crate::sharing`]), so the node view on any control plane lists every
//! node with the control plane it is connected to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::snapshots::Published;
use crate::store::{Event, Records, Store, StoreError};

/// The durable part of a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub paired_at: i64,
    pub cert_not_after: i64,
    pub revoked: bool,
}

/// The live part of a node, while and after it is connected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    pub connected: bool,
    pub ip: Option<String>,
    pub software_version: Option<String>,
    pub plugins: BTreeMap<String, String>,
    pub applied_version: u64,
    pub applied_hash: String,
    pub last_seen: i64,
    /// The last NACK: version, hash and reason.
    pub nack: Option<(u64, String, String)>,
    /// Why the node could not store what it last ACKed (it serves it, but would lose it on restart).
    pub not_persisted: Option<String>,
    /// Sync protocol features from the node's hello.
    pub features: Vec<String>,
    /// How the last acknowledged config arrived.
    pub last_sync: Option<LastSync>,
    /// Every Target's health as the node last reported it.
    #[serde(default)]
    pub target_health: Vec<TargetHealth>,
    #[serde(skip)]
    session: u64,
}

/// One Target's health on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub upstream_id: String,
    pub target: String,
    /// The address of the Target this is the health of (`ip:port`).
    #[serde(default)]
    pub address: String,
    pub healthy: bool,
}

/// How a node's last acknowledged config arrived and what it cost the node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastSync {
    /// `full` or `delta`.
    pub kind: String,
    pub received_bytes: u64,
    pub apply_micros: u64,
    pub apply_cpu_micros: u64,
    /// Unix milliseconds when this control plane received the ACK.
    pub acked_at_ms: i64,
}

struct Entry {
    record: NodeRecord,
    live: Live,
    /// Closes the current session when set to true.
    kill: Option<watch::Sender<bool>>,
}

/// The live part of a node as another control plane holding its stream reported it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Name of that control plane.
    pub control_plane: String,
    /// What it reported.
    pub live: Live,
}

/// Registry of nodes, shared by the gRPC service and the Admin API.
pub struct Nodes {
    store: Arc<dyn Store>,
    /// This control plane's name, shown beside the nodes connected to it.
    name: String,
    inner: Mutex<HashMap<String, Entry>>,
    /// Nodes whose live part changed since it was last written to a shared store.
    dirty: Mutex<BTreeSet<String>>,
    next_session: std::sync::atomic::AtomicU64,
    /// What the node streams have done since this control plane started.
    pub counters: super::counters::SyncCounters,
}

/// Why a node may not open a session.
#[derive(Debug)]
pub enum Refusal {
    /// Never paired with this control plane.
    Unknown,
    /// Revoked by an operator.
    Revoked,
}

impl Nodes {
    /// Loads the node records from the store; `name` is this control plane's.
    pub async fn load(store: Arc<dyn Store>, name: String) -> Result<Nodes, StoreError> {
        let nodes = Nodes {
            store,
            name,
            inner: Mutex::new(HashMap::new()),
            dirty: Mutex::new(BTreeSet::new()),
            next_session: 1.into(),
            counters: Default::default(),
        };
        nodes.reload_all().await?;
        Ok(nodes)
    }

    /// This control plane's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Re-reads every node record (nodes paired or revoked through other control planes); a node revoked
    /// meanwhile loses its session here.
    pub async fn reload_all(&self) -> Result<(), StoreError> {
        let mut records = Vec::new();
        for (id, value) in self.store.list_records(Records::Nodes).await? {
            records.push(decode(&id, value)?);
        }
        for record in records {
            self.merge(record);
        }
        Ok(())
    }

    /// Re-reads one node record.
    pub async fn reload(&self, id: &str) -> Result<(), StoreError> {
        if let Some(value) = self.store.get_record(Records::Nodes, id).await? {
            self.merge(decode(id, value)?);
        }
        Ok(())
    }

    /// Takes a stored record in; a revoked node's session is closed.
    fn merge(&self, record: NodeRecord) {
        let mut inner = self.inner.lock().expect("nodes lock");
        let e = inner.entry(record.id.clone()).or_insert_with(|| Entry {
            record: record.clone(),
            live: Live::default(),
            kill: None,
        });
        if record.revoked {
            if let Some(kill) = e.kill.take() {
                let _ = kill.send(true);
            }
            e.live.connected = false;
        }
        e.record = record;
    }

    async fn persist(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let value = serde_json::to_value(record).expect("node record serialises");
        self.store
            .put_record(Records::Nodes, &record.id, &value)
            .await
    }

    /// The store that holds node records and pairing tokens.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds a freshly paired node.
    pub async fn add(&self, record: NodeRecord) -> Result<(), StoreError> {
        self.persist(&record).await?;
        self.inner.lock().expect("nodes lock").insert(
            record.id.clone(),
            Entry {
                record,
                live: Live::default(),
                kill: None,
            },
        );
        Ok(())
    }

    /// Checks that `id` may connect. With a shared store its record is read afresh (it may have paired
    /// with, or been revoked by, another control plane); when the store cannot answer, what is known here
    /// decides.
    pub async fn admit(&self, id: &str) -> Result<(), Refusal> {
        if self.store.shared() {
            if let Err(e) = self.reload(id).await {
                tracing::warn!(node_id = %id, error = %e, "cannot re-read the node's record; admitting on what is known here");
            }
        }
        match self.inner.lock().expect("nodes lock").get(id) {
            None => Err(Refusal::Unknown),
            Some(e) if e.record.revoked => Err(Refusal::Revoked),
            Some(_) => Ok(()),
        }
    }

    /// Starts a session for `id`, closing any older one. Returns the session number and its kill switch.
    pub fn connect(&self, id: &str, ip: String, now: i64) -> (u64, watch::Receiver<bool>) {
        let session = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        self.counters
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut inner = self.inner.lock().expect("nodes lock");
        if let Some(e) = inner.get_mut(id) {
            if let Some(old) = e.kill.take() {
                let _ = old.send(true);
            }
            e.kill = Some(tx);
            e.live.connected = true;
            e.live.ip = Some(ip);
            e.live.last_seen = now;
            e.live.session = session;
        }
        self.mark(id);
        (session, rx)
    }

    /// Ends a session; the node shows as disconnected unless a newer session replaced it.
    pub fn disconnect(&self, id: &str, session: u64) {
        if let Some(e) = self.inner.lock().expect("nodes lock").get_mut(id) {
            if e.live.session == session {
                e.live.connected = false;
                e.kill = None;
            }
        }
        self.mark(id);
    }

    /// Applies `f` to the live part of a node.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Live)) {
        if let Some(e) = self.inner.lock().expect("nodes lock").get_mut(id) {
            f(&mut e.live);
        }
        self.mark(id);
    }

    fn mark(&self, id: &str) {
        if self.store.shared() {
            self.dirty
                .lock()
                .expect("dirty lock")
                .insert(id.to_string());
        }
    }

    /// The live parts changed since the last call, as the values to write to [`Records::NodeStatus`].
    pub fn take_changed(&self) -> Vec<(String, Value)> {
        let ids = std::mem::take(&mut *self.dirty.lock().expect("dirty lock"));
        let inner = self.inner.lock().expect("nodes lock");
        ids.into_iter()
            .filter_map(|id| {
                let e = inner.get(&id)?;
                let value = json!({ "control_plane": self.name, "live": e.live });
                Some((id, value))
            })
            .collect()
    }

    /// Marks every node held here as changed, so the next write repeats them all (after an outage).
    pub fn mark_all_held(&self) {
        let inner = self.inner.lock().expect("nodes lock");
        let mut dirty = self.dirty.lock().expect("dirty lock");
        dirty.extend(
            inner
                .values()
                .filter(|e| e.live.connected)
                .map(|e| e.record.id.clone()),
        );
    }

    /// Records a new certificate expiry (after pairing or renewal).
    pub async fn set_cert_not_after(&self, id: &str, not_after: i64) -> Result<(), StoreError> {
        let record = {
            let mut inner = self.inner.lock().expect("nodes lock");
            let Some(e) = inner.get_mut(id) else {
                return Ok(());
            };
            e.record.cert_not_after = not_after;
            e.record.clone()
        };
        self.persist(&record).await
    }

    /// Revokes a node: its session is closed now (by whichever control plane holds it) and it is refused
    /// from then on.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        if self.store.shared() {
            self.reload(id).await?;
        }
        let record = {
            let inner = self.inner.lock().expect("nodes lock");
            let Some(e) = inner.get(id) else {
                return Ok(false);
            };
            NodeRecord {
                revoked: true,
                ..e.record.clone()
            }
        };
        self.persist(&record).await?;
        self.merge(record);
        if let Err(e) = self
            .store
            .announce(&Event::NodeChanged(id.to_string()))
            .await
        {
            // The others see the record on their next periodic check.
            tracing::warn!(node_id = %id, error = %e, "cannot announce the revocation at once");
        }
        Ok(true)
    }

    /// Number of connected nodes.
    pub fn connected(&self) -> usize {
        self.inner
            .lock()
            .expect("nodes lock")
            .values()
            .filter(|e| e.live.connected)
            .count()
    }

    /// The node as the Admin API shows it, or every node. `remote` holds what other control planes
    /// report of the nodes they hold.
    pub fn view(
        &self,
        id: Option<&str>,
        latest: Option<&Published>,
        remote: &HashMap<String, Remote>,
    ) -> Vec<Value> {
        match id {
            Some(id) => {
                let inner = self.inner.lock().expect("nodes lock");
                let entry = inner.get(id);
                entry
                    .map(|e| {
                        let (live, held_by) = self.shown(e, remote);
                        render(&e.record, live, held_by, latest)
                    })
                    .into_iter()
                    .collect()
            }
            None => self.page(0, usize::MAX, latest, remote).0,
        }
    }

    /// `size` nodes from position `offset` in the order of their ids, and how many nodes there are: only
    /// the nodes of the page are rendered.
    ///
    /// The nodes lock is held only to copy the page's records, not while rendering them: every stream
    /// takes it to record heartbeats and ACKs.
    pub fn page(
        &self,
        offset: usize,
        size: usize,
        latest: Option<&Published>,
        remote: &HashMap<String, Remote>,
    ) -> (Vec<Value>, usize) {
        let (picked, total) = {
            let inner = self.inner.lock().expect("nodes lock");
            let mut ids: Vec<&String> = inner.keys().collect();
            ids.sort_unstable();
            let picked: Vec<(NodeRecord, Live, Option<String>)> = ids
                .iter()
                .skip(offset)
                .take(size)
                .filter_map(|id| inner.get(*id))
                .map(|e| {
                    let (live, held_by) = self.shown(e, remote);
                    (e.record.clone(), live.clone(), held_by.map(str::to_string))
                })
                .collect();
            (picked, ids.len())
        };
        let out = picked
            .iter()
            .map(|(record, live, held_by)| render(record, live, held_by.as_deref(), latest))
            .collect();
        (out, total)
    }

    /// How many nodes the view would show with each connection status and sync status, without
    /// rendering it.
    pub fn census(
        &self,
        latest: Option<&Published>,
        remote: &HashMap<String, Remote>,
    ) -> BTreeMap<(&'static str, &'static str), u64> {
        let inner = self.inner.lock().expect("nodes lock");
        let mut counts = BTreeMap::new();
        for e in inner.values() {
            let (live, _) = self.shown(e, remote);
            let key = (
                connection_status(&e.record, live),
                sync_status(&e.record, live, latest).0,
            );
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    /// The live part the view shows for a node (another control plane's report while that one holds
    /// its stream), and the control plane holding the stream.
    fn shown<'a>(
        &'a self,
        e: &'a Entry,
        remote: &'a HashMap<String, Remote>,
    ) -> (&'a Live, Option<&'a str>) {
        match remote.get(&e.record.id) {
            Some(r) if !e.live.connected && r.control_plane != self.name => {
                (&r.live, Some(r.control_plane.as_str()))
            }
            _ => (&e.live, e.live.connected.then_some(self.name.as_str())),
        }
    }
}

/// Which of the snapshot's plugins the node lacks.
pub fn missing_plugins(
    node_plugins: &BTreeMap<String, String>,
    needed: &BTreeSet<String>,
) -> Vec<String> {
    needed
        .iter()
        .filter(|p| !node_plugins.contains_key(*p))
        .cloned()
        .collect()
}

fn decode(id: &str, value: Value) -> Result<NodeRecord, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        key: format!("nodes/{id}"),
        reason: e.to_string(),
    })
}

/// `revoked`, `connected` or `disconnected`.
fn connection_status(record: &NodeRecord, live: &Live) -> &'static str {
    if record.revoked {
        "revoked"
    } else if live.connected {
        "connected"
    } else {
        "disconnected"
    }
}

/// Whether the node runs the latest configuration, and if not, why (when there is a reason to give).
fn sync_status(
    record: &NodeRecord,
    live: &Live,
    latest: Option<&Published>,
) -> (&'static str, Option<String>) {
    if record.revoked {
        ("revoked", None)
    } else if live.software_version.is_none() {
        ("unknown", None)
    } else {
        match latest {
            None => ("in_sync", None),
            Some(s) => {
                let missing = missing_plugins(&live.plugins, &s.plugins);
                if !missing.is_empty() {
                    let list = missing
                        .iter()
                        .map(|m| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    ("incompatible", Some(format!("config version {} uses plugin {list}, which this node does not support", s.version)))
                } else if live.applied_hash == s.hash {
                    match &live.not_persisted {
                        Some(why) => (
                            "applied_not_persisted",
                            Some(format!("applied, not persisted: {why}")),
                        ),
                        None => ("in_sync", None),
                    }
                } else if let Some((v, _, reason)) = live.nack.as_ref().filter(|n| n.0 == s.version)
                {
                    (
                        "rejected",
                        Some(format!("config version {v} rejected: {reason}")),
                    )
                } else {
                    ("behind", None)
                }
            }
        }
    }
}

fn render(
    record: &NodeRecord,
    live: &Live,
    control_plane: Option<&str>,
    latest: Option<&Published>,
) -> Value {
    let (sync_status, reason) = sync_status(record, live, latest);
    json!({
        "id": record.id,
        "hostname": record.hostname,
        "ip": live.ip,
        "labels": record.labels,
        "version": live.software_version,
        "plugins": live.plugins,
        "status": connection_status(record, live),
        "control_plane": if record.revoked { None } else { control_plane },
        "config_version": live.applied_version,
        "config_hash": if live.applied_hash.is_empty() { Value::Null } else { Value::String(live.applied_hash.clone()) },
        "sync_status": sync_status,
        "sync_status_reason": reason,
        "last_seen": if live.last_seen == 0 { Value::Null } else { json!(live.last_seen) },
        "paired_at": record.paired_at,
        "cert_expiry": record.cert_not_after,
        "sync": {
            "features": live.features,
            "last_kind": live.last_sync.as_ref().map(|l| l.kind.clone()),
            "last_received_bytes": live.last_sync.as_ref().map(|l| l.received_bytes),
            "last_apply_micros": live.last_sync.as_ref().map(|l| l.apply_micros),
            "last_apply_cpu_micros": live.last_sync.as_ref().map(|l| l.apply_cpu_micros),
            "last_acked_at_ms": live.last_sync.as_ref().map(|l| l.acked_at_ms),
        },
        "target_health": live.target_health,
    })
}
