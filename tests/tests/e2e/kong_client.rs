//! A third-party Kong client library drives the Admin API: aio-kong from PyPI (`interop/kong_client.py`,
//! in the interop virtualenv) applies Services with nested Routes and plugins, creates and pages through
//! Consumers, applies their ACL groups, updates, deletes, and meets a unique violation, against a real
//! control plane.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tests::dot::{interop_python, interop_script};
use tests::{ControlPlane, CpOptions};

const TOKEN: &str = "kong-client-admin-token-4f2a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aio_kong_manages_services_routes_plugins_and_consumers() {
    let cp = ControlPlane::start_with(CpOptions {
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await;
    let url = cp.admin_url.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(interop_python())
            .arg(interop_script("kong_client.py"))
            .args([&url, TOKEN])
            .output()
            .expect("run interop/kong_client.py")
    });
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client finishes within 120 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kong_client.py failed: {stderr}");
    assert!(!stderr.contains(TOKEN));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        seen["applied"],
        json!([
            {"name": "billing", "routes": ["billing-admin", "billing-api"], "plugins": ["oauth2-introspection"]},
            {"name": "search", "routes": ["search"], "plugins": []},
        ])
    );
    assert_eq!(seen["services"], json!(["billing", "search"]));
    assert_eq!(seen["billing_port"], 9090);
    assert_eq!(
        seen["billing_routes"],
        json!(["billing-admin", "billing-api"])
    );
    let mut consumers: Vec<String> = serde_json::from_value(seen["consumers"].clone()).unwrap();
    consumers.sort();
    let expected: Vec<String> = (0..25).map(|i| format!("user-{i:02}")).collect();
    assert_eq!(consumers, expected, "every Consumer once, across pages");
    assert_eq!(seen["consumer_pages"], 3);
    assert_eq!(seen["updated_custom_id"], "c-03-renamed");
    assert_eq!(seen["plugin_ttl"], 120);
    assert_eq!(seen["plugin_secret_shown"], "[redacted]");
    assert_eq!(seen["has_search"], false);
    assert_eq!(seen["routes_left"], json!(["billing-admin", "billing-api"]));
    assert_eq!(seen["has_user_00"], false);
    assert_eq!(seen["acl_groups"], json!(["readers", "staff"]));
    assert_eq!(seen["acl_groups_after"], json!(["admins", "staff"]));
    assert_eq!(seen["acls_total"], 2);
    assert_eq!(seen["duplicate"]["status"], 409);
    // What the client left is what the Admin API holds.
    let plugin = &cp.get("/plugins").await.unwrap()["data"][0];
    assert_eq!(plugin["config"]["ttl"], 120);
    assert_eq!(
        cp.get("/consumers").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        25,
        "24 of the bulk Consumers and reader"
    );
}
