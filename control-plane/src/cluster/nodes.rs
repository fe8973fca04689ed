//! What the control plane knows about each paired node: its durable record (identity, labels, revocation)
//! and its live session (connection, applied config, sync status).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::snapshots::Published;
use crate::store::{Records, Store, StoreError};

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
#[derive(Debug, Clone, Default)]
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
    session: u64,
}

/// How a node's last acknowledged config arrived and what it cost the node.
#[derive(Debug, Clone, Default)]
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

/// Registry of nodes, shared by the gRPC service and the Admin API.
pub struct Nodes {
    store: Arc<dyn Store>,
    inner: Mutex<HashMap<String, Entry>>,
    next_session: std::sync::atomic::AtomicU64,
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
    /// Loads the node records from the store.
    pub fn load(store: Arc<dyn Store>) -> Result<Nodes, StoreError> {
        let mut inner = HashMap::new();
        for (id, value) in store.list_records(Records::Nodes)? {
            let record: NodeRecord =
                serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
                    key: format!("nodes/{id}"),
                    reason: e.to_string(),
                })?;
            inner.insert(
                id,
                Entry {
                    record,
                    live: Live::default(),
                    kill: None,
                },
            );
        }
        Ok(Nodes {
            store,
            inner: Mutex::new(inner),
            next_session: 1.into(),
        })
    }

    fn persist(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let value = serde_json::to_value(record).expect("node record serialises");
        self.store.put_record(Records::Nodes, &record.id, &value)
    }

    /// The store that holds node records and pairing tokens.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds a freshly paired node.
    pub fn add(&self, record: NodeRecord) -> Result<(), StoreError> {
        self.persist(&record)?;
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

    /// Checks that `id` may connect.
    pub fn admit(&self, id: &str) -> Result<(), Refusal> {
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
    }

    /// Applies `f` to the live part of a node.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Live)) {
        if let Some(e) = self.inner.lock().expect("nodes lock").get_mut(id) {
            f(&mut e.live);
        }
    }

    /// Records a new certificate expiry (after pairing or renewal).
    pub fn set_cert_not_after(&self, id: &str, not_after: i64) -> Result<(), StoreError> {
        let record = {
            let mut inner = self.inner.lock().expect("nodes lock");
            let Some(e) = inner.get_mut(id) else {
                return Ok(());
            };
            e.record.cert_not_after = not_after;
            e.record.clone()
        };
        self.persist(&record)
    }

    /// Revokes a node: its session is closed now and it is refused from then on.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let record = {
            let mut inner = self.inner.lock().expect("nodes lock");
            let Some(e) = inner.get_mut(id) else {
                return Ok(false);
            };
            e.record.revoked = true;
            e.record.clone()
        };
        self.persist(&record)?;
        let mut inner = self.inner.lock().expect("nodes lock");
        if let Some(e) = inner.get_mut(id) {
            if let Some(kill) = e.kill.take() {
                let _ = kill.send(true);
            }
            e.live.connected = false;
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

    /// The node as the Admin API shows it, or every node.
    pub fn view(&self, id: Option<&str>, latest: Option<&Published>) -> Vec<Value> {
        let inner = self.inner.lock().expect("nodes lock");
        let mut out: Vec<Value> = inner
            .values()
            .filter(|e| id.is_none_or(|id| e.record.id == id))
            .map(|e| render(e, latest))
            .collect();
        out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        out
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

fn render(e: &Entry, latest: Option<&Published>) -> Value {
    let live = &e.live;
    let (sync_status, reason) = if e.record.revoked {
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
    };
    json!({
        "id": e.record.id,
        "hostname": e.record.hostname,
        "ip": live.ip,
        "labels": e.record.labels,
        "version": live.software_version,
        "plugins": live.plugins,
        "status": if e.record.revoked { "revoked" } else if live.connected { "connected" } else { "disconnected" },
        "config_version": live.applied_version,
        "config_hash": if live.applied_hash.is_empty() { Value::Null } else { Value::String(live.applied_hash.clone()) },
        "sync_status": sync_status,
        "sync_status_reason": reason,
        "last_seen": if live.last_seen == 0 { Value::Null } else { json!(live.last_seen) },
        "paired_at": e.record.paired_at,
        "cert_expiry": e.record.cert_not_after,
        "sync": {
            "features": live.features,
            "last_kind": live.last_sync.as_ref().map(|l| l.kind.clone()),
            "last_received_bytes": live.last_sync.as_ref().map(|l| l.received_bytes),
            "last_apply_micros": live.last_sync.as_ref().map(|l| l.apply_micros),
            "last_apply_cpu_micros": live.last_sync.as_ref().map(|l| l.apply_cpu_micros),
            "last_acked_at_ms": live.last_sync.as_ref().map(|l| l.acked_at_ms),
        },
    })
}
