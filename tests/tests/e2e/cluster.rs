//! The cluster protocol end to end: pairing, propagation to several nodes, ACK/NACK, compatibility,
//! revocation, certificate renewal, and the refusals that keep the cluster closed.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::{
    client, eventually, ControlPlane, CpOptions, DataPlane, DpOptions, EchoUpstream, PATIENCE,
};

fn cps(addr: &str) -> data_plane::control_planes::ControlPlanes {
    data_plane::control_planes::ControlPlanes::parse(addr).unwrap()
}

async fn node_view(cp: &ControlPlane, id: &str) -> Value {
    cp.get(&format!("/clustering/data-planes/{id}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_three_nodes_which_ack_version_and_hash() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dps = vec![
        DataPlane::start(&cp).await,
        DataPlane::start(&cp).await,
        DataPlane::start(&cp).await,
    ];
    let ids: Vec<String> = dps.iter().map(|d| d.node_id.clone().unwrap()).collect();
    for dp in &dps {
        let r = client()
            .get(format!("{}/status/ready", dp.status_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "not ready before a config is live");
    }
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    let version = cp.version().await;
    cp.wait_in_sync(&ids).await;
    let list = cp.get("/clustering/data-planes").await.unwrap();
    let hash = list["latest_config"]["hash"].as_str().unwrap().to_string();
    assert_eq!(list["latest_config"]["version"], version);
    for (dp, id) in dps.iter().zip(&ids) {
        let n = node_view(&cp, id).await;
        assert_eq!(n["config_version"], version);
        assert_eq!(n["config_hash"], json!(hash));
        assert_eq!(n["status"], "connected");
        assert_eq!(n["ip"], "127.0.0.1");
        assert!(n["cert_expiry"].as_i64().unwrap() > 0);
        assert_eq!(n["version"], shared::VERSION);
        assert!(n["last_seen"].as_i64().is_some());
        assert_eq!(dp.status().await.unwrap()["config"]["hash"], json!(hash));
        let r = client()
            .get(format!("{}/status/ready", dp.status_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            client()
                .get(format!("{}/x", dp.proxy_url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // The node view in pages, in the order of the ids.
    let mut sorted = ids.clone();
    sorted.sort();
    let first = cp.get("/clustering/data-planes?size=2").await.unwrap();
    assert_eq!(first["total"], 3);
    let listed: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [sorted[0].as_str(), sorted[1].as_str()]);
    assert_eq!(first["next"], "/clustering/data-planes?size=2&offset=2");
    let second = cp
        .get("/clustering/data-planes?size=2&offset=2")
        .await
        .unwrap();
    assert_eq!(second["data"][0]["id"], sorted[2].as_str());
    assert_eq!(second["next"], Value::Null);
    let (s, _) = cp
        .call(Method::GET, "/clustering/data-planes?size=0", None)
        .await
        .unwrap();
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_snapshot_is_visible_and_the_node_keeps_serving() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let token = cp.pairing_token().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(token),
        control_plane: Some(cp.cluster_addr.to_string()),
        max_config_bytes: Some(4096),
        // Full, uncompressed snapshots: the limit is on what one message carries.
        sync_features: Some(vec!["none".into()]),
        ..Default::default()
    })
    .await;
    let id = dp.node_id.clone().unwrap();
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    let good = cp.version().await;
    dp.wait_version(good).await;
    // Grow the config past the node's limit.
    for i in 0..40 {
        cp.post("/consumers", json!({"username": format!("consumer-with-a-long-name-{i}"), "custom_id": format!("custom-{i}")})).await;
    }
    let n = eventually(PATIENCE, "node reports the rejection", || async {
        let n = node_view(&cp, &id).await;
        (n["sync_status"] == "rejected").then_some(n)
    })
    .await;
    let reason = n["sync_status_reason"].as_str().unwrap();
    assert!(reason.contains("larger than this node's limit"), "{reason}");
    let kept = n["config_version"].as_u64().unwrap();
    assert!(
        kept >= good && kept < cp.version().await,
        "the node still runs an older version"
    );
    assert_eq!(dp.config_version().await, kept);
    assert_eq!(
        client()
            .get(format!("{}/x", dp.proxy_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(dp.status().await.unwrap()["control_plane"]["last_rejected"]
        .as_str()
        .unwrap()
        .contains("limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_a_plugin_is_shown_incompatible_and_not_sent_the_snapshot() {
    let cp = ControlPlane::start().await;
    let token = cp.pairing_token().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(token),
        control_plane: Some(cp.cluster_addr.to_string()),
        plugins: Some(vec!["off".into()]),
        ..Default::default()
    })
    .await;
    let id = dp.node_id.clone().unwrap();
    cp.post(
        "/services",
        json!({"name": "s", "url": "http://127.0.0.1:1"}),
    )
    .await;
    let plain = cp.version().await;
    dp.wait_version(plain).await;
    cp.post("/plugins", json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://idp/i", "authorization_value": "x"}})).await;
    let n = eventually(PATIENCE, "node shown incompatible", || async {
        let n = node_view(&cp, &id).await;
        (n["sync_status"] == "incompatible").then_some(n)
    })
    .await;
    assert!(
        n["sync_status_reason"]
            .as_str()
            .unwrap()
            .contains("'oauth2-introspection'"),
        "{n}"
    );
    assert_eq!(
        dp.config_version().await,
        plain,
        "the snapshot was not pushed"
    );
}

fn pki_ca(cp: &ControlPlane) -> String {
    std::fs::read_to_string(cp.data_dir.join("pki/cluster-ca.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_tokens_are_one_time_expire_and_cannot_be_forged() {
    let cp = ControlPlane::start().await;
    let addr = cp.cluster_addr.to_string();
    let token = cp.pairing_token().await;
    // Listed without its secret.
    let list = cp.get("/clustering/pairing-tokens").await.unwrap();
    let listed = list.to_string();
    let secret = token.split('.').nth(2).unwrap();
    assert!(!listed.contains(secret));
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Forged secret.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = "0".repeat(64);
    let forged = parts.join(".");
    let e = data_plane::identity::pair(&cps(&addr), &forged, "h")
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("unknown, revoked or already used"),
        "{e:#}"
    );
    // Wrong CA fingerprint: the node refuses the control plane.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[3] = "a".repeat(64);
    assert!(
        data_plane::identity::pair(&cps(&addr), &parts.join("."), "h")
            .await
            .is_err()
    );
    // Malformed.
    let e = data_plane::identity::pair(&cps(&addr), "not-a-token", "h")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("malformed"));
    // First use works, second is refused.
    data_plane::identity::pair(&cps(&addr), &token, "h")
        .await
        .unwrap();
    let e = data_plane::identity::pair(&cps(&addr), &token, "h")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("already used"), "{e:#}");
    // Expired.
    let short = cp
        .post("/clustering/pairing-tokens", json!({"ttl": 1}))
        .await;
    let expires_at = short["expires_at"].as_i64().unwrap();
    while platform::unix_now() <= expires_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = data_plane::identity::pair(&cps(&addr), short["token"].as_str().unwrap(), "h")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("expired"), "{e:#}");
    // Revoked before use.
    let t = cp.post("/clustering/pairing-tokens", json!({})).await;
    let (s, _) = cp
        .call(
            Method::DELETE,
            &format!("/clustering/pairing-tokens/{}", t["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 204);
    assert!(
        data_plane::identity::pair(&cps(&addr), t["token"].as_str().unwrap(), "h")
            .await
            .is_err()
    );
    // Bad TTL.
    let (s, body) = cp
        .call(
            Method::POST,
            "/clustering/pairing-tokens",
            Some(json!({"ttl": "long"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, body["fields"]["ttl"].clone()),
        (400, json!("expected an integer"))
    );
}

async fn sync_with(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    node_id: &str,
) -> Result<(), String> {
    let cp = cps(addr).pick(0).await.map_err(|e| format!("{e:#}"))?;
    let channel = data_plane::identity::connect(&cp, tls, std::time::Duration::ZERO)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let hello = proto::NodeMessage {
        kind: Some(proto::node_message::Kind::Hello(proto::Hello {
            node_id: node_id.into(),
            ..Default::default()
        })),
    };
    tx.send(hello).await.unwrap();
    let mut client = proto::cluster_client::ClusterClient::new(channel);
    let mut stream = client
        .sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    stream
        .message()
        .await
        .map_err(|s| s.message().to_string())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_refuses_plain_tcp_server_only_tls_and_foreign_certificates() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cp = ControlPlane::start().await;
    let addr = cp.cluster_addr.to_string();
    // Plain TCP with an HTTP/2 preface gets no HTTP/2 answer.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "plain TCP must not be spoken to (got {n} bytes)"
    );
    // Server-only TLS (no client certificate) is refused by the sync service.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki_ca(&cp).as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let e = sync_with(&addr, Arc::new(tls), "x").await.unwrap_err();
    assert!(e.contains("client certificate"), "{e}");
    // A certificate issued by another cluster's CA fails the handshake.
    let other = ControlPlane::start().await;
    let foreign = data_plane::identity::pair(
        &cps(&other.cluster_addr.to_string()),
        &other.pairing_token().await,
        "h",
    )
    .await
    .unwrap();
    let foreign_id = foreign.node_id.clone();
    let mixed = data_plane::identity::Identity {
        ca_pem: pki_ca(&cp),
        ..foreign
    };
    assert!(sync_with(&addr, mixed.client_tls().unwrap(), &foreign_id)
        .await
        .is_err());
    // The same identity against its own cluster works.
    let own = data_plane::identity::pair(
        &cps(&other.cluster_addr.to_string()),
        &other.pairing_token().await,
        "h",
    )
    .await
    .unwrap();
    sync_with(
        &other.cluster_addr.to_string(),
        own.client_tls().unwrap(),
        &own.node_id,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_node_is_cut_off_and_refused_on_reconnect() {
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    let id = dp.node_id.clone().unwrap();
    cp.wait_in_sync(std::slice::from_ref(&id)).await;
    let (s, _) = cp
        .call(
            Method::DELETE,
            &format!("/clustering/data-planes/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 204);
    assert_eq!(node_view(&cp, &id).await["status"], "revoked");
    let err = eventually(PATIENCE, "node sees it was revoked", || async {
        let st = dp.status().await.ok()?;
        let e = st["control_plane"]["last_error"].as_str()?.to_string();
        e.contains("revoked").then_some(e)
    })
    .await;
    assert!(
        !dp.status().await.unwrap()["control_plane"]["connected"]
            .as_bool()
            .unwrap(),
        "{err}"
    );
    assert_eq!(
        cp.call(Method::DELETE, "/clustering/data-planes/unknown-node", None)
            .await
            .unwrap()
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_in_band_without_restart() {
    let cp = ControlPlane::start_with(CpOptions {
        cert_lifetime_secs: 3,
        ..Default::default()
    })
    .await;
    let dp = DataPlane::start(&cp).await;
    let id = dp.node_id.clone().unwrap();
    let first = node_view(&cp, &id).await["cert_expiry"].as_i64().unwrap();
    let renewed = eventually(PATIENCE, "certificate renewed", || async {
        let n = node_view(&cp, &id).await;
        let exp = n["cert_expiry"].as_i64()?;
        (exp > first + 1 && n["status"] == "connected").then_some(exp)
    })
    .await;
    assert!(renewed > first);
    // The control plane records the expiry when it issues the certificate; the node stores it
    // once the answer arrives, so the file is checked until it catches up.
    let node_pem = dp.data_dir.join("identity/node.pem");
    eventually(PATIENCE, "the renewed certificate is stored", || async {
        let on_disk = std::fs::read_to_string(&node_pem).ok()?;
        (data_plane::identity::pem_not_after(&on_disk).ok()? > first).then_some(())
    })
    .await;
    // Writes keep flowing on the same node.
    cp.post("/consumers", json!({"username": "after-renewal"}))
        .await;
    cp.wait_in_sync(&[id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_shows_disconnected() {
    let cp = ControlPlane::start().await;
    let mut dp = DataPlane::start(&cp).await;
    let id = dp.node_id.clone().unwrap();
    cp.wait_in_sync(std::slice::from_ref(&id)).await;
    dp.stop().await;
    eventually(PATIENCE, "node shown disconnected", || async {
        (node_view(&cp, &id).await["status"] == "disconnected").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_can_pair_long_after_the_control_plane_started() {
    // Regression: the cluster listener must keep accepting for the whole life of the control plane.
    let cp = ControlPlane::start().await;
    let first = DataPlane::start(&cp).await;
    // Let time pass (this is the point of the test, not a synchronisation).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let late = DataPlane::start(&cp).await;
    cp.post("/consumers", json!({"username": "late"})).await;
    cp.wait_in_sync(&[
        first.node_id.clone().unwrap(),
        late.node_id.clone().unwrap(),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_larger_than_four_mebibytes_reach_nodes() {
    // Regression: gRPC's default 4 MiB message limit must not cap the configuration size.
    let cp = ControlPlane::start().await;
    // Full, uncompressed snapshots, so the message really is that large.
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        sync_features: Some(vec!["none".into()]),
        ..Default::default()
    })
    .await;
    let consumers: Vec<Value> = (0..5000).map(|i| json!({"username": format!("user-{i}"), "tags": [format!("{i}-{}", "t".repeat(1000))]})).collect();
    let (s, body) = cp
        .call(
            Method::POST,
            "/config",
            Some(json!({"_format_version": "3.0", "consumers": consumers})),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{body}");
    let version = cp.version().await;
    dp.wait_version(version).await;
    let id = dp.node_id.clone().unwrap();
    let node = eventually(PATIENCE, "the node's ACK is recorded", || async {
        let n = node_view(&cp, &id).await;
        (n["config_version"] == version).then_some(n)
    })
    .await;
    assert_eq!(node["sync"]["last_kind"], "full");
    let bytes = node["sync"]["last_received_bytes"].as_u64().unwrap();
    assert!(bytes > 4 * 1024 * 1024, "snapshot is {bytes} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_token_admits_exactly_max_uses_nodes() {
    let cp = ControlPlane::start().await;
    let created = cp
        .post(
            "/clustering/pairing-tokens",
            json!({"ttl": 600, "max_uses": 3, "labels": {"zone": "eu-1"}}),
        )
        .await;
    assert_eq!(created["max_uses"], 3);
    let token = created["token"].as_str().unwrap().to_string();
    let listed = cp.get("/clustering/pairing-tokens").await.unwrap();
    assert_eq!(listed["data"][0]["uses"], 0);
    assert!(
        !listed.to_string().contains(&token),
        "the secret is never listed"
    );
    // Five nodes race for three uses; one of them reads the token from a file, as a container would.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let cluster = cp.cluster_addr.to_string();
    let mut nodes = futures::future::join_all((0..5).map(|i| {
        DataPlane::spawn(DpOptions {
            pairing_token: (i != 0).then(|| token.clone()),
            pairing_token_file: (i == 0).then(|| file.clone()),
            control_plane: Some(cluster.clone()),
            ..Default::default()
        })
    }))
    .await;
    let mut refused = Vec::new();
    for n in nodes.iter_mut() {
        if let Some(err) = n.exit_error(Duration::from_secs(3)).await {
            refused.push(err);
        }
    }
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().all(|e| e.contains("already used")),
        "{refused:?}"
    );
    let paired = eventually(PATIENCE, "three nodes listed", || async {
        let n = cp.nodes().await;
        (n.len() == 3).then_some(n)
    })
    .await;
    for node in &paired {
        assert_eq!(
            node["labels"]["zone"], "eu-1",
            "labels are copied to every node"
        );
    }
    let ids: std::collections::BTreeSet<_> = paired.iter().map(|n| n["id"].to_string()).collect();
    assert_eq!(ids.len(), 3, "every node has its own identity");
    // Used up: gone from the list, and a further use is refused.
    let listed = cp.get("/clustering/pairing-tokens").await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0);
    let mut late = DataPlane::spawn(DpOptions {
        pairing_token: Some(token.clone()),
        control_plane: Some(cluster.clone()),
        ..Default::default()
    })
    .await;
    let err = late.exit_error(PATIENCE).await.expect("refused");
    assert!(err.contains("already used"), "{err}");

    // An expired token is refused however many uses it has left.
    let short = cp
        .post(
            "/clustering/pairing-tokens",
            json!({"ttl": 1, "max_uses": 5}),
        )
        .await;
    let expires_at = short["expires_at"].as_i64().unwrap();
    eventually(PATIENCE, "the token's expiry", || async {
        (platform::unix_now() > expires_at).then_some(())
    })
    .await;
    let mut expired = DataPlane::spawn(DpOptions {
        pairing_token: Some(short["token"].as_str().unwrap().to_string()),
        control_plane: Some(cluster),
        ..Default::default()
    })
    .await;
    let err = expired.exit_error(PATIENCE).await.expect("refused");
    assert!(err.contains("expired"), "{err}");
}
