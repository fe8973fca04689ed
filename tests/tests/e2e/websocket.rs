//! Protocol upgrades through the proxy: a WebSocket handshake reaches the upstream with its upgrade
//! headers, the client gets the upstream's `101 Switching Protocols`, and bytes then flow both ways over
//! the joined connections, through a plain route, a balanced Service and a route whose handshake
//! `oauth2-introspection` checks; an idle tunnel is closed after the Service's `read_timeout`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tests::{eventually, metric, within, ControlPlane, DataPlane, TestIdp, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that switches to an upper-casing echo on any upgrade request, closes when it reads `bye`
/// alone, and writes without end when it reads `flood` alone. Returns its port.
async fn upgrading_upstream() -> u16 {
    tests::serve_each(|tcp| {
        let svc = hyper::service::service_fn(
            |mut req: http::Request<hyper::body::Incoming>| async move {
                let asked = req.headers().get("upgrade").cloned();
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(up) = on.await else { return };
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        // "bye" alone: the upstream closes its side.
                        if n == 0 || &buf[..n] == b"bye" {
                            break;
                        }
                        if &buf[..n] == b"flood" {
                            let chunk = vec![b'x'; 1 << 20];
                            while io.write_all(&chunk).await.is_ok() {}
                            break;
                        }
                        if io.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                            break;
                        }
                    }
                });
                let mut resp = http::Response::new(Empty::<Bytes>::new());
                *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                resp.headers_mut()
                    .insert("connection", "upgrade".parse().unwrap());
                resp.headers_mut()
                    .insert("upgrade", asked.unwrap_or_else(|| "none".parse().unwrap()));
                Ok::<_, Infallible>(resp)
            },
        );
        async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        }
    })
    .await
}

/// Opens a WebSocket handshake to `path` on the proxy at `addr`; the response head and the connection.
async fn handshake(addr: &str, path: &str) -> (String, tokio::net::TcpStream) {
    handshake_with(addr, path, "").await
}

/// The same with extra header lines (each ending in CRLF).
async fn handshake_with(addr: &str, path: &str, extra: &str) -> (String, tokio::net::TcpStream) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: ws.example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "the proxy closed during the handshake"
        );
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), tcp)
}

/// A control plane and a node with a Service `ws` on the upstream at `port` (plus `extra` fields) and a
/// route `/ws` to it.
async fn cluster_with_ws_route(port: u16, extra: serde_json::Value) -> (ControlPlane, DataPlane) {
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    let mut service = json!({"name": "ws", "url": format!("http://127.0.0.1:{port}")});
    for (k, v) in extra.as_object().unwrap() {
        service[k] = v.clone();
    }
    cp.post("/services", service).await;
    cp.post("/services/ws/routes", json!({"paths": ["/ws"]}))
        .await;
    (cp, dp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_tunnelled_to_the_upstream_both_ways() {
    let port = upgrading_upstream().await;
    let (cp, dp) = cluster_with_ws_route(port, json!({})).await;
    cp.post("/upstreams", json!({"name": "ws.internal"})).await;
    cp.post(
        "/upstreams/ws.internal/targets",
        json!({"target": format!("127.0.0.1:{port}")}),
    )
    .await;
    cp.post(
        "/services",
        json!({"name": "wsb", "host": "ws.internal", "port": 80}),
    )
    .await;
    cp.post("/services/wsb/routes", json!({"paths": ["/balanced"]}))
        .await;
    dp.wait_version(cp.version().await).await;
    let addr = dp.proxy_url.trim_start_matches("http://").to_string();
    for path in ["/ws/chat", "/balanced/chat"] {
        let (head, mut tcp) = handshake(&addr, path).await;
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            lower.contains("upgrade: websocket") && lower.contains("connection: upgrade"),
            "{head}"
        );
        assert!(lower.contains("x-request-id:"), "{head}");
        for word in ["hello", "through the gateway"] {
            tcp.write_all(word.as_bytes()).await.unwrap();
            let mut got = vec![0u8; word.len()];
            within(Duration::from_secs(5), "the echo", tcp.read_exact(&mut got))
                .await
                .unwrap();
            assert_eq!(got, word.to_ascii_uppercase().as_bytes(), "{path}");
        }
    }
    // Both tunnels were closed by the client (dropped above): counted with their bytes each way.
    let m = eventually(PATIENCE, "both tunnels are counted", || async {
        let m = dp.metrics().await;
        (metric(
            &m,
            "portcullis_upgraded_connections_total",
            &[("ended", "closed")],
        ) >= 2.0)
            .then_some(m)
    })
    .await;
    let sent = (2 * ("hello".len() + "through the gateway".len())) as f64;
    assert_eq!(
        metric(
            &m,
            "portcullis_upgraded_bytes_total",
            &[("direction", "upstream")]
        ),
        sent
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_upgraded_bytes_total",
            &[("direction", "downstream")]
        ),
        sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_is_authenticated_and_an_idle_tunnel_is_closed_and_counted() {
    let port = upgrading_upstream().await;
    let idp = TestIdp::start().await;
    idp.add_token("ws-token", json!({"sub": "alice", "client_id": "app"}));
    let (cp, dp) = cluster_with_ws_route(port, json!({"read_timeout": 300})).await;
    cp.post(
        "/services/ws/plugins",
        json!({"name": "oauth2-introspection", "config": {"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization}}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let addr = dp.proxy_url.trim_start_matches("http://").to_string();
    let (head, _) = handshake(&addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 401"), "no token: {head}");
    let (head, mut tcp) = handshake_with(&addr, "/ws", "Authorization: Bearer ws-token\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    within(Duration::from_secs(5), "the echo", tcp.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"PING");
    // Nothing moves for longer than the Service's read_timeout (300 ms): the proxy closes the tunnel.
    let mut rest = [0u8; 16];
    let n = within(
        Duration::from_secs(5),
        "the idle tunnel is closed",
        tcp.read(&mut rest),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0, "the connection ends without data");
    let counted = eventually(PATIENCE, "the upgraded connection is counted", || async {
        let m = dp.metrics().await;
        (metric(
            &m,
            "portcullis_upgraded_connections_total",
            &[("ended", "idle")],
        ) >= 1.0)
            .then_some(m)
    })
    .await;
    assert_eq!(
        metric(
            &counted,
            "portcullis_upgraded_connections_total",
            &[("ended", "closed")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_cross_the_tunnel_and_the_upstream_may_close_first() {
    let port = upgrading_upstream().await;
    let (cp, dp) = cluster_with_ws_route(port, json!({})).await;
    dp.wait_version(cp.version().await).await;
    let addr = dp.proxy_url.trim_start_matches("http://").to_string();
    let (head, tcp) = handshake(&addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (mut rd, mut wr) = tcp.into_split();
    let message: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i| b"abcdefghij"[i % 10])
        .collect();
    let expected = message.to_ascii_uppercase();
    let writer = tokio::spawn(async move {
        wr.write_all(&message).await.unwrap();
        wr
    });
    let mut got = vec![0u8; expected.len()];
    within(
        Duration::from_secs(30),
        "10 MB back through the tunnel",
        rd.read_exact(&mut got),
    )
    .await
    .unwrap();
    assert!(got == expected, "the bytes came back changed");
    let mut wr = writer.await.unwrap();
    // The upstream closes first: the client sees the end of the stream.
    wr.write_all(b"bye").await.unwrap();
    let mut rest = [0u8; 8];
    let n = within(
        Duration::from_secs(5),
        "the upstream's close reaches the client",
        rd.read(&mut rest),
    )
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let port = upgrading_upstream().await;
    let (_cp, dp) =
        cluster_with_ws_route(port, json!({"write_timeout": 300, "read_timeout": 60_000})).await;
    dp.wait_version(_cp.version().await).await;
    let addr = dp.proxy_url.trim_start_matches("http://").to_string();
    let (head, mut tcp) = handshake(&addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The upstream now writes without end and this client reads nothing: once the buffers between are
    // full, the proxy's writes to the client wait, and after write_timeout the tunnel is closed.
    tcp.write_all(b"flood").await.unwrap();
    eventually(
        PATIENCE,
        "the stalled tunnel is closed and counted",
        || async {
            let m = dp.metrics().await;
            (metric(
                &m,
                "portcullis_upgraded_connections_total",
                &[("ended", "stalled")],
            ) >= 1.0)
                .then_some(())
        },
    )
    .await;
    drop(tcp);
}
