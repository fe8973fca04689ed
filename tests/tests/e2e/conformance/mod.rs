//! RFC 9112 conformance of the proxy's HTTP/1.1 framing, over raw sockets on both sides: a client that
//! sends exact bytes, and a recording upstream that answers with exact bytes. Each module is a table
//! of cases written from the RFC; every case says what the client gets and what the upstream receives,
//! and runs on each path a message can take:
//! - `requests`: request framing, on a connection the node serves itself and on one already handed to
//!   hyper's server (after a request with a body); bodiless requests go upstream in the request's own
//!   task, the others through the pooled client;
//! - `responses`: response framing, for a bodiless request (the in-task upstream exchange) and for a
//!   request with a body (the pooled client);
//! - `hosts`: which host, and so which Route and plugins, a request is for.
//!
//! ADR 16 holds the same rules as one table.

mod hosts;
mod requests;
mod responses;

use serde_json::json;
use tests::raw::{RawAnswer, RawClient, RawResponse, RawUpstream, Received};
use tests::{ControlPlane, DataPlane};

/// A node proxying every path to a raw upstream.
struct Env {
    _cp: ControlPlane,
    dp: DataPlane,
    up: RawUpstream,
}

impl Env {
    async fn start(answer: impl Fn(&Received) -> RawAnswer + Send + Sync + 'static) -> Env {
        let cp = ControlPlane::start().await;
        let dp = DataPlane::start(&cp).await;
        let up = RawUpstream::start(answer).await;
        cp.post("/services", json!({"name": "raw", "url": up.url}))
            .await;
        cp.post("/services/raw/routes", json!({"paths": ["/"]}))
            .await;
        dp.wait_version(cp.version().await).await;
        Env { _cp: cp, dp, up }
    }

    async fn client(&self) -> RawClient {
        RawClient::connect(&self.dp.proxy_url).await
    }

    /// A client whose connection the node has already handed to hyper's server: its first request had
    /// a body.
    async fn handed_off_client(&self) -> RawClient {
        let mut c = self.client().await;
        c.send(b"POST /warm HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n\r\nx")
            .await;
        let warm = c.final_response(false).await.expect("an answer");
        assert_eq!(warm.status, 200, "{warm:?}");
        c
    }
}

/// The plain answer of the upstream to `req` (without its body to a HEAD request).
fn ok(req: &Received) -> RawAnswer {
    let bytes: &[u8] = match req.method.as_str() {
        "HEAD" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    };
    RawAnswer {
        bytes: bytes.to_vec(),
        close: false,
    }
}

/// Whether the answer is the upstream's plain one.
fn is_ok(resp: &RawResponse) -> bool {
    resp.status == 200 && resp.body == b"ok"
}
