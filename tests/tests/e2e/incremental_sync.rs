//! Incremental sync end to end: nodes fed deltas and nodes fed full snapshots end in the same state; a
//! node behind the change log's window gets a full snapshot; a delta that does not lead to the control
//! plane's hash is refused and followed by a full resync; a restart after deltas serves the latest
//! applied version from the last-known-good journal; payloads larger than a message buffer arrive in parts.

use std::path::PathBuf;

use serde_json::{json, Value};
use tests::{
    client, eventually, ControlPlane, CpOptions, DataPlane, DpOptions, EchoUpstream, PATIENCE,
};

async fn node_view(cp: &ControlPlane, id: &str) -> Value {
    cp.get(&format!("/clustering/data-planes/{id}"))
        .await
        .unwrap()
}

/// Waits until the control plane has the node's ACK of `version` on record, and returns the node view.
async fn acked(cp: &ControlPlane, dp: &DataPlane, version: u64) -> Value {
    let id = dp.node_id.clone().unwrap();
    eventually(PATIENCE, "the node's ACK is on record", || async {
        let n = node_view(cp, &id).await;
        (n["config_version"] == version && n["sync_status"] == "in_sync").then_some(n)
    })
    .await
}

/// Waits until the control plane has published its latest committed version, so a node connecting now is
/// sent that version rather than an earlier one the publisher had not yet replaced.
async fn published(cp: &ControlPlane) {
    let version = cp.version().await;
    eventually(PATIENCE, "the latest version is published", || async {
        let st = cp.get("/status").await.ok()?;
        (st["published"]["version"] == version).then_some(())
    })
    .await;
}

async fn node(cp: &ControlPlane, features: &[&str], data_dir: Option<PathBuf>) -> DataPlane {
    DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        sync_features: Some(features.iter().map(|f| f.to_string()).collect()),
        data_dir,
        ..Default::default()
    })
    .await
}

async fn status(url: &str) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fed_deltas_and_full_snapshots_hold_the_same_state() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "base", "paths": ["/base"]}),
    )
    .await;
    let delta = node(&cp, &["delta", "zstd"], None).await;
    let full = node(&cp, &["none"], None).await;
    let v = cp.version().await;
    assert_eq!(acked(&cp, &delta, v).await["sync"]["last_kind"], "full");
    // Every kind of change, one write at a time.
    for i in 0..5 {
        cp.post(
            "/services/echo/routes",
            json!({"name": format!("r{i}"), "paths": [format!("/r{i}")]}),
        )
        .await;
    }
    cp.post("/consumers", json!({"username": "anon"})).await;
    cp.post("/routes/r1/plugins", json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://127.0.0.1:9/introspect", "authorization_value": "Basic eA==", "anonymous": "anon"}})).await;
    let (s, body) = cp
        .call(
            reqwest::Method::PATCH,
            "/routes/r2",
            Some(json!({"paths": ["/moved"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, _) = cp
        .call(reqwest::Method::DELETE, "/routes/r3", None)
        .await
        .unwrap();
    assert_eq!(s, 204);
    let (s, _) = cp
        .call(reqwest::Method::DELETE, "/routes/r1", None)
        .await
        .unwrap();
    assert_eq!(s, 204, "the route and its plugin go together");
    let v = cp.version().await;
    let d = acked(&cp, &delta, v).await;
    let f = acked(&cp, &full, v).await;
    assert_eq!(
        d["sync"]["last_kind"],
        "delta",
        "{d} {}",
        delta.status().await.unwrap()
    );
    assert_eq!(f["sync"]["last_kind"], "full");
    assert_eq!(d["config_hash"], f["config_hash"]);
    assert_eq!(
        cp.get("/status").await.unwrap()["published"]["hash"],
        d["config_hash"]
    );
    let delta_bytes = d["sync"]["last_received_bytes"].as_u64().unwrap();
    let full_bytes = f["sync"]["last_received_bytes"].as_u64().unwrap();
    assert!(
        delta_bytes < full_bytes,
        "delta {delta_bytes} B, full {full_bytes} B"
    );
    // Both route the same way.
    for dp in [&delta, &full] {
        let base = &dp.proxy_url;
        assert_eq!(status(&format!("{base}/base")).await, 200);
        assert_eq!(status(&format!("{base}/r0")).await, 200);
        assert_eq!(status(&format!("{base}/moved")).await, 200);
        assert_eq!(status(&format!("{base}/r2")).await, 404);
        assert_eq!(status(&format!("{base}/r3")).await, 404);
        assert_eq!(status(&format!("{base}/r1")).await, 404);
        let st = dp.status().await.unwrap();
        assert_eq!(st["config"]["hash"], d["config_hash"]);
    }
    // A declarative replacement travels as a delta too.
    let (s, body) = cp
        .call(
            reqwest::Method::POST,
            "/config",
            Some(json!({"_format_version": "3.0", "services": [{"name": "echo", "url": up.url, "routes": [{"name": "only", "paths": ["/only"]}]}]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{body}");
    let v = cp.version().await;
    let d = acked(&cp, &delta, v).await;
    assert_eq!(d["sync"]["last_kind"], "delta");
    assert_eq!(acked(&cp, &full, v).await["config_hash"], d["config_hash"]);
    assert_eq!(status(&format!("{}/only", delta.proxy_url)).await, 200);
    assert_eq!(status(&format!("{}/base", delta.proxy_url)).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_window_gets_a_full_snapshot_and_one_inside_it_a_delta() {
    let cp = ControlPlane::start_with(CpOptions {
        sync_log_versions: 3,
        ..Default::default()
    })
    .await;
    let up = EchoUpstream::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    let mut dp = node(&cp, &["delta", "zstd"], None).await;
    let dir = dp.data_dir.clone();
    let id = dp.node_id.clone().unwrap();
    acked(&cp, &dp, cp.version().await).await;
    let restart = |dir: PathBuf| {
        DataPlane::start_with(DpOptions {
            control_plane: Some(cp.cluster_addr.to_string()),
            data_dir: Some(dir),
            ..Default::default()
        })
    };
    // Two versions behind: inside the window.
    dp.stop().await;
    for i in 0..2 {
        cp.post(
            "/services/echo/routes",
            json!({"paths": [format!("/a{i}")]}),
        )
        .await;
    }
    published(&cp).await;
    let mut dp = restart(dir.clone()).await;
    assert_eq!(dp.node_id.as_deref(), Some(id.as_str()));
    let n = acked(&cp, &dp, cp.version().await).await;
    assert_eq!(n["sync"]["last_kind"], "delta", "{n}");
    // Five versions behind: outside a window of three.
    dp.stop().await;
    for i in 0..5 {
        cp.post(
            "/services/echo/routes",
            json!({"paths": [format!("/b{i}")]}),
        )
        .await;
    }
    published(&cp).await;
    let dp = restart(dir).await;
    let n = acked(&cp, &dp, cp.version().await).await;
    assert_eq!(n["sync"]["last_kind"], "full", "{n}");
    assert_eq!(status(&format!("{}/b4", dp.proxy_url)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_that_diverges_is_refused_and_followed_by_a_full_resync() {
    let mut cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "a", "paths": ["/a"]}),
    )
    .await;
    let mut dp = node(&cp, &["delta", "zstd"], None).await;
    let (dp_dir, cp_dir) = (dp.data_dir.clone(), cp.data_dir.clone());
    acked(&cp, &dp, cp.version().await).await;
    dp.stop().await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "b", "paths": ["/b"]}),
    )
    .await;
    let version = cp.version().await;
    cp.stop().await;
    // Damage the last change-log record: same hash, other changes (the route's path).
    {
        use control_plane::store::Store;
        // `stop` returns once the control plane released its store; the lock on the files goes with it.
        let store = eventually(
            PATIENCE,
            "the stopped control plane's store opens",
            || async { control_plane::store::SledStore::open(&cp_dir.join("store")).ok() },
        )
        .await;
        let log = store.load_log(0).await.unwrap();
        let (v, record) = log.last().unwrap().clone();
        assert_eq!(v, version);
        let text = String::from_utf8(record).unwrap();
        assert!(text.contains("\"/b\""), "{text}");
        let damaged = text.replace("\"/b\"", "\"/c\"");
        let (state, _) = store.load().await.unwrap();
        let puts: Vec<shared::Change> = state
            .routes
            .values()
            .map(|r| shared::Change::Put(shared::Entity::Route(r.clone())))
            .collect();
        // Rewriting the version's record: the entities stay as they were committed.
        store
            .commit(version, &puts, version, damaged.as_bytes())
            .await
            .unwrap();
    }
    let cp = ControlPlane::start_with(CpOptions {
        data_dir: Some(cp_dir),
        ..Default::default()
    })
    .await;
    let dp = DataPlane::start_with(DpOptions {
        control_plane: Some(cp.cluster_addr.to_string()),
        data_dir: Some(dp_dir),
        ..Default::default()
    })
    .await;
    let n = acked(&cp, &dp, version).await;
    assert_eq!(n["sync"]["last_kind"], "full", "{n}");
    let rejected = dp.status().await.unwrap()["control_plane"]["last_rejected"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(rejected.contains("diverged"), "{rejected}");
    assert_eq!(status(&format!("{}/b", dp.proxy_url)).await, 200);
    assert_eq!(status(&format!("{}/c", dp.proxy_url)).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_deltas_serves_the_latest_applied_version_from_its_journal() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    let mut dp = node(&cp, &["delta", "zstd"], None).await;
    let dir = dp.data_dir.clone();
    acked(&cp, &dp, cp.version().await).await;
    for i in 0..4 {
        cp.post(
            "/services/echo/routes",
            json!({"name": format!("j{i}"), "paths": [format!("/j{i}")]}),
        )
        .await;
    }
    let version = cp.version().await;
    let n = acked(&cp, &dp, version).await;
    assert_eq!(n["sync"]["last_kind"], "delta");
    assert!(
        dir.join("lkg/journal").exists(),
        "deltas are appended to the journal"
    );
    dp.stop().await;
    drop(cp);
    // No control plane: the node serves snapshot + journal.
    let dp = DataPlane::start_with(DpOptions {
        data_dir: Some(dir),
        ..Default::default()
    })
    .await;
    assert_eq!(dp.config_version().await, version);
    assert_eq!(status(&format!("{}/j3", dp.proxy_url)).await, 200);
    assert_eq!(
        dp.status().await.unwrap()["config"]["hash"],
        n["config_hash"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_most_of_the_configuration_travels_as_a_full_snapshot() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let doc = |tag: &str| {
        let routes: Vec<Value> = (0..100)
            .map(|i| json!({"name": format!("{tag}{i}"), "paths": [format!("/{tag}/{i}")]}))
            .collect();
        json!({"_format_version": "3.0", "services": [{"name": "echo", "url": up.url, "routes": routes}]})
    };
    cp.post("/config", doc("a")).await;
    let dp = node(&cp, &["delta", "zstd"], None).await;
    acked(&cp, &dp, cp.version().await).await;
    // Every route replaced: 200 changes against 101 entities.
    cp.post("/config", doc("b")).await;
    let n = acked(&cp, &dp, cp.version().await).await;
    assert_eq!(n["sync"]["last_kind"], "full", "{n}");
    assert_eq!(status(&format!("{}/b/7", dp.proxy_url)).await, 200);
    assert_eq!(status(&format!("{}/a/7", dp.proxy_url)).await, 404);
    // One route more: a delta again.
    cp.post(
        "/services/echo/routes",
        json!({"name": "one", "paths": ["/one"]}),
    )
    .await;
    let n = acked(&cp, &dp, cp.version().await).await;
    assert_eq!(n["sync"]["last_kind"], "delta", "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_larger_than_a_message_buffer_travel_in_parts() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    // 400 routes with paths that do not repeat much: tens of kilobytes even compressed.
    let routes: Vec<Value> = (0..400)
        .map(|i| json!({"name": format!("r{i}"), "paths": [format!("/p{i}/{:x}", i * 7919)]}))
        .collect();
    let config = |routes: &[Value]| json!({"_format_version": "3.0", "services": [{"name": "echo", "url": up.url, "routes": routes}]});
    let (s, body) = cp
        .call(reqwest::Method::POST, "/config", Some(config(&routes)))
        .await
        .unwrap();
    assert_eq!(s, 201, "{body}");
    published(&cp).await;
    let in_parts = node(&cp, &["delta", "zstd", "parts"], None).await;
    let whole = node(&cp, &["delta", "zstd"], None).await;
    let v = cp.version().await;
    let p = acked(&cp, &in_parts, v).await;
    let w = acked(&cp, &whole, v).await;
    assert_eq!(p["sync"]["features"], json!(["delta", "zstd", "parts"]));
    assert_eq!(p["config_hash"], w["config_hash"]);
    let bytes = p["sync"]["last_received_bytes"].as_u64().unwrap();
    assert!(
        bytes > 3 * 4096,
        "the snapshot spans several parts: {bytes} B"
    );
    assert_eq!(bytes, w["sync"]["last_received_bytes"].as_u64().unwrap());
    assert_eq!(
        status(&format!("{}/p399/{:x}", in_parts.proxy_url, 399 * 7919)).await,
        200
    );
    // A replacement moving a quarter of the routes, then a one-route delta: both nodes end in the same state.
    let mut moved = routes.clone();
    for r in moved.iter_mut().take(100) {
        let name = r["name"].as_str().unwrap().to_string();
        r["paths"] = json!([format!("/moved/{name}/{}", name.len() * 104_729)]);
    }
    let (s, body) = cp
        .call(reqwest::Method::POST, "/config", Some(config(&moved)))
        .await
        .unwrap();
    assert_eq!(s, 201, "{body}");
    let v = cp.version().await;
    let p = acked(&cp, &in_parts, v).await;
    assert_eq!(p["config_hash"], acked(&cp, &whole, v).await["config_hash"]);
    cp.post(
        "/services/echo/routes",
        json!({"name": "one", "paths": ["/one"]}),
    )
    .await;
    let v = cp.version().await;
    let p = acked(&cp, &in_parts, v).await;
    assert_eq!(p["sync"]["last_kind"], "delta", "{p}");
    assert_eq!(status(&format!("{}/one", in_parts.proxy_url)).await, 200);
    assert_eq!(
        status(&format!("{}/moved/r5/{}", in_parts.proxy_url, 2 * 104_729)).await,
        200
    );
}
