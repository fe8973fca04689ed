//! Bodiless requests to a plain-HTTP upstream, which the node exchanges in the request's own task, through
//! real sockets against a hand-written upstream: kept connections carry request after request, every
//! body framing (length, chunked, until close, none for HEAD and 204) reaches the client intact, and a
//! kept connection the upstream closed while idle is replaced without the client noticing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tests::{ControlPlane, DataPlane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The answer the upstream gives to a request for `path`, and whether it closes the connection after it.
fn answer(path: &str) -> (Vec<u8>, bool) {
    match path {
        "/length" => (b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nlength".to_vec(), false),
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nchun\r\n3;x=y\r\nked\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        "/empty" => (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false),
        "/close" => (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close".to_vec(), true),
        // Answers, then closes the kept connection while it is idle.
        "/then-close" => (b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nonce".to_vec(), true),
        _ => (b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(), false),
    }
}

/// A raw HTTP/1.1 upstream; returns its port and the count of connections it accepted.
async fn upstream() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (mut bytes, close) = answer(&path);
                    if head.starts_with("HEAD ") {
                        bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n".to_vec();
                    }
                    if conn.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// One request on the one downstream connection; the answer's head and its body as text.
async fn exchange(
    proxy: &mut SendRequest<Empty<Bytes>>,
    method: Method,
    path: &str,
) -> (http::response::Parts, String) {
    proxy.ready().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(format!("/raw{path}"))
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let (parts, body) = proxy.send_request(req).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_upstream_connections_and_every_body_framing_through_the_proxy() {
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    let (port, accepted) = upstream().await;
    cp.post(
        "/services",
        json!({"name": "raw", "url": format!("http://127.0.0.1:{port}")}),
    )
    .await;
    cp.post("/services/raw/routes", json!({"paths": ["/raw"]}))
        .await;
    dp.wait_version(cp.version().await).await;
    // One downstream connection for every request (a pooled client may open a second one while the
    // first is being returned), so one worker and its one pool serve them all.
    let tcp = tokio::net::TcpStream::connect(dp.proxy_url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut proxy, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);

    for _ in 0..20 {
        let (r, body) = exchange(&mut proxy, Method::GET, "/length").await;
        assert_eq!(r.status, 200);
        assert_eq!(body, "length");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one kept upstream connection carried twenty requests"
    );

    let (r, body) = exchange(&mut proxy, Method::GET, "/chunked").await;
    assert_eq!(r.status, 200);
    assert_eq!(body, "chunked");
    let (r, body) = exchange(&mut proxy, Method::GET, "/empty").await;
    assert_eq!(r.status, 204);
    assert_eq!(body, "");
    let (r, body) = exchange(&mut proxy, Method::HEAD, "/length").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-length"], "6");
    assert_eq!(body, "");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "chunked, 204 and HEAD answers leave the connection reusable"
    );

    let (_, body) = exchange(&mut proxy, Method::GET, "/close").await;
    assert_eq!(body, "until close");
    // The upstream closes each connection after one answer from now on: the pooled connection a
    // request takes may already be closed, and the request still gets its answer.
    for _ in 0..10 {
        let (r, body) = exchange(&mut proxy, Method::GET, "/then-close").await;
        assert_eq!(r.status, 200);
        assert_eq!(body, "once");
    }
}
