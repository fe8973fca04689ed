//! A node given several control-plane addresses: it uses one that answers, and when that control plane
//! goes away it reconnects to another on its next attempt, with the identity it has (no re-pairing), while
//! it keeps serving traffic.
//!
//! The second control plane is started from a copy of the first one's data dir (same cluster CA, same node
//! records, same config): two control planes of one cluster, as far as a node can tell.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;
use tests::{
    client, closed_port, eventually, ControlPlane, CpOptions, DataPlane, DpOptions, EchoUpstream,
    PATIENCE,
};

async fn connected_to(dp: &DataPlane) -> Option<String> {
    let st = dp.status().await.ok()?;
    (st["control_plane"]["connected"] == true)
        .then(|| st["control_plane"]["address"].as_str().map(String::from))
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_moves_to_another_control_plane_without_re_pairing_and_keeps_serving() {
    let up = EchoUpstream::start().await;
    let mut cp = ControlPlane::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    // Pair with the first control plane; a dead address before it in the list is skipped.
    let dead = format!("127.0.0.1:{}", closed_port().await);
    let mut dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(format!("{dead},{}", cp.cluster_addr)),
        ..Default::default()
    })
    .await;
    let node_id = dp.node_id.clone().unwrap();
    let version = cp.version().await;
    dp.wait_version(version).await;
    dp.stop().await;
    cp.stop().await;

    // A second control plane of the same cluster.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", cp.data_dir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let cp_a = ControlPlane::start_with(CpOptions {
        data_dir: Some(cp.data_dir.clone()),
        ..Default::default()
    })
    .await;
    let cp_b = ControlPlane::start_with(CpOptions {
        data_dir: Some(copy.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let (a, b) = (cp_a.cluster_addr.to_string(), cp_b.cluster_addr.to_string());
    let dp = DataPlane::start_with(DpOptions {
        data_dir: Some(dp.data_dir.clone()),
        control_plane: Some(format!("{a},{b}")),
        ..Default::default()
    })
    .await;
    assert_eq!(dp.node_id.as_deref(), Some(node_id.as_str()));
    let first = eventually(PATIENCE, "the node connects", || connected_to(&dp)).await;
    assert!(first == a || first == b, "{first}");

    // Traffic flows while the node's control plane goes away.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            format!("{}/x", dp.proxy_url),
        );
        tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let (mut gone, other) = if first == a {
        (cp_a, cp_b)
    } else {
        (cp_b, cp_a)
    };
    gone.stop().await;
    let other_addr = other.cluster_addr.to_string();
    let moved = eventually(
        PATIENCE,
        "the node reconnects to the other control plane",
        || async { connected_to(&dp).await.filter(|c| *c == other_addr) },
    )
    .await;
    assert_eq!(moved, other_addr);
    let view = eventually(
        PATIENCE,
        "the other control plane shows the node",
        || async {
            let n = other
                .get(&format!("/clustering/data-planes/{node_id}"))
                .await
                .ok()?;
            (n["status"] == "connected").then_some(n)
        },
    )
    .await;
    assert_eq!(view["config_version"], version);
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no proxied request failed"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
    // And a write on the control plane it moved to reaches it.
    other
        .post("/services/echo/routes", json!({"paths": ["/after"]}))
        .await;
    dp.wait_version(other.version().await).await;
}
