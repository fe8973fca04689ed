//! An identity provider that hangs: concurrent requests share one attempt and its failure, on the data
//! plane and on the control plane's issuer view, instead of waiting one timeout after another.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::silent::SilentServer;
use tests::{client, within, ControlPlane, DataPlane, EchoUpstream, PATIENCE};

async fn protect_with_issuer(cp: &ControlPlane, up: &EchoUpstream, issuers: &[&str]) {
    for (i, issuer) in issuers.iter().enumerate() {
        let name = format!("svc{i}");
        cp.post("/services", json!({"name": name, "url": up.url}))
            .await;
        cp.post(
            &format!("/services/{name}/routes"),
            json!({"paths": [format!("/api{i}")]}),
        )
        .await;
        cp.post(
            &format!("/services/{name}/plugins"),
            json!({"name": "openid-connect", "config": {"issuer": issuer, "auth_methods": ["bearer"], "timeout": 1000}}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_failed_discovery() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let idp = SilentServer::start().await;
    let dp = DataPlane::start(&cp).await;
    protect_with_issuer(&cp, &up, &[&idp.url]).await;
    dp.wait_version(cp.version().await).await;

    let started = Instant::now();
    let requests = (0..6).map(|_| async {
        let r = client()
            .get(format!("{}/api0", dp.proxy_url))
            .bearer_auth("opaque-token")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    let answers = within(
        PATIENCE,
        "six requests",
        futures::future::join_all(requests),
    )
    .await;
    for (status, _) in &answers {
        assert_eq!(*status, 503);
    }
    assert_eq!(
        idp.accepted(),
        1,
        "one discovery attempt for six concurrent requests"
    );
    // One attempt times out after 1 s; one after another they would take 6 s.
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        slowest < Duration::from_secs(3),
        "slowest answer after {slowest:?}"
    );
    // Within the back-off a new request is answered from the failure at once, without a new attempt.
    let r = client()
        .get(format!("{}/api0", dp.proxy_url))
        .bearer_auth("opaque-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(idp.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_view_fetches_unresponsive_issuers_side_by_side_and_once() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let (a, b) = (SilentServer::start().await, SilentServer::start().await);
    protect_with_issuer(&cp, &up, &[&a.url, &b.url]).await;

    let started = Instant::now();
    let views = (0..3).map(|_| cp.get("/openid-connect/issuers"));
    let views = within(PATIENCE, "issuer views", futures::future::join_all(views)).await;
    let elapsed = started.elapsed();
    for view in views {
        let data = view.unwrap()["data"].as_array().unwrap().clone();
        assert_eq!(data.len(), 2);
        for issuer in data {
            assert!(
                issuer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{issuer}"
            );
        }
    }
    assert_eq!(
        (a.accepted(), b.accepted()),
        (1, 1),
        "one attempt per issuer"
    );
    // Two issuers, one bounded attempt each, side by side: about one discovery timeout (5 s), not four.
    assert!(
        elapsed < Duration::from_secs(9),
        "answered after {elapsed:?}"
    );
    // The failure is served from the cache during the back-off.
    let again: Value = cp.get("/openid-connect/issuers").await.unwrap();
    assert_eq!(again["data"].as_array().unwrap().len(), 2);
    assert_eq!((a.accepted(), b.accepted()), (1, 1));
}
