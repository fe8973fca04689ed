//! Process-level behaviour with the real binaries: kill -9, restarts from disk, a control plane outage, and
//! a frozen node detected by the heartbeat timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::process::{dp_version, post, start_cp, start_dp};
use tests::{client, eventually, get_json, EchoUpstream, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = start_cp(dir.path(), "127.0.0.1:0", "cp1.log").await;
    let mut last_version = 0;
    for i in 0..50 {
        post(
            &cp.admin,
            "/consumers",
            json!({"username": format!("user-{i}")}),
        )
        .await;
        let status = get_json(&format!("{}/status", cp.admin)).await;
        last_version = status["config_version"].as_u64().unwrap();
    }
    // The last write was acknowledged; kill at once.
    cp.proc.kill9();
    let cp2 = start_cp(dir.path(), "127.0.0.1:0", "cp2.log").await;
    let consumers = get_json(&format!("{}/consumers?size=1000", cp2.admin)).await;
    assert_eq!(
        consumers["data"].as_array().unwrap().len(),
        50,
        "every acknowledged write is there"
    );
    let version = get_json(&format!("{}/status", cp2.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    assert!(
        version >= last_version,
        "config version went backwards: {version} < {last_version}"
    );
    // And it keeps counting up.
    post(
        &cp2.admin,
        "/consumers",
        json!({"username": "after-restart"}),
    )
    .await;
    assert_eq!(
        get_json(&format!("{}/status", cp2.admin)).await["config_version"]
            .as_u64()
            .unwrap(),
        version + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_control_plane_outage_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let mut cp = start_cp(dir.path(), "127.0.0.1:0", "cp1.log").await;
    let cluster = cp.cluster.clone();
    let token = post(&cp.admin, "/clustering/pairing-tokens", json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut dp, proxy, status) = start_dp(dir.path(), &cluster, Some(&token), "dp1.log").await;
    post(
        &cp.admin,
        "/services",
        json!({"name": "echo", "url": up.url}),
    )
    .await;
    post(
        &cp.admin,
        "/services/echo/routes",
        json!({"paths": ["/echo"]}),
    )
    .await;
    let v1 = get_json(&format!("{}/status", cp.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    eventually(PATIENCE, "node applied v1", || async {
        (dp_version(&status).await >= v1).then_some(())
    })
    .await;

    // Control plane killed while traffic flows: zero failed requests.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            format!("{proxy}/echo"),
        );
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    eventually(PATIENCE, "traffic flowing", || async {
        (ok.load(Ordering::Relaxed) > 50).then_some(())
    })
    .await;
    cp.proc.kill9();
    let at_kill = ok.load(Ordering::Relaxed);
    // The node notices the control plane is gone (stream error or heartbeat timeout)...
    eventually(PATIENCE, "node sees the control plane gone", || async {
        let s = get_json(&format!("{status}/status")).await;
        (s["control_plane"]["connected"] == false).then_some(())
    })
    .await;
    // ...and keeps serving.
    eventually(PATIENCE, "traffic after the kill", || async {
        (ok.load(Ordering::Relaxed) > at_kill + 200).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed while the control plane was down"
    );

    // The node restarts while the control plane is still down: it serves its last-known-good config.
    dp.kill9();
    let (dp2, proxy2, status2) = start_dp(dir.path(), &cluster, None, "dp2.log").await;
    dp2.wait_log("serving the last-known-good config").await;
    let r = client().get(format!("{proxy2}/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(dp_version(&status2).await, v1);

    // The control plane comes back on the same address: the node reconnects and catches up.
    let cp2 = start_cp(dir.path(), &cluster, "cp2.log").await;
    post(
        &cp2.admin,
        "/services/echo/routes",
        json!({"paths": ["/echo2"]}),
    )
    .await;
    let v2 = get_json(&format!("{}/status", cp2.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    assert!(v2 > v1);
    eventually(PATIENCE, "node caught up", || async {
        (dp_version(&status2).await >= v2).then_some(())
    })
    .await;
    assert_eq!(
        client()
            .get(format!("{proxy2}/echo2"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A frozen node (SIGSTOP: socket open, no heartbeats) is shown disconnected within the heartbeat timeout.
    let node_id = get_json(&format!("{status2}/status")).await["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(PATIENCE, "node connected", || async {
        let n = get_json(&format!("{}/clustering/data-planes/{node_id}", cp2.admin)).await;
        (n["status"] == "connected").then_some(())
    })
    .await;
    dp2.signal("STOP");
    let frozen_at = Instant::now();
    eventually(PATIENCE, "frozen node shown disconnected", || async {
        let n = get_json(&format!("{}/clustering/data-planes/{node_id}", cp2.admin)).await;
        (n["status"] == "disconnected").then_some(())
    })
    .await;
    let took = frozen_at.elapsed();
    assert!(
        took < Duration::from_millis(1500 + 1500),
        "detected after {took:?} with a 1.5 s heartbeat timeout"
    );
    dp2.signal("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let mut cp = start_cp(dir.path(), "127.0.0.1:0", "cp.log").await;
    let token = post(&cp.admin, "/clustering/pairing-tokens", json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut dp, proxy, status) = start_dp(dir.path(), &cp.cluster, Some(&token), "dp.log").await;
    post(
        &cp.admin,
        "/services",
        json!({"name": "echo", "url": up.url}),
    )
    .await;
    post(&cp.admin, "/services/echo/routes", json!({"paths": ["/"]})).await;
    let v = get_json(&format!("{}/status", cp.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    eventually(PATIENCE, "node applied", || async {
        (dp_version(&status).await >= v).then_some(())
    })
    .await;
    // A slow request in flight finishes although SIGTERM arrives meanwhile.
    let slow = tokio::spawn({
        let url = format!("{proxy}/delay/700");
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    eventually(PATIENCE, "slow request reached the upstream", || async {
        (up.requests() >= 1).then_some(())
    })
    .await;
    dp.signal("TERM");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "in-flight request completed"
    );
    assert_eq!(dp.wait_exit(Duration::from_secs(15)).await, Some(0));
    cp.proc.signal("TERM");
    assert_eq!(cp.proc.wait_exit(Duration::from_secs(15)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_node_pairs_with_a_control_plane_process() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_cp(dir.path(), "127.0.0.1:0", "cp.log").await;
    let token = post(&cp.admin, "/clustering/pairing-tokens", json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let cps = data_plane::control_planes::ControlPlanes::parse(&cp.cluster).unwrap();
    let identity = data_plane::identity::pair(&cps, &token, "mixed")
        .await
        .unwrap();
    assert!(!identity.node_id.is_empty());
}
