//! The data-plane proxy through real sockets: routing, path handling, forwarded and hop-by-hop headers,
//! Kong-style errors, retries, streaming, metrics, and reconfiguration under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::{client, metric, ControlPlane, DataPlane, EchoUpstream};

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    up: EchoUpstream,
}

async fn env() -> Env {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    Env { cp, dp, up }
}

impl Env {
    async fn sync(&self) {
        self.dp.wait_version(self.cp.version().await).await;
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = client().get(format!("{}{}", self.dp.proxy_url, path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let s = resp.status().as_u16();
        let h = resp.headers().clone();
        (s, h, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_priority_through_the_proxy() {
    let e = env().await;
    let up = &e.up.url;
    e.cp.post("/services", json!({"name": "s", "url": up}))
        .await;
    for (name, route) in [
        ("root", json!({"paths": ["/"]})),
        ("api", json!({"paths": ["/api"]})),
        ("api-v1", json!({"paths": ["/api/v1"]})),
        (
            "host",
            json!({"paths": ["/api"], "hosts": ["api.example.com"]}),
        ),
        ("wild", json!({"hosts": ["*.wild.test"]})),
        (
            "regex",
            json!({"paths": ["~/items/\\d+$"], "regex_priority": 2}),
        ),
        ("post", json!({"paths": ["/api"], "methods": ["POST"]})),
        (
            "header",
            json!({"paths": ["/api"], "headers": {"x-beta": ["yes"]}}),
        ),
    ] {
        let mut r = route;
        r["name"] = json!(name);
        r["strip_path"] = json!(false);
        e.cp.post("/services/s/routes", r).await;
    }
    e.sync().await;
    for (path, expect_path) in [
        ("/other", "/other"),
        ("/api/x", "/api/x"),
        ("/api/v1/x", "/api/v1/x"),
        ("/items/42", "/items/42"),
    ] {
        let (s, _, body) = e.get(path, &[]).await;
        assert_eq!(s, 200);
        assert_eq!(body["path"], expect_path);
    }
    // The metrics name the matched route, which shows the priority decisions.
    let m0 = e.dp.metrics().await;
    assert_eq!(
        metric(&m0, "portcullis_http_requests_total", &[("route", "regex")]),
        1.0
    );
    assert_eq!(
        metric(
            &m0,
            "portcullis_http_requests_total",
            &[("route", "api-v1")]
        ),
        1.0
    );
    e.get("/api", &[("host", "api.example.com")]).await;
    e.get("/api", &[("x-beta", "yes")]).await;
    e.get("/anything", &[("host", "a.wild.test")]).await;
    let resp = client()
        .post(format!("{}/api", e.dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = e.dp.metrics().await;
    for route in ["host", "header", "wild", "post", "root", "api"] {
        assert_eq!(
            metric(
                &m,
                "portcullis_http_requests_total",
                &[("route", route), ("status", "200")]
            ),
            1.0,
            "route {route}\n{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_path_preserve_host_and_forwarded_headers() {
    let e = env().await;
    e.cp.post(
        "/services",
        json!({"name": "s", "url": format!("{}/base", e.up.url)}),
    )
    .await;
    e.cp.post(
        "/services/s/routes",
        json!({"name": "strip", "paths": ["/strip"]}),
    )
    .await;
    e.cp.post(
        "/services/s/routes",
        json!({"name": "keep", "paths": ["/keep"], "strip_path": false, "preserve_host": true}),
    )
    .await;
    e.sync().await;
    let (s, h, body) = e
        .get(
            "/strip/users?q=1",
            &[
                ("host", "gw.example.com:9000"),
                ("x-forwarded-for", "10.0.0.1"),
                ("connection", "keep-alive, x-secret-hop"),
                ("x-secret-hop", "1"),
                ("te", "gzip"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["path"], "/base/users");
    assert_eq!(body["query"], "q=1");
    let hs = &body["headers"];
    assert_eq!(hs["host"], format!("{}:{}", e.up.host, e.up.port));
    assert_eq!(hs["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(hs["x-real-ip"], "127.0.0.1");
    assert_eq!(hs["x-forwarded-proto"], "http");
    assert_eq!(hs["x-forwarded-host"], "gw.example.com");
    assert_eq!(hs["x-forwarded-port"], "9000");
    assert_eq!(hs["x-forwarded-path"], "/strip/users");
    assert!(
        hs.get("x-secret-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert!(hs.get("te").is_none());
    assert!(
        hs["x-request-id"].as_str().unwrap().len() >= 16,
        "a request id is added"
    );
    // Response side: hop-by-hop removed, Via and latency headers added, request id echoed.
    assert!(h.get("x-upstream-hop").is_none());
    assert!(h["via"].to_str().unwrap().contains("portcullis"));
    assert!(h.contains_key("x-portcullis-upstream-latency"));
    let (_, _, body) = e
        .get(
            "/keep/users",
            &[("host", "gw.example.com"), ("x-request-id", "my-id-123")],
        )
        .await;
    assert_eq!(body["path"], "/base/keep/users");
    assert_eq!(body["headers"]["host"], "gw.example.com");
    assert_eq!(
        body["headers"]["x-request-id"], "my-id-123",
        "an existing request id is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_upstream_received_is_never_sent_again() {
    use tokio::io::AsyncReadExt;
    let e = env().await;
    // An upstream that reads each request and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            if tcp.read(&mut buf).await.unwrap_or(0) > 0 {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    e.cp.post(
        "/services",
        json!({"name": "hangup", "url": format!("http://127.0.0.1:{port}"), "retries": 3}),
    )
    .await;
    e.cp.post("/services/hangup/routes", json!({"paths": ["/hangup"]}))
        .await;
    e.sync().await;
    let (s, _, body) = e.get("/hangup", &[]).await;
    assert_eq!(
        (s, body),
        (
            502,
            json!({"message": "An invalid response was received from the upstream server"})
        )
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        1,
        "retries apply to failed connections only, never to a request the upstream has seen"
    );
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_upstream_errors_total",
            &[("service", "hangup"), ("kind", "protocol")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kong_style_errors() {
    let e = env().await;
    let closed = tests::closed_port().await;
    e.cp.post(
        "/services",
        json!({"name": "down", "url": format!("http://127.0.0.1:{closed}"), "retries": 2}),
    )
    .await;
    e.cp.post("/services/down/routes", json!({"paths": ["/down"]}))
        .await;
    e.cp.post(
        "/services",
        json!({"name": "slow", "url": e.up.url, "read_timeout": 200, "write_timeout": 100}),
    )
    .await;
    e.cp.post("/services/slow/routes", json!({"paths": ["/slow"]}))
        .await;
    e.sync().await;
    let (s, _, body) = e.get("/nowhere", &[]).await;
    assert_eq!(
        (s, body),
        (
            404,
            json!({"message": "no Route matched with those values"})
        )
    );
    // The same message as a page, XML or text when the client asks for one (Kong's negotiation).
    for (accept, content_type, text) in [
        (
            "text/html,application/xhtml+xml,*/*;q=0.8",
            "text/html",
            "<p>no Route matched with those values.</p>",
        ),
        (
            "application/xml",
            "application/xml",
            "<message>no Route matched with those values</message>",
        ),
        (
            "text/plain",
            "text/plain",
            "no Route matched with those values\n",
        ),
        (
            "application/json;q=0.9, text/plain;q=0.1",
            "application/json",
            "{\"message\"",
        ),
    ] {
        let r = client()
            .get(format!("{}/nowhere", e.dp.proxy_url))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let got = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(got.starts_with(content_type), "{accept}: {got}");
        assert!(r.text().await.unwrap().contains(text), "{accept}");
    }
    let (s, _, body) = e.get("/down", &[]).await;
    assert_eq!(
        (s, body),
        (
            502,
            json!({"message": "An invalid response was received from the upstream server"})
        )
    );
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_upstream_errors_total",
            &[("service", "down"), ("kind", "connect")]
        ),
        3.0,
        "1 try + 2 retries"
    );
    // A failed connection has sent nothing, so a streamed body is retried the same way.
    let body = reqwest::Body::wrap_stream(futures::stream::iter(vec![Ok::<_, std::io::Error>(
        bytes::Bytes::from_static(b"chunk"),
    )]));
    let r = client()
        .post(format!("{}/down", e.dp.proxy_url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_upstream_errors_total",
            &[("service", "down"), ("kind", "connect")]
        ),
        6.0
    );
    let (s, _, body) = e.get("/slow/delay/2000", &[]).await;
    assert_eq!(
        (s, body),
        (504, json!({"message": "The upstream server is timing out"}))
    );
    let long = format!("/x?{}", "a".repeat(9000));
    let (s, _, _) = e.get(&long, &[]).await;
    assert_eq!(s, 414);
    // A malformed request line gets a 400 from the HTTP layer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = e.dp.proxy_url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_stream_both_ways_in_bounded_memory() {
    let e = env().await;
    e.cp.post("/services", json!({"name": "s", "url": e.up.url}))
        .await;
    e.cp.post(
        "/services/s/routes",
        json!({"paths": ["/"], "strip_path": false}),
    )
    .await;
    e.sync().await;
    const SIZE: u64 = 100 * 1024 * 1024;
    let before = peak_rss_kib();
    // Upload: generated chunk by chunk, never held whole.
    let chunk = bytes::Bytes::from(vec![b'u'; 256 * 1024]);
    let chunks = (SIZE / chunk.len() as u64) as usize;
    let stream =
        futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = client()
        .post(format!("{}/upload", e.dp.proxy_url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["body_len"], SIZE);
    // Download: read chunk by chunk.
    let mut r = client()
        .get(format!("{}/bytes/{SIZE}", e.dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0u64;
    while let Some(c) = r.chunk().await.unwrap() {
        got += c.len() as u64;
    }
    assert_eq!(got, SIZE);
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 64,
        "peak memory grew by {grown_mib} MiB while streaming 2 x 100 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_known_traffic() {
    let e = env().await;
    e.cp.post("/services", json!({"name": "svc", "url": e.up.url}))
        .await;
    e.cp.post(
        "/services/svc/routes",
        json!({"name": "r", "paths": ["/"], "strip_path": false}),
    )
    .await;
    e.sync().await;
    for _ in 0..5 {
        assert_eq!(e.get("/ok", &[]).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(e.get("/status/418", &[]).await.0, 418);
    }
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_http_requests_total",
            &[("route", "r"), ("service", "svc"), ("status", "200")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_http_requests_total",
            &[("route", "r"), ("status", "418")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_request_duration_seconds_count",
            &[("route", "r")]
        ),
        8.0
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_upstream_duration_seconds_count",
            &[("service", "svc")]
        ),
        8.0
    );
    assert_eq!(
        metric(&m, "portcullis_config_version", &[]),
        e.cp.version().await as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_snapshots_under_load_lose_no_request() {
    let e = env().await;
    e.cp.post("/services", json!({"name": "s", "url": e.up.url}))
        .await;
    e.cp.post(
        "/services/s/routes",
        json!({"name": "main", "paths": ["/load"]}),
    )
    .await;
    e.sync().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            format!("{}/load", e.dp.proxy_url),
        );
        workers.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let first = e.dp.config_version().await;
    for i in 0..50 {
        e.cp.post(
            "/services/s/routes",
            json!({"name": format!("extra-{i}"), "paths": [format!("/extra/{i}")]}),
        )
        .await;
        e.sync().await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(e.dp.config_version().await >= first + 50);
    let applied = metric(
        &e.dp.metrics().await,
        "portcullis_config_applied_total",
        &[],
    );
    assert!(applied >= 25.0, "snapshots applied: {applied}");
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "requests: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during reconfiguration"
    );
    let _ = Method::GET;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_request_id_under_the_configured_header() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start_with(tests::DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        request_id_header: Some("X-Correlation-ID".into()),
        ..Default::default()
    })
    .await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/echo"]}))
        .await;
    cp.post(
        "/services",
        json!({"name": "down", "url": format!("http://127.0.0.1:{}", tests::closed_port().await)}),
    )
    .await;
    cp.post("/services/down/routes", json!({"paths": ["/down"]}))
        .await;
    dp.wait_version(cp.version().await).await;
    let http = client();
    // Proxied (200), no route (404), upstream refused (502): each answer names the id, under that header
    // only; an id the client sent is kept and reaches the upstream.
    for (path, status) in [("/echo/x", 200), ("/nowhere", 404), ("/down", 502)] {
        let r = http
            .get(format!("{}{path}", dp.proxy_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let id = r.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(id.len() >= 16, "{path}: {id}");
        assert!(r.headers().get("x-request-id").is_none(), "{path}");
    }
    let r = http
        .get(format!("{}/echo/x", dp.proxy_url))
        .header("x-correlation-id", "client-chosen-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "client-chosen-7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["x-correlation-id"], "client-chosen-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_on_worker_threads_or_the_main_runtime_and_stops_cleanly() {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/echo"]}))
        .await;
    for workers in [0, 1, 3] {
        let mut dp = DataPlane::start_with(tests::DpOptions {
            pairing_token: Some(cp.pairing_token().await),
            control_plane: Some(cp.cluster_addr.to_string()),
            workers: Some(workers),
            ..Default::default()
        })
        .await;
        dp.wait_version(cp.version().await).await;
        // A new connection per request, so every worker gets to accept some.
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let calls = (0..64).map(|i| {
            let (fresh, url) = (fresh.clone(), format!("{}/echo/{i}", dp.proxy_url));
            tokio::spawn(async move { fresh.get(url).send().await.map(|r| r.status().as_u16()) })
        });
        for (i, call) in calls.enumerate() {
            assert_eq!(
                call.await.unwrap().unwrap(),
                200,
                "workers {workers}, call {i}"
            );
        }
        let proxy = dp.proxy_url.clone();
        dp.stop().await;
        // Every worker let go of the listener: nothing accepts on the port any more.
        let after = fresh.get(format!("{proxy}/echo/after")).send().await;
        assert!(
            after.is_err(),
            "workers {workers}: still answering after stop"
        );
    }
}
