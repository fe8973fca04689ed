//! The cluster side of the control plane: pairing, node certificates, the sync stream, node status.

pub mod counters;
pub mod nodes;
pub mod revocations;
pub mod service;
pub mod snapshots;
pub mod token_record;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::pki::ClusterPki;
use nodes::Nodes;
use snapshots::{PublishStatus, Published};

/// Timing of the cluster protocol.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// How often nodes send a heartbeat (each is answered by one); the control plane shares node status
    /// through a shared store this often.
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is considered dead and its stream closed.
    pub heartbeat_timeout: Duration,
    /// Lifetime of node certificates.
    pub cert_lifetime: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(6),
            cert_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// A cache purge to send to every connected node.
#[derive(Debug, Clone)]
pub struct PurgeCommand {
    /// Which cache (see `cluster.proto`).
    pub cache: String,
    /// Hex SHA-256 of the token, or empty for the whole cache.
    pub key: String,
}

/// Everything the cluster service and the Admin API share.
pub struct Cluster {
    pub pki: ClusterPki,
    pub nodes: Nodes,
    pub settings: ClusterSettings,
    pub snapshots: watch::Receiver<Option<Arc<Published>>>,
    pub publish_status: watch::Receiver<PublishStatus>,
    /// How long encoding configurations for the nodes took.
    pub encode_times: Arc<counters::EncodeTimes>,
    pub purges: broadcast::Sender<PurgeCommand>,
    /// Session revocations to send to every connected node.
    pub revocations: broadcast::Sender<revocations::SessionRevocation>,
    /// Becomes true when the control plane shuts down; sessions close their streams.
    pub shutdown: watch::Receiver<bool>,
}

impl Cluster {
    /// The latest published snapshot.
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.snapshots.borrow().clone()
    }
}

pub use platform::unix_now;
