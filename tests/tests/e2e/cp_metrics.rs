//! The control plane's `/metrics`: totals and per-node series move as nodes enroll, connect,
//! acknowledge (the ACK-latency histogram with them), refuse a configuration, go away and are revoked;
//! the admin token guards it; `per_node=false` leaves the nodes out; `promtool check metrics` accepts the
//! text (Debian's `prometheus` package, installed by the test command; SKIPPED where it is missing).

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
        pairing_token: Some(token.clone()),
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
    let paired = [("outcome", "paired")];
    assert_eq!(
        metric(&text, "portcullis_cp_enrollments_total", &paired),
        2.0
    );
    // Every ACK of a configuration sent on a stream is timed.
    let timed = metric(&text, "portcullis_cp_config_ack_seconds_count", &[]);
    assert!(timed >= 2.0, "{text}");
    let all = [("le", "+Inf")];
    assert_eq!(
        metric(&text, "portcullis_cp_config_ack_seconds_bucket", &all),
        timed
    );
    assert!(
        metric(
            &text,
            "portcullis_cp_config_ack_seconds_bucket",
            &[("le", "30")]
        ) <= timed
    );
    assert!(metric(&text, "portcullis_cp_change_log_versions", &[]) >= 1.0);
    promtool_check(&text).await;

    // A used-up token is refused and counted.
    let refused = DataPlane::spawn(DpOptions {
        pairing_token: Some(token),
        control_plane: Some(cp.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    eventually(PATIENCE, "the refused enrollment counted", || async {
        let text = scrape(&cp, "").await;
        let refused = [("outcome", "refused")];
        (metric(&text, "portcullis_cp_enrollments_total", &refused) >= 1.0).then_some(())
    })
    .await;
    drop(refused);

    // The small node refuses a configuration past its limit: a NACK, and its status says so.
    for i in 0..40 {
        let c = json!({"username": format!("consumer-with-a-long-name-{i}"), "custom_id": format!("custom-{i}")});
        cp.post("/consumers", c).await;
    }
    // Writes are published a few milliseconds after they commit, so the refusal waited for is the last
    // version's: until it is published the node's status may still move (behind, then rejected again).
    let last = cp.version().await;
    let last_refused = format!("config version {last} rejected");
    eventually(PATIENCE, "the last version refused", || async {
        let n = cp.get(&format!("/clustering/data-planes/{b}")).await.ok()?;
        let reason = n["sync_status_reason"].as_str().unwrap_or_default();
        reason.starts_with(&last_refused).then_some(())
    })
    .await;
    let text = eventually(PATIENCE, "the refusal in the metrics", || async {
        let text = scrape(&cp, "").await;
        let rejected = [("node", b.as_str()), ("sync_status", "rejected")];
        (metric(&text, "portcullis_cp_data_plane_sync_status", &rejected) == 1.0).then_some(text)
    })
    .await;
    // Each encoding is timed: the small node's plain snapshots, the other node's deltas.
    for kind in ["full", "delta"] {
        let count = metric(
            &text,
            "portcullis_cp_config_encode_seconds_count",
            &[("kind", kind)],
        );
        assert!(count >= 1.0, "{kind}: {text}");
    }
    // Every store write is timed: the 41 consumers' commits, the nodes' records.
    let writes = |operation: &str| {
        metric(
            &text,
            "portcullis_cp_store_write_seconds_count",
            &[("operation", operation)],
        )
    };
    assert!(writes("commit") >= 41.0, "{text}");
    assert!(writes("put_record") >= 2.0, "{text}");
    let too_large = [("reason", "too_large")];
    assert!(metric(&text, "portcullis_cp_config_nacks_total", &too_large) >= 1.0);
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

    // A revoked node is counted.
    let (s, _) = cp
        .call(
            Method::DELETE,
            &format!("/clustering/data-planes/{a}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 204);
    let text = scrape(&cp, "").await;
    assert_eq!(
        metric(&text, "portcullis_cp_node_revocations_total", &[]),
        1.0
    );

    // Without per-node series; and not without the admin token.
    let totals = scrape(&cp, "?per_node=false").await;
    assert!(!totals.contains("portcullis_cp_data_plane_"), "{totals}");
    // The totals, counted without rendering the node view, are the ones the full scrape shows.
    let census = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("portcullis_cp_data_planes{"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(census(&totals), census(&text), "{totals}");
    assert!(
        census(&totals)
            .iter()
            .any(|l| l.contains("status=\"revoked\"") && l.ends_with(" 1")),
        "{totals}"
    );
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

/// `promtool check metrics` on the text, where Debian's `prometheus` package provides it.
async fn promtool_check(text: &str) {
    let Ok(mut child) = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!(
            "SKIPPED: promtool check metrics: promtool (Debian package prometheus) is missing"
        );
        return;
    };
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tests::within(PATIENCE, "promtool", child.wait_with_output())
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}
