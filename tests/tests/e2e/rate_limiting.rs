//! `rate-limiting` end to end: Kong's answers and fields, every `limit_by`, windows rolling over, the
//! `local` policy per node and the `redis` policy shared by two nodes on a real Redis server, and a Redis
//! outage handled as `fault_tolerant` says.

use std::time::Duration;

use futures::future::join_all;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tests::redis::Redis;
use tests::{client, eventually, metric, ControlPlane, DataPlane, EchoUpstream, TestIdp};

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    up: EchoUpstream,
}

/// A cluster with one node and a service `echo` on `/echo` (and `/echo2`), limited by `config`.
async fn env_with(config: Value) -> Env {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "one", "paths": ["/echo"]}),
    )
    .await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "two", "paths": ["/other"]}),
    )
    .await;
    cp.post(
        "/services/echo/plugins",
        json!({"name": "rate-limiting", "config": config}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    Env { cp, dp, up }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn get(dp: &DataPlane, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut r = client().get(format!("{}{path}", dp.proxy_url));
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// The id of the first plugin.
async fn first_plugin(cp: &ControlPlane) -> String {
    cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Merges `config` into the plugin's and waits until `nodes` run it.
async fn patch_plugin(cp: &ControlPlane, nodes: &[&DataPlane], id: &str, config: Value) {
    let (s, v) = cp
        .call(
            reqwest::Method::PATCH,
            &format!("/plugins/{id}"),
            Some(json!({ "config": config })),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let version = cp.version().await;
    for dp in nodes {
        dp.wait_version(version).await;
    }
}

/// Waits, when the current minute ends within `margin`, for the next one: a test that counts within one
/// minute window must not straddle two.
pub(crate) async fn clear_of_minute_end(margin: Duration) {
    let ms_into = |now: i64| now.rem_euclid(60_000);
    let now = platform::clock::unix_ms();
    if 60_000 - ms_into(now) < margin.as_millis() as i64 {
        let wait = 60_000 - ms_into(now) + 50;
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_answers_kong_s_429_with_its_fields() {
    let e = env_with(json!({"minute": 3, "hour": 10, "limit_by": "ip"})).await;
    clear_of_minute_end(Duration::from_secs(5)).await;
    for remaining in [2, 1, 0] {
        let a = get(&e.dp, "/echo", &[]).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.field("x-ratelimit-limit-minute"), Some("3"));
        assert_eq!(
            a.field("x-ratelimit-remaining-minute"),
            Some(remaining.to_string().as_str())
        );
        assert_eq!(a.field("x-ratelimit-limit-hour"), Some("10"));
        assert_eq!(a.field("ratelimit-limit"), Some("3"));
        assert_eq!(
            a.field("ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        let reset: i64 = a.field("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert!(a.field("retry-after").is_none());
    }
    let refused = get(&e.dp, "/echo", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, json!({"message": "API rate limit exceeded"}));
    assert_eq!(refused.field("x-ratelimit-remaining-minute"), Some("0"));
    assert_eq!(
        refused.field("x-ratelimit-remaining-hour"),
        Some("7"),
        "a refused request is not counted"
    );
    let retry: i64 = refused.field("retry-after").unwrap().parse().unwrap();
    assert_eq!(
        refused.field("ratelimit-reset"),
        Some(retry.to_string().as_str())
    );
    assert_eq!(
        e.up.requests(),
        3,
        "the upstream saw only what was admitted"
    );
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_plugin_refusals_total",
            &[("plugin", "rate-limiting"), ("reason", "rate_limited")]
        ),
        1.0
    );

    // Kong's other answer fields: a custom status and message, and no fields for the client.
    let id = first_plugin(&e.cp).await;
    patch_plugin(
        &e.cp,
        &[&e.dp],
        &id,
        json!({"error_code": 503, "error_message": "slow down", "hide_client_headers": true}),
    )
    .await;
    let a = get(&e.dp, "/echo", &[]).await;
    assert_eq!((a.status, &a.body), (503, &json!({"message": "slow down"})));
    assert!(a
        .headers
        .keys()
        .all(|k| !k.as_str().contains("ratelimit") && k != "retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_by_counts_its_own_subject() {
    // header: each value its own count; without the header, the client's address.
    let e = env_with(json!({"minute": 1, "limit_by": "header", "header_name": "x-tenant"})).await;
    clear_of_minute_end(Duration::from_secs(10)).await;
    let tenant = |t: &'static str| [("x-tenant", t)];
    assert_eq!(get(&e.dp, "/echo", &tenant("a")).await.status, 200);
    assert_eq!(get(&e.dp, "/echo", &tenant("a")).await.status, 429);
    assert_eq!(get(&e.dp, "/echo", &tenant("b")).await.status, 200);
    assert_eq!(get(&e.dp, "/echo", &[]).await.status, 200);
    assert_eq!(get(&e.dp, "/echo", &[]).await.status, 429);

    let plugin = first_plugin(&e.cp).await;
    let nodes = [&e.dp];
    let patch = |config: Value| patch_plugin(&e.cp, &nodes, &plugin, config);
    // path: requests to the configured path share one count; others fall back to the address, whose
    // count the requests above already used up.
    patch(json!({"limit_by": "path", "path": "/echo/a", "minute": 2})).await;
    assert_eq!(get(&e.dp, "/echo/a", &[]).await.status, 200);
    assert_eq!(get(&e.dp, "/echo/a", &[]).await.status, 200);
    assert_eq!(get(&e.dp, "/echo/a", &[]).await.status, 429);

    // service: both routes of the service share one count.
    patch(json!({"limit_by": "service", "minute": 2})).await;
    assert_eq!(get(&e.dp, "/echo", &[]).await.status, 200);
    assert_eq!(get(&e.dp, "/other", &[]).await.status, 200);
    assert_eq!(get(&e.dp, "/other", &[]).await.status, 429);
    assert_eq!(get(&e.dp, "/echo", &[]).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_credentials_are_counted_apart() {
    let cp = ControlPlane::start().await;
    let idp = TestIdp::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/echo"]}))
        .await;
    for name in ["alice", "bob"] {
        cp.post("/consumers", json!({ "username": name })).await;
    }
    cp.post(
        "/services/echo/plugins",
        json!({"name": "oauth2-introspection", "config": {"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization}}),
    )
    .await;
    let limit = cp
        .post(
            "/services/echo/plugins",
            json!({"name": "rate-limiting", "config": {"minute": 2}}),
        )
        .await;
    dp.wait_version(cp.version().await).await;
    let exp = platform::unix_now() + 600;
    for (token, user) in [
        ("a1", "alice"),
        ("a2", "alice"),
        ("b1", "bob"),
        ("n1", "nobody"),
        ("n2", "nobody"),
    ] {
        idp.add_token(token, json!({"active": true, "username": user, "exp": exp}));
    }
    clear_of_minute_end(Duration::from_secs(10)).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let call = |t: &'static str| {
        let dp = &dp;
        async move {
            get(dp, "/echo", &[("authorization", bearer(t).as_str())])
                .await
                .status
        }
    };
    // consumer: alice's two tokens share her count; bob has his own.
    assert_eq!(call("a1").await, 200);
    assert_eq!(call("a2").await, 200);
    assert_eq!(call("a1").await, 429);
    assert_eq!(call("b1").await, 200);
    // Without a Consumer, each credential is counted on its own (Kong's fallback for `consumer`).
    assert_eq!(call("n1").await, 200);
    assert_eq!(call("n1").await, 200);
    assert_eq!(call("n1").await, 429);
    assert_eq!(call("n2").await, 200);

    // credential: each token apart, even alice's two.
    let id = limit["id"].as_str().unwrap();
    patch_plugin(
        &cp,
        &[&dp],
        id,
        json!({"limit_by": "credential", "minute": 1}),
    )
    .await;
    clear_of_minute_end(Duration::from_secs(5)).await;
    // The counts above were under other keys: each token starts afresh.
    let first = call("a1").await;
    assert_eq!(first, 200);
    assert_eq!(call("a1").await, 429);
    assert_eq!(call("a2").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_roll_over_at_their_boundary() {
    let e = env_with(json!({"second": 2, "limit_by": "header", "header_name": "x-roll"})).await;
    let h = [("x-roll", "r")];
    // Fill one second's window, wherever in the second the test starts.
    let refused = eventually(
        Duration::from_secs(5),
        "a full one-second window",
        || async {
            let a = get(&e.dp, "/echo", &h).await;
            (a.status == 429).then_some(a)
        },
    )
    .await;
    assert_eq!(refused.field("retry-after"), Some("1"));
    // The next window admits again, from a fresh count.
    let admitted = eventually(
        Duration::from_secs(3),
        "the next one-second window",
        || async {
            let a = get(&e.dp, "/echo", &h).await;
            (a.status == 200).then_some(a)
        },
    )
    .await;
    assert_eq!(admitted.field("x-ratelimit-remaining-second"), Some("1"));
}

/// A cluster whose nodes count on `redis`, with `extra` config.
async fn redis_env(redis: &Redis, extra: Value, nodes: usize) -> (Env, Vec<DataPlane>) {
    let mut config = json!({"policy": "redis", "redis": {"host": redis.host(), "port": redis.port, "timeout": 500}});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let e = env_with(config).await;
    let mut others = Vec::new();
    for _ in 1..nodes {
        let dp = DataPlane::start(&e.cp).await;
        dp.wait_version(e.cp.version().await).await;
        others.push(dp);
    }
    (e, others)
}

/// Sends `total` requests from 64 concurrent clients spread over `nodes` and returns how many were
/// admitted.
async fn burst(nodes: &[&DataPlane], total: usize) -> usize {
    let http = client();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let clients = (0..64).map(|_| async {
        let mut admitted = 0;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= total {
                return admitted;
            }
            let node = nodes[i % nodes.len()];
            let resp = http
                .get(format!("{}/echo", node.proxy_url))
                .send()
                .await
                .unwrap();
            match resp.status().as_u16() {
                200 => admitted += 1,
                429 => {}
                other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
            }
        }
    });
    join_all(clients).await.into_iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_admit_the_limit_exactly() {
    let redis = Redis::start();
    let (e, others) = redis_env(&redis, json!({"minute": 100, "limit_by": "service"}), 2).await;
    clear_of_minute_end(Duration::from_secs(15)).await;
    let admitted = burst(&[&e.dp, &others[0]], 300).await;
    assert_eq!(admitted, 100, "the limit holds across both nodes");
    assert_eq!(e.up.requests(), 100);

    // The local policy counts per node: two nodes admit up to twice the limit.
    let id = first_plugin(&e.cp).await;
    patch_plugin(
        &e.cp,
        &[&e.dp, &others[0]],
        &id,
        json!({"policy": "local", "minute": 10}),
    )
    .await;
    clear_of_minute_end(Duration::from_secs(10)).await;
    assert_eq!(burst(&[&e.dp, &others[0]], 60).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_ridden_out_as_fault_tolerant_says() {
    let mut redis = Redis::start_with(Some("redis-test-secret-7c2e"));
    let (e, _) = redis_env(
        &redis,
        json!({"minute": 1000, "limit_by": "ip", "redis": {"host": redis.host(), "port": redis.port, "timeout": 300, "password": "redis-test-secret-7c2e"}}),
        1,
    )
    .await;
    // The password is a secret: never read back.
    let plugin = e.cp.get("/plugins").await.unwrap()["data"][0].clone();
    assert_eq!(plugin["config"]["redis"]["password"], "[redacted]");
    assert!(!plugin.to_string().contains("redis-test-secret"));
    let a = get(&e.dp, "/echo", &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.field("x-ratelimit-remaining-minute").is_some());

    redis.kill();
    // fault_tolerant (the default): let through, without fields, and counted as a store failure.
    for _ in 0..3 {
        let a = get(&e.dp, "/echo", &[]).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.field("x-ratelimit-remaining-minute").is_none());
    }
    let m = e.dp.metrics().await;
    assert!(
        metric(
            &m,
            "portcullis_plugin_events_total",
            &[("plugin", "rate-limiting"), ("event", "store_failed")]
        ) >= 3.0
    );

    // Not fault tolerant: 503 while Redis is down.
    let id = plugin["id"].as_str().unwrap();
    patch_plugin(&e.cp, &[&e.dp], id, json!({"fault_tolerant": false})).await;
    let a = get(&e.dp, "/echo", &[]).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "The rate limiting counters are unavailable"
    );
    assert!(!a.body.to_string().contains("redis-test-secret"));

    // Redis back: the node recovers by itself.
    redis.start_server();
    let a = eventually(Duration::from_secs(10), "counting resumes", || async {
        let a = get(&e.dp, "/echo", &[]).await;
        (a.status == 200).then_some(a)
    })
    .await;
    assert!(a.field("x-ratelimit-remaining-minute").is_some());
    assert!(e.dp.status().await.is_ok(), "the node kept running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_are_refused_field_by_field() {
    let cp = ControlPlane::start().await;
    let cases = [
        (json!({}), "@entity"),
        (json!({"minute": 0}), "minute"),
        (json!({"second": 10, "minute": 5}), "@entity"),
        (json!({"minute": 1, "policy": "cluster"}), "policy"),
        (json!({"minute": 1, "policy": "redis"}), "redis"),
        (json!({"minute": 1, "limit_by": "header"}), "header_name"),
        (
            json!({"minute": 1, "limit_by": "path", "path": "x"}),
            "path",
        ),
        (json!({"minute": 1, "redis": {"port": "x"}}), "redis"),
    ];
    for (config, field) in cases {
        let (s, v) = cp
            .call(
                reqwest::Method::POST,
                "/plugins",
                Some(json!({"name": "rate-limiting", "config": config})),
            )
            .await
            .unwrap();
        assert_eq!(s, 400, "{config}: {v}");
        let errors = &v["fields"]["config"];
        let found = if field == "@entity" {
            errors["@entity"].is_array()
        } else {
            !errors[field].is_null()
        };
        assert!(found, "{config}: {field} not named in {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_reach_redis_over_tls_verified_against_the_node_s_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = tests::pki::TestCa::new("redis test CA");
    let (cert, key) = ca.issue(&["localhost"]).write_to(dir.path(), "redis");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let redis = Redis::start_tls(tests::redis::Tls { cert, key });
    let tls_port = redis.tls_port.unwrap();

    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let trusting = DataPlane::start_with(tests::DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        idp_ca_file: Some(ca_file),
        ..Default::default()
    })
    .await;
    let untrusting = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/echo"]}))
        .await;
    cp.post(
        "/services/echo/plugins",
        json!({"name": "rate-limiting", "config": {
            "minute": 2, "limit_by": "service", "policy": "redis", "fault_tolerant": false,
            "redis": {"host": "localhost", "port": tls_port, "ssl": true, "ssl_verify": true, "timeout": 1000},
        }}),
    )
    .await;
    let version = cp.version().await;
    trusting.wait_version(version).await;
    untrusting.wait_version(version).await;
    clear_of_minute_end(Duration::from_secs(10)).await;

    // The node that trusts the server's CA counts there.
    assert_eq!(get(&trusting, "/echo", &[]).await.status, 200);
    assert_eq!(get(&trusting, "/echo", &[]).await.status, 200);
    assert_eq!(get(&trusting, "/echo", &[]).await.status, 429);
    // The one that does not refuses the server's certificate: not fault tolerant, 503.
    let a = get(&untrusting, "/echo", &[]).await;
    assert_eq!(a.status, 503, "{}", a.body);

    // Without verification the certificate is not checked (Kong's default for ssl_verify).
    let id = first_plugin(&cp).await;
    patch_plugin(
        &cp,
        &[&trusting, &untrusting],
        &id,
        json!({"redis": {"ssl_verify": false}}),
    )
    .await;
    let a = get(&untrusting, "/echo", &[]).await;
    assert_eq!(a.status, 429, "counted on the same server: {}", a.body);
}
