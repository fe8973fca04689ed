//! The control plane's `/metrics`: totals and per-node series move as nodes connect, acknowledge,
//! refuse a configuration and go away; the admin token guards it; `per_node=false` leaves the nodes out.

use reqwest::Method;
use serde_json::json;
use tests::{eventually, metric, ControlPlane, CpOptions, DataPlane, DpOptions, PATIENCE};

async fn scrape(cp: &ControlPlane, query: &str) -> String {
    let (s, v) = cp
        .call(Method::GET, &format!("/metrics{query}"), None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    v.as_str().expect("text").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_metrics_follow_the_nodes() {
    let cp = ControlPlane::start_with(CpOptions {
        admin_token: Some("metrics-admin-token-0123456789".into()),
        ..Default::default()
    })
    .await;
    let mut steady = DataPlane::start(&cp).await;
    let token = cp.pairing_token().await;
    let small = DataPlane::start_with(DpOptions {
        pairing_token: Some(token),
        control_plane: Some(cp.cluster_addr.to_string()),
        max_config_bytes: Some(4096),
        sync_features: Some(vec!["none".into()]),
        ..Default::default()
    })
    .await;
    let (a, b) = (
        steady.node_id.clone().unwrap(),
        small.node_id.clone().unwrap(),
    );
    cp.post("/consumers", json!({"username": "first"})).await;
    cp.wait_in_sync(&[a.clone(), b.clone()]).await;

    let text = scrape(&cp, "").await;
    assert_eq!(
        metric(&text, "portcullis_cp_data_planes_connected", &[]),
        2.0
    );
    let in_sync = [("status", "connected"), ("sync_status", "in_sync")];
    assert_eq!(metric(&text, "portcullis_cp_data_planes", &in_sync), 2.0);
    let version = cp.version().await as f64;
    assert_eq!(metric(&text, "portcullis_cp_config_version", &[]), version);
    for id in [&a, &b] {
        let node = [("node", id.as_str())];
        assert_eq!(
            metric(&text, "portcullis_cp_data_plane_connected", &node),
            1.0
        );
        assert_eq!(
            metric(&text, "portcullis_cp_data_plane_config_version", &node),
            version
        );
        assert!(
            metric(
                &text,
                "portcullis_cp_data_plane_cert_expiry_timestamp_seconds",
                &node
            ) > 0.0
        );
        let synced = [("node", id.as_str()), ("sync_status", "in_sync")];
        assert_eq!(
            metric(&text, "portcullis_cp_data_plane_sync_status", &synced),
            1.0
        );
    }
    let acks = metric(&text, "portcullis_cp_config_acks_total", &[]);
    assert!(acks >= 2.0, "{text}");
    assert!(metric(&text, "portcullis_cp_config_received_bytes_total", &[]) > 0.0);
    assert!(metric(&text, "portcullis_cp_sessions_total", &[]) >= 2.0);

    // The small node refuses a configuration past its limit: a NACK, and its status says so.
    for i in 0..40 {
        let c = json!({"username": format!("consumer-with-a-long-name-{i}"), "custom_id": format!("custom-{i}")});
        cp.post("/consumers", c).await;
    }
    let text = eventually(PATIENCE, "the refusal in the metrics", || async {
        let text = scrape(&cp, "").await;
        let rejected = [("node", b.as_str()), ("sync_status", "rejected")];
        (metric(&text, "portcullis_cp_data_plane_sync_status", &rejected) == 1.0).then_some(text)
    })
    .await;
    assert!(metric(&text, "portcullis_cp_config_nacks_total", &[]) >= 1.0);
    let rejected = [("status", "connected"), ("sync_status", "rejected")];
    assert_eq!(metric(&text, "portcullis_cp_data_planes", &rejected), 1.0);

    // A node that stops is shown disconnected.
    steady.stop().await;
    let text = eventually(PATIENCE, "the stopped node in the metrics", || async {
        let text = scrape(&cp, "").await;
        let node = [("node", a.as_str())];
        (metric(&text, "portcullis_cp_data_plane_connected", &node) == 0.0).then_some(text)
    })
    .await;
    assert_eq!(
        metric(&text, "portcullis_cp_data_planes_connected", &[]),
        1.0
    );
    assert!(
        metric(
            &text,
            "portcullis_cp_data_plane_last_seen_timestamp_seconds",
            &[("node", a.as_str())]
        ) > 0.0
    );

    // Without per-node series; and not without the admin token.
    let totals = scrape(&cp, "?per_node=false").await;
    assert!(!totals.contains("portcullis_cp_data_plane_"), "{totals}");
    let (s, _) = cp
        .call(Method::GET, "/metrics?per_node=maybe", None)
        .await
        .unwrap();
    assert_eq!(s, 400);
    let anonymous = reqwest::get(format!("{}/metrics", cp.admin_url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
