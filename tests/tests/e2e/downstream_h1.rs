//! Plain HTTP/1.x clients as the node serves them in the connection's own task, over raw sockets:
//! pipelined requests answered in order, HTTP/1.0's keep-alive rules, broken heads refused, and the
//! hand-off to the hyper server at a request with a body, after which the connection keeps working.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tests::{serve_each, within, ControlPlane, DataPlane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream answering every request with its method, path, body and `X-Forwarded-For` as JSON.
async fn echo_upstream() -> u16 {
    serve_each(|tcp| async move {
        let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let xff = req
                .headers()
                .get("x-forwarded-for")
                .map(|v| v.to_str().unwrap_or_default().to_string());
            let body = req.into_body().collect().await?.to_bytes();
            let echo = json!({
                "method": method,
                "path": path,
                "body": String::from_utf8_lossy(&body),
                "xff": xff,
            });
            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(echo.to_string()))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), svc)
            .await;
    })
    .await
}

/// One answer read from a raw connection.
struct Answer {
    status: u16,
    /// Header fields, names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A raw client connection and what it has read but not yet taken.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(dp: &DataPlane) -> Raw {
        let tcp = TcpStream::connect(dp.proxy_url.trim_start_matches("http://"))
            .await
            .unwrap();
        Raw {
            tcp,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Reads more; false when the node closed the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        // A reset counts as closed.
        let n = within(
            Duration::from_secs(10),
            "the node answers",
            self.tcp.read(&mut chunk),
        )
        .await
        .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next answer; its body framed by `Content-Length` (none after a HEAD request).
    async fn answer(&mut self, head_request: bool) -> Answer {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(self.fill().await, "closed before a complete answer head");
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut answer = Answer {
            status: status.parse().unwrap(),
            headers,
            body: String::new(),
        };
        let length: usize = match (head_request, answer.header("content-length")) {
            (false, Some(n)) => n.parse().unwrap(),
            _ => 0,
        };
        while self.buf.len() < length {
            assert!(self.fill().await, "closed inside a body");
        }
        answer.body = String::from_utf8(self.buf.drain(..length).collect()).unwrap();
        answer
    }

    /// Whether the node closes the connection (after everything it sent was read).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http1_clients_pipelining_http10_refusals_and_the_hand_off_for_bodies() {
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    let port = echo_upstream().await;
    cp.post(
        "/services",
        json!({"name": "echo", "url": format!("http://127.0.0.1:{port}")}),
    )
    .await;
    cp.post("/services/echo/routes", json!({"paths": ["/e"]}))
        .await;
    dp.wait_version(cp.version().await).await;

    // Three requests in one write are answered in order on the one connection.
    let mut raw = Raw::connect(&dp).await;
    raw.send(
        b"GET /e/one HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /e/two HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n\
          HEAD /e/three HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let one = raw.answer(false).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["path"], "/one");
    assert_eq!(one.json()["xff"], "127.0.0.1");
    assert!(one.header("date").is_some() && one.header("x-request-id").is_some());
    assert!(one.header("via").unwrap().contains("portcullis"));
    let two = raw.answer(false).await;
    assert_eq!(two.json()["path"], "/two");
    assert_eq!(two.json()["xff"], "10.0.0.1, 127.0.0.1");
    let three = raw.answer(true).await;
    assert_eq!(three.status, 200);
    assert!(three.header("content-length").is_some());

    // A request with a body goes to the hyper server with the connection, which then keeps serving.
    raw.send(b"POST /e/post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let posted = raw.answer(false).await;
    assert_eq!(posted.json()["method"], "POST");
    assert_eq!(posted.json()["body"], "hello");
    raw.send(b"GET /e/after HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(raw.answer(false).await.json()["path"], "/after");
    // So does a chunked one, on a connection that began with bodiless requests.
    let mut raw = Raw::connect(&dp).await;
    raw.send(b"GET /e/first HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(raw.answer(false).await.json()["path"], "/first");
    raw.send(
        b"PUT /e/chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw.answer(false).await.json()["body"], "abcde");

    // HTTP/1.0: closed after the answer unless the client asks to keep it.
    let mut raw = Raw::connect(&dp).await;
    raw.send(b"GET /e/old HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let old = raw.answer(false).await;
    assert_eq!(old.json()["path"], "/old");
    assert_eq!(old.header("connection"), Some("close"));
    assert!(raw.closed().await);
    let mut raw = Raw::connect(&dp).await;
    for path in ["/e/kept", "/e/again"] {
        raw.send(
            format!("GET {path} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        )
        .await;
        let kept = raw.answer(false).await;
        assert_eq!(kept.header("connection"), Some("keep-alive"));
        assert_eq!(kept.json()["path"], &path[2..]);
    }

    // HTTP/1.1 with Connection: close.
    let mut raw = Raw::connect(&dp).await;
    raw.send(b"GET /e/bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(raw.answer(false).await.header("connection"), Some("close"));
    assert!(raw.closed().await);

    // Broken heads: 400 or 431, then the connection ends.
    for (head, status) in [
        (
            "GET /e HTTP/1.1\r\nbad header line\r\n\r\n".to_string(),
            400,
        ),
        (
            "GET /e HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n".into(),
            400,
        ),
        (
            format!("GET /e HTTP/1.1\r\nx-big: {}\r\n\r\n", "a".repeat(70_000)),
            431,
        ),
    ] {
        let mut raw = Raw::connect(&dp).await;
        raw.send(head.as_bytes()).await;
        let refused = raw.answer(false).await;
        assert_eq!(refused.status, status);
        assert!(raw.closed().await);
    }
    // Unmatched requests still get the node's own answers on this path.
    let mut raw = Raw::connect(&dp).await;
    raw.send(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let missing = raw.answer(false).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no Route matched"));
}
