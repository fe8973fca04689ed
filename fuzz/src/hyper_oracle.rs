//! hyper's reading of the same bytes, as the oracle of the HTTP/1 fuzz targets: its server reads a
//! request from them, its client reads a response. Both run over an in-memory stream that ends after
//! the bytes, on a current-thread runtime.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

/// How hyper's server read the first request of the bytes.
#[derive(Debug)]
pub enum ServerRead {
    /// No request reached the service: refused, or the bytes ended first.
    NoRequest,
    Request {
        method: String,
        target: String,
        /// The length its framing gave the body when exact (`Content-Length`, or none).
        exact_len: Option<u64>,
        /// The body as read to the end of the bytes; `Err` when its framing broke.
        body: Result<Vec<u8>, ()>,
        /// A CONNECT or an upgrade, which hyper frames in its own way.
        tunnel: bool,
    },
}

/// How hyper's client read the answer to a GET (or HEAD) request.
#[derive(Debug)]
pub enum ClientRead {
    /// No response: an invalid head, or the bytes ended first (hyper's error).
    Failed(String),
    Response {
        status: u16,
        body: Result<Vec<u8>, ()>,
    },
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The first request hyper's HTTP/1 server reads from `bytes`.
pub fn server_reads(bytes: &[u8]) -> ServerRead {
    let seen: Arc<Mutex<Option<ServerRead>>> = Arc::new(Mutex::new(None));
    let record = seen.clone();
    runtime().block_on(async move {
        let (mut client, server) = tokio::io::duplex(bytes.len() + 64 * 1024);
        client.write_all(bytes).await.expect("room for the bytes");
        client.shutdown().await.expect("shutdown");
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let record = record.clone();
            async move {
                let tunnel = req.method() == hyper::Method::CONNECT
                    || req.headers().contains_key(hyper::header::UPGRADE);
                let method = req.method().to_string();
                let target = req.uri().to_string();
                let exact_len = req.body().size_hint().exact();
                let body = match tunnel {
                    true => Ok(Vec::new()),
                    false => req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes().to_vec())
                        .map_err(|_| ()),
                };
                let mut first = record.lock().expect("record");
                if first.is_none() {
                    *first = Some(ServerRead::Request {
                        method,
                        target,
                        exact_len,
                        body,
                        tunnel,
                    });
                }
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
            }
        });
        // The bytes end in a half-close; hyper still serves what came before it, as over a socket.
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), svc);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        drop(client);
    });
    let read = seen.lock().expect("record").take();
    read.unwrap_or(ServerRead::NoRequest)
}

/// How hyper's HTTP/1 client reads `bytes` as the answer to a GET (or HEAD when `head_request`).
pub fn client_reads(bytes: &[u8], head_request: bool) -> ClientRead {
    runtime().block_on(async move {
        let (client, mut server) = tokio::io::duplex(bytes.len() + 64 * 1024);
        // The upstream answers once the request head has arrived, as a server does: bytes that come
        // before a request are a different case (hyper's client drops such a connection).
        let answer = bytes.to_vec();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::io::AsyncReadExt::read(&mut server, &mut chunk).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let _ = server.write_all(&answer).await;
            let _ = server.shutdown().await;
            // Kept open for reading until the client is done.
            let _ = tokio::io::AsyncReadExt::read(&mut server, &mut chunk).await;
        });
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(client)).await
        else {
            return ClientRead::Failed("handshake".into());
        };
        tokio::spawn(conn);
        let method = match head_request {
            true => hyper::Method::HEAD,
            false => hyper::Method::GET,
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri("/")
            .header("host", "upstream")
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let read = async {
            let resp = match sender.send_request(req).await {
                Ok(resp) => resp,
                Err(e) => return ClientRead::Failed(format!("{e:?}")),
            };
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .map_err(|_| ());
            ClientRead::Response { status, body }
        };
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
        read.unwrap_or_else(|_| ClientRead::Failed("timed out".into()))
    })
}
