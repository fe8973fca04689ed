//! Private keys of Certificates on PostgreSQL: sealed in the entity rows and the change log, opened by
//! every control plane given the key, and served by a node of another control plane than the one written
//! to.

use serde_json::json;
use tests::pki::TestCa;
use tests::postgres::Postgres;
use tests::{eventually, ControlPlane, DataPlane, DpOptions, EchoUpstream, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_are_sealed_in_the_database_and_served_through_another_control_plane() {
    let pg = Postgres::start();
    let url = pg.database("secrets");
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = ControlPlane::pair_on_postgres(&url, keys.path()).await;

    let ca = TestCa::new("test CA");
    let leaf = ca.issue(&["a.example.test"]);
    let key_pem = leaf.key.clone();
    let up = EchoUpstream::start().await;
    a.post("/services", json!({"name": "s", "url": up.url}))
        .await;
    a.post("/services/s/routes", json!({"paths": ["/"]})).await;
    let cert = a
        .post(
            "/certificates",
            json!({"cert": leaf.cert, "key": key_pem, "snis": ["a.example.test"]}),
        )
        .await;
    let id = cert["id"].as_str().unwrap().to_string();

    // Neither the entity row nor the change log holds a line of the key.
    let key_line = key_pem.lines().nth(1).unwrap();
    let rows = pg.query(
        "secrets",
        "SELECT body FROM portcullis_entities WHERE kind = 'certificates'",
    );
    assert!(rows.contains("sealed:v1:"), "{rows}");
    let log = pg.query(
        "secrets",
        "SELECT encode(record, 'escape') FROM portcullis_change_log",
    );
    assert!(!rows.contains(key_line) && !log.contains(key_line));
    assert!(log.contains("sealed:v1:"));

    // B reads it back (from the log it catches up with) and its node serves the certificate.
    eventually(PATIENCE, "control plane B has the certificate", || async {
        b.get(&format!("/certificates/{id}")).await.ok()
    })
    .await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(b.pairing_token().await),
        control_plane: Some(b.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    dp.wait_version(a.version().await).await;
    let https = ca.client(&["a.example.test"], dp.proxy_tls_addr, false);
    let resp = https
        .get(format!(
            "https://a.example.test:{}/x",
            dp.proxy_tls_addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
