//! Control planes sharing one store act as one: this module carries what one of them does to the others.
//!
//! - [`follow`] reacts to the store's events: a version committed elsewhere is caught up with and
//!   published to this control plane's nodes, a node record changed elsewhere (a revocation) is re-read
//!   and the node's session closed here if it is held here, a cache purge or a session revocation reaches the nodes held here.
//!   [`Event::Resync`] (periodic, or after the listener reconnected) does all the checks at once.
//! - [`report`] writes, every heartbeat interval, that this control plane is alive and the live status of
//!   the nodes it holds that changed, so the node view on any control plane shows every node.
//! - [`remote_status`] reads those reports back for the node view.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use crate::cluster::nodes::{Live, Remote};
use crate::cluster::{Cluster, PurgeCommand};
use crate::core::Core;
use crate::store::{Event, Records, StoreError};

/// Runs until `stop` turns true.
pub async fn follow(core: Arc<Core>, cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let mut events = core.store().events();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        let outcome = match event {
            Ok(Event::Committed(version)) if version > core.current().version => {
                core.refresh().await.map(drop)
            }
            Ok(Event::Committed(_)) => Ok(()),
            Ok(Event::NodeChanged(id)) => cluster.nodes.reload(&id).await,
            Ok(Event::Purge { cache, key }) => {
                let _ = cluster.purges.send(PurgeCommand { cache, key });
                Ok(())
            }
            Ok(Event::SessionRevoked(r)) => {
                let _ = cluster.revocations.send(r);
                Ok(())
            }
            Ok(Event::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                let refreshed = core.refresh().await.map(drop);
                let reloaded = cluster.nodes.reload_all().await;
                refreshed.and(reloaded)
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(e) = outcome {
            warn!(error = %e, "cannot follow the other control planes' changes; retrying on the next event");
        }
    }
}

/// Writes this control plane's liveness and the changed status of the nodes it holds, every `interval`,
/// until `stop` turns true. Only for shared stores.
pub async fn report(
    core: Arc<Core>,
    cluster: Arc<Cluster>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let store = core.store().clone();
    let name = cluster.nodes.name().to_string();
    let mut tick = tokio::time::interval(interval);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let alive = json!({ "seen_at_ms": platform::unix_ms() });
        let written: Result<(), StoreError> = async {
            store
                .put_record(Records::ControlPlanes, &name, &alive)
                .await?;
            if failing {
                // Statuses changed during the outage were lost with the failed writes: repeat them all.
                cluster.nodes.mark_all_held();
            }
            for (id, status) in cluster.nodes.take_changed() {
                // A node that left this control plane may already be reported by the one it moved to.
                let keep_theirs = |current: Option<&Value>| match current {
                    Some(c)
                        if !status["live"]["connected"].as_bool().unwrap_or(false)
                            && c["control_plane"].as_str() != Some(name.as_str()) =>
                    {
                        Some(c.clone())
                    }
                    _ => Some(status.clone()),
                };
                store
                    .update_record(Records::NodeStatus, &id, &keep_theirs)
                    .await?;
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) if failing => {
                debug!("node status reports resumed");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    warn!(error = %e, "cannot report node status to the shared store; retrying");
                }
                failing = true;
            }
        }
    }
}

/// What the other control planes report of the nodes they hold. A control plane silent for longer than
/// `liveness` is taken for dead: its nodes show as disconnected. Empty when the store does not answer.
pub async fn remote_status(core: &Core, liveness: Duration) -> HashMap<String, Remote> {
    let store = core.store();
    if !store.shared() {
        return HashMap::new();
    }
    let read = async {
        let planes = store.list_records(Records::ControlPlanes).await?;
        let statuses = store.list_records(Records::NodeStatus).await?;
        Ok::<_, StoreError>((planes, statuses))
    };
    let (planes, statuses) = match read.await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "cannot read other control planes' node status; showing this one's only");
            return HashMap::new();
        }
    };
    let now = platform::unix_ms();
    let alive: HashMap<String, bool> = planes
        .into_iter()
        .map(|(name, v)| {
            let seen = v["seen_at_ms"].as_i64().unwrap_or(0);
            (name, now - seen <= liveness.as_millis() as i64)
        })
        .collect();
    statuses
        .into_iter()
        .filter_map(|(id, v): (String, Value)| {
            let control_plane = v["control_plane"].as_str()?.to_string();
            let mut live: Live = serde_json::from_value(v["live"].clone()).ok()?;
            if !alive.get(&control_plane).copied().unwrap_or(false) {
                live.connected = false;
            }
            Some((
                id,
                Remote {
                    control_plane,
                    live,
                },
            ))
        })
        .collect()
}
