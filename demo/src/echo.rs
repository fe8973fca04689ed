//! A recording echo upstream: answers every request with a JSON description of what it received (like
//! httpbin's `/anything`), plus `/delay/{ms}`, `/bytes/{n}` (streamed) and `/status/{code}`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The running upstream.
pub struct EchoUpstream {
    pub url: String,
    pub host: String,
    pub port: u16,
    requests: Arc<AtomicU64>,
}

impl EchoUpstream {
    /// Starts on an ephemeral port.
    pub async fn start() -> EchoUpstream {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await
    }

    /// Starts on `listener`.
    pub async fn start_on(listener: TcpListener) -> EchoUpstream {
        let addr = listener.local_addr().expect("bound");
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        handle(req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        EchoUpstream {
            url: format!("http://{addr}"),
            host: addr.ip().to_string(),
            port: addr.port(),
            requests,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(ms) = path
        .strip_prefix("/delay/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        // Streams n bytes in 64 KiB chunks without holding them in memory.
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures::stream::unfold(n, move |left| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let take = left.min(chunk.len() as u64);
                Some((
                    Ok::<_, Infallible>(Frame::data(chunk.slice(..take as usize))),
                    left - take,
                ))
            }
        });
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut().insert("content-length", n.into());
        return Ok(r);
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    let mut headers = Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_string(),
            Value::String(v.to_str().unwrap_or("").to_string()),
        );
    }
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    // Count the body without keeping it, so large uploads stay within bounded memory; keep small ones.
    let mut body = req.into_body();
    let mut len = 0u64;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if kept.len() < 64 * 1024 {
                kept.extend_from_slice(&data);
            }
        }
    }
    let echo = json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": len,
        "body": if len <= 64 * 1024 { Value::String(String::from_utf8_lossy(&kept).to_string()) } else { Value::Null },
    });
    let mut r = Response::new(full(serde_json::to_vec(&echo).unwrap()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("connection", "keep-alive, x-upstream-hop".parse().unwrap());
    r.headers_mut()
        .insert("x-upstream-hop", "must-not-reach-client".parse().unwrap());
    Ok(r)
}
