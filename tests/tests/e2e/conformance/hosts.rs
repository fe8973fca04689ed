//! Which host a request is for (RFC 9112 3.2 and 3.2.2) decides its Route and so its plugins. Two Routes
//! differ only by host: `protected.test` behind `oauth2-introspection`, `open.test` without. No
//! combination of `Host` fields, absolute-form targets and `X-Forwarded-Host` gets a request without a
//! token to the protected upstream, and whatever reaches the open upstream was routed as `open.test`.

use serde_json::json;
use tests::raw::{RawClient, RawUpstream};
use tests::{ControlPlane, DataPlane, TestIdp};

use super::ok;

/// What becomes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 400: the host is ambiguous or invalid.
    Refused,
    /// 401 from the protected Route's plugin.
    Unauthenticated,
    /// 404: no Route for that host.
    NoRoute,
    /// Proxied to the open upstream, as `open.test`.
    Open,
}

use Expect::*;

const CASES: &[(&str, Expect)] = &[
    (
        "GET / HTTP/1.1\r\nhost: protected.test\r\n",
        Unauthenticated,
    ),
    ("GET / HTTP/1.1\r\nhost: open.test\r\n", Open),
    (
        "GET / HTTP/1.1\r\nhost: protected.test\r\nhost: open.test\r\n",
        Refused,
    ),
    (
        "GET / HTTP/1.1\r\nhost: open.test\r\nhost: protected.test\r\n",
        Refused,
    ),
    ("GET / HTTP/1.1\r\nhost: open.test\r\nHost:\r\n", Refused),
    (
        "GET / HTTP/1.1\r\nhost: protected.test, open.test\r\n",
        Refused,
    ),
    (
        "GET / HTTP/1.1\r\nhost: open.test, protected.test\r\n",
        Refused,
    ),
    (
        "GET / HTTP/1.1\r\nhost: open.test@protected.test\r\n",
        Refused,
    ),
    (
        "GET / HTTP/1.1\r\nhost: open.test\r\n protected.test\r\n",
        Refused,
    ),
    (
        "GET / HTTP/1.1\r\nhost: PROTECTED.test\r\n",
        Unauthenticated,
    ),
    (
        "GET / HTTP/1.1\r\nhost: protected.test:80\r\n",
        Unauthenticated,
    ),
    ("GET / HTTP/1.1\r\nhost: protected.test.\r\n", NoRoute),
    // The target's host wins over Host (3.2.2), which must still be present and valid.
    (
        "GET http://protected.test/ HTTP/1.1\r\nhost: open.test\r\n",
        Unauthenticated,
    ),
    (
        "GET http://open.test/ HTTP/1.1\r\nhost: protected.test\r\n",
        Open,
    ),
    (
        "GET https://protected.test/ HTTP/1.1\r\nhost: open.test\r\n",
        Unauthenticated,
    ),
    ("GET http://open.test/ HTTP/1.1\r\n", Refused),
    (
        "GET http://open.test@protected.test/ HTTP/1.1\r\nhost: protected.test\r\n",
        Refused,
    ),
    ("GET http://protected.test/ HTTP/1.0\r\n", Unauthenticated),
    ("GET / HTTP/1.0\r\n", NoRoute),
    // X-Forwarded-Host from a client decides nothing, and is replaced upstream.
    (
        "GET / HTTP/1.1\r\nhost: protected.test\r\nx-forwarded-host: open.test\r\n",
        Unauthenticated,
    ),
    (
        "GET / HTTP/1.1\r\nhost: open.test\r\nx-forwarded-host: protected.test\r\n",
        Open,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_combination_of_host_fields_reaches_the_protected_upstream_unauthenticated() {
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    let idp = TestIdp::start().await;
    let protected = RawUpstream::start(ok).await;
    let open = RawUpstream::start(ok).await;
    cp.post(
        "/services",
        json!({"name": "protected", "url": protected.url}),
    )
    .await;
    cp.post("/services", json!({"name": "open", "url": open.url}))
        .await;
    cp.post(
        "/services/protected/routes",
        json!({"hosts": ["protected.test"], "paths": ["/"]}),
    )
    .await;
    cp.post(
        "/services/open/routes",
        json!({"hosts": ["open.test"], "paths": ["/"]}),
    )
    .await;
    // For a connection handed to hyper's server first: a request with a body, on any host.
    cp.post("/services/open/routes", json!({"paths": ["/warm"]}))
        .await;
    cp.post(
        "/services/protected/plugins",
        json!({"name": "oauth2-introspection", "config": {
            "introspection_url": idp.introspection_url(),
            "authorization_value": idp.authorization,
        }}),
    )
    .await;
    dp.wait_version(cp.version().await).await;

    for (head, expect) in CASES {
        for variant in ["bodiless", "with a body", "after the hand-off"] {
            let what = format!("{head:?} {variant}");
            let mut client = RawClient::connect(&dp.proxy_url).await;
            if variant == "after the hand-off" {
                client
                    .send(b"POST /warm HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n\r\nx")
                    .await;
                let warm = client.final_response(false).await.expect("an answer");
                assert_eq!(warm.status, 200, "{what}: {warm:?}");
            }
            let body = match variant {
                "with a body" => "content-length: 1\r\n\r\nx",
                _ => "\r\n",
            };
            let before = open.received().len();
            client.send(format!("{head}{body}").as_bytes()).await;
            let answer = client
                .final_response(false)
                .await
                .unwrap_or_else(|| panic!("{what}: no answer"));
            let reached: Vec<_> = open.received().split_off(before);
            let reached: Vec<_> = reached.iter().filter(|r| r.target == "/").collect();
            let status = match expect {
                Refused => 400,
                Unauthenticated => 401,
                NoRoute => 404,
                Open => 200,
            };
            assert_eq!(answer.status, status, "{what}: {answer:?}");
            match expect {
                Open => {
                    assert_eq!(reached.len(), 1, "{what}");
                    assert_eq!(
                        reached[0].field("x-forwarded-host"),
                        Some("open.test"),
                        "{what}"
                    );
                }
                _ => assert!(reached.is_empty(), "{what}: {reached:?}"),
            }
            assert!(
                protected.received().is_empty(),
                "{what}: the protected upstream was reached: {:?}",
                protected.received()
            );
        }
    }
}
