//! Services balanced over an Upstream's Targets on three real upstream servers: round-robin by weight,
//! consistent hashing on a header (stable, and only a removed Target's keys move), least-connections, and
//! health: a killed Target taken out by passive checks without a failed request, put back by active
//! checks when it returns, and shown on the node's status listener and, from the node's reports, on the
//! control plane.

use reqwest::Method;
use serde_json::{json, Value};
use tests::{
    client, eventually, get_json, ControlPlane, DataPlane, DpOptions, EchoUpstream, PATIENCE,
};

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    ups: Vec<EchoUpstream>,
}

async fn env(n: usize) -> Env {
    let cp = ControlPlane::start().await;
    // Two workers, each with its own connections: the balancers' counts are the node's, not a worker's.
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        workers: Some(2),
        ..Default::default()
    })
    .await;
    let mut ups = Vec::new();
    for _ in 0..n {
        ups.push(EchoUpstream::start().await);
    }
    Env { cp, dp, ups }
}

impl Env {
    /// An Upstream `name` with `body`'s settings, a Service on it and a route `/{name}`.
    async fn balanced(&self, name: &str, body: Value, targets: &[(u16, u32)]) {
        let mut upstream = body;
        upstream["name"] = json!(format!("{name}.internal"));
        self.cp.post("/upstreams", upstream).await;
        for (port, weight) in targets {
            self.cp
                .post(
                    &format!("/upstreams/{name}.internal/targets"),
                    json!({"target": format!("127.0.0.1:{port}"), "weight": weight}),
                )
                .await;
        }
        self.cp
            .post(
                "/services",
                json!({"name": name, "host": format!("{name}.internal"), "port": 80, "retries": 3}),
            )
            .await;
        self.cp
            .post(
                &format!("/services/{name}/routes"),
                json!({"paths": [format!("/{name}")]}),
            )
            .await;
    }

    async fn sync(&self) {
        self.dp.wait_version(self.cp.version().await).await;
    }

    fn counts(&self) -> Vec<u64> {
        self.ups.iter().map(EchoUpstream::requests).collect()
    }

    /// Sends one request and returns the index of the upstream that served it.
    async fn served_by(&self, path: &str, headers: &[(&str, &str)]) -> usize {
        let before = self.counts();
        let mut r = client().get(format!("{}{path}", self.dp.proxy_url));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let after = self.counts();
        (0..after.len())
            .find(|i| after[*i] > before[*i])
            .expect("one upstream served it")
    }

    async fn requests(&self, path: &str, n: usize) -> Vec<u64> {
        let before = self.counts();
        for _ in 0..n {
            let resp = client()
                .get(format!("{}{path}", self.dp.proxy_url))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "no request fails");
        }
        self.counts()
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_follows_weights_and_weight_zero_takes_a_target_out() {
    let e = env(3).await;
    let ports: Vec<u16> = e.ups.iter().map(|u| u.port).collect();
    e.balanced(
        "rr",
        json!({}),
        &[(ports[0], 100), (ports[1], 100), (ports[2], 200)],
    )
    .await;
    e.sync().await;
    // Within 5% of the weights' shares (the wheel is exact; the tolerance covers nothing else).
    let got = e.requests("/rr", 400).await;
    for (n, want) in got.iter().zip([100, 100, 200]) {
        assert!(n.abs_diff(want) <= want / 20, "{got:?}");
    }
    let targets = e.cp.get("/upstreams/rr.internal/targets").await.unwrap();
    let third = targets["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == format!("127.0.0.1:{}", ports[2]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) =
        e.cp.call(
            Method::PATCH,
            &format!("/targets/{third}"),
            Some(json!({"weight": 0})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    e.sync().await;
    let got = e.requests("/rr", 100).await;
    assert_eq!(got[2], 0, "{got:?}");
    assert_eq!(got[0] + got[1], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_is_stable_per_header_and_removing_a_target_moves_only_its_keys() {
    let e = env(3).await;
    let ports: Vec<u16> = e.ups.iter().map(|u| u.port).collect();
    e.balanced(
        "ch",
        json!({"algorithm": "consistent-hashing", "hash_on": "header", "hash_on_header": "x-user"}),
        &[(ports[0], 100), (ports[1], 100), (ports[2], 100)],
    )
    .await;
    e.sync().await;
    let alice = e.served_by("/ch", &[("x-user", "alice")]).await;
    for _ in 0..10 {
        assert_eq!(e.served_by("/ch", &[("x-user", "alice")]).await, alice);
    }
    let users: Vec<String> = (0..60).map(|n| format!("user-{n}")).collect();
    let mut before = Vec::new();
    for u in &users {
        before.push(e.served_by("/ch", &[("x-user", u)]).await);
    }
    assert!(
        (0..3).all(|i| before.contains(&i)),
        "every target gets keys: {before:?}"
    );
    // Remove the target of alice's keys.
    let list = e.cp.get("/upstreams/ch.internal/targets").await.unwrap();
    let id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == format!("127.0.0.1:{}", ports[alice]))
        .map(|t| t["id"].as_str().unwrap().to_string())
        .unwrap();
    let (s, v) =
        e.cp.call(Method::DELETE, &format!("/targets/{id}"), None)
            .await
            .unwrap();
    assert_eq!(s, 204, "{v}");
    e.sync().await;
    for (u, was) in users.iter().zip(&before) {
        let now = e.served_by("/ch", &[("x-user", u)]).await;
        if *was == alice {
            assert_ne!(now, alice, "{u} left the removed target");
        } else {
            assert_eq!(now, *was, "{u} stayed on its target");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_sends_new_requests_to_the_idle_target() {
    let e = env(2).await;
    let ports: Vec<u16> = e.ups.iter().map(|u| u.port).collect();
    e.balanced(
        "lc",
        json!({"algorithm": "least-connections"}),
        &[(ports[0], 100), (ports[1], 100)],
    )
    .await;
    e.sync().await;
    let before = e.counts();
    // A request kept in flight for as long as the test needs: its response body (1 GiB, streamed) is
    // never read, so it cannot end until the response is dropped. No timing is assumed.
    let held = client()
        .get(format!("{}/lc/bytes/1073741824", e.dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let now = e.counts();
    let busy = (0..2)
        .find(|i| now[*i] > before[*i])
        .expect("the held request reached an upstream");
    // Each request on a new connection, so both workers serve some of them.
    let got = e.requests("/lc", 10).await;
    assert_eq!(
        got[1 - busy],
        10,
        "{got:?}: the idle target takes every request"
    );
    drop(held);
    // Once the held request is done, both targets are idle again and take turns.
    let got = eventually(PATIENCE, "both targets take requests again", || async {
        let got = e.requests("/lc", 4).await;
        (got[busy] > 0).then_some(got)
    })
    .await;
    assert_eq!(got.iter().sum::<u64>(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_is_taken_out_without_failed_requests_and_put_back_when_it_returns() {
    let mut e = env(2).await;
    let ports: Vec<u16> = e.ups.iter().map(|u| u.port).collect();
    // A third target whose server is down: its port refuses connections.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    e.balanced(
        "hc",
        json!({"healthchecks": {
            "passive": {"unhealthy": {"tcp_failures": 1}},
            "active": {"http_path": "/health", "unhealthy": {"interval": 0.1}, "healthy": {"successes": 1}}
        }}),
        &[(ports[0], 100), (ports[1], 100), (down_port, 100)],
    )
    .await;
    e.sync().await;
    let got = e.requests("/hc", 30).await;
    assert_eq!(
        got.iter().sum::<u64>(),
        30,
        "every request answered: {got:?}"
    );
    let health_url = format!("{}/upstreams/hc.internal/health", e.dp.status_url);
    let health = get_json(&health_url).await;
    let of = |h: &Value, port: u16| {
        h["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == format!("127.0.0.1:{port}"))
            .map(|t| t["health"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(of(&health, down_port), "UNHEALTHY", "{health}");
    assert_eq!(of(&health, ports[0]), "HEALTHY");
    assert_eq!(health["total"], 3);
    // The control plane shows it from the node's report.
    let cp_health = |port: u16| {
        let cp = &e.cp;
        async move {
            let h = cp.get("/upstreams/hc.internal/health").await.ok()?;
            Some(of(&h, port))
        }
    };
    eventually(
        PATIENCE,
        "the control plane shows the target unhealthy",
        || async { (cp_health(down_port).await? == "UNHEALTHY").then_some(()) },
    )
    .await;
    assert_eq!(cp_health(ports[0]).await.unwrap(), "HEALTHY");

    // The server comes back: active probes see it answer and put it back in rotation.
    let back = tokio::net::TcpListener::bind(("127.0.0.1", down_port))
        .await
        .unwrap();
    e.ups.push(EchoUpstream::start_on(back).await);
    eventually(PATIENCE, "the returned target is healthy again", || {
        let url = health_url.clone();
        async move {
            let h = tests::try_json(&url).await?;
            (of(&h, down_port) == "HEALTHY").then_some(())
        }
    })
    .await;
    let got = e.requests("/hc", 30).await;
    assert!(
        got[2] >= 5,
        "the returned target takes its share again: {got:?}"
    );
    eventually(
        PATIENCE,
        "the control plane shows the target healthy again",
        || async { (cp_health(down_port).await? == "HEALTHY").then_some(()) },
    )
    .await;
    // A Target whose name does not resolve is refused with the field named.
    let (s, v) =
        e.cp.call(
            Method::POST,
            "/upstreams/hc.internal/targets",
            Some(json!({"target": "no-such-host.invalid:80"})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(
        v["fields"]["target"]
            .as_str()
            .unwrap()
            .contains("does not resolve"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_on_a_missing_cookie_sets_it_and_the_cookie_then_sticks() {
    let e = env(3).await;
    let ports: Vec<u16> = e.ups.iter().map(|u| u.port).collect();
    e.balanced(
        "ck",
        json!({"algorithm": "consistent-hashing", "hash_on": "cookie", "hash_on_cookie": "pin", "hash_on_cookie_path": "/ck"}),
        &[(ports[0], 100), (ports[1], 100), (ports[2], 100)],
    )
    .await;
    e.sync().await;
    let resp = client()
        .get(format!("{}/ck", e.dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let (pair, path) = set.split_once("; ").unwrap();
    assert!(pair.starts_with("pin=") && pair.len() > 20, "{set}");
    assert_eq!(path, "Path=/ck");
    let first = e.served_by("/ck", &[("cookie", pair)]).await;
    for _ in 0..10 {
        assert_eq!(e.served_by("/ck", &[("cookie", pair)]).await, first);
    }
    let again = client()
        .get(format!("{}/ck", e.dp.proxy_url))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a request with the cookie keeps it"
    );
}
