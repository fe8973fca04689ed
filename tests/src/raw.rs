//! HTTP/1.1 on raw sockets, for tests of message framing: a client that sends exact bytes and reads
//! answers the way the RFC frames them, and an upstream that records exactly what reached it and
//! answers with exact bytes. Neither normalises anything, so a test sees what crossed the wire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long one read may wait.
const READ_PATIENCE: Duration = Duration::from_secs(10);

/// Reads more of `tcp` into `buf`; false at the end of the stream (a reset counts as the end). Panics
/// when nothing arrives within [`READ_PATIENCE`].
async fn fill(tcp: &mut TcpStream, buf: &mut Vec<u8>, what: &str) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    let n = crate::within(READ_PATIENCE, what, tcp.read(&mut chunk))
        .await
        .unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n > 0
}

/// A header field list with lower-case names.
pub type Fields = Vec<(String, String)>;

/// The value of the first field `name` (lower case).
pub fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// How many fields `name` (lower case) there are.
pub fn count(fields: &Fields, name: &str) -> usize {
    fields.iter().filter(|(n, _)| n == name).count()
}

/// A message head at the front of `buf`, removed from it: the start line and the fields.
fn take_head(buf: &mut Vec<u8>) -> Option<(String, Fields)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((start, fields))
}

/// The outcome of reading a chunked body from the front of `buf`.
enum Chunks {
    Done(Vec<u8>),
    More,
    Broken,
}

/// Decodes a complete chunked body at the front of `buf` (removing it), trailers skipped.
fn take_chunked(buf: &mut Vec<u8>) -> Chunks {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Chunks::More;
        };
        let line = String::from_utf8_lossy(&buf[at..at + eol]).into_owned();
        let size = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return Chunks::Broken;
        };
        at += eol + 2;
        if size == 0 {
            // Trailer fields up to an empty line.
            loop {
                let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Chunks::More;
                };
                at += eol + 2;
                if eol == 0 {
                    buf.drain(..at);
                    return Chunks::Done(body);
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Chunks::More;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// An answer read by [`RawClient`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub fields: Fields,
    pub body: Vec<u8>,
    /// Whether the body ended as its framing says (false: the connection ended first).
    pub complete: bool,
}

impl RawResponse {
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that sends bytes as they are given.
pub struct RawClient {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: &str) -> RawClient {
        let addr = addr.trim_start_matches("http://");
        let tcp = crate::within(READ_PATIENCE, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawClient {
            tcp,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The peer may already have refused and closed; what it answered is still read afterwards.
        let _ = self.tcp.write_all(bytes).await;
    }

    /// Ends the sending side: the server reads the end of the stream.
    pub async fn finish_sending(&mut self) {
        let _ = self.tcp.shutdown().await;
    }

    /// The next answer (interim 1xx answers included, each on its own); `None` when the connection
    /// ends before an answer head. `head_request`: the answer has no body whatever its fields say.
    pub async fn response(&mut self, head_request: bool) -> Option<RawResponse> {
        let (start, fields) = loop {
            if let Some(head) = take_head(&mut self.buf) {
                break head;
            }
            if !fill(&mut self.tcp, &mut self.buf, "an answer head").await {
                return None;
            }
        };
        let status: u16 = start.split(' ').nth(1)?.parse().ok()?;
        let mut resp = RawResponse {
            status,
            fields,
            body: Vec::new(),
            complete: true,
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Some(resp);
        }
        let chunked = resp
            .field("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: Option<usize> = resp.field("content-length").and_then(|v| v.parse().ok());
        loop {
            match (chunked, length) {
                (true, _) => match take_chunked(&mut self.buf) {
                    Chunks::Done(body) => {
                        resp.body = body;
                        return Some(resp);
                    }
                    Chunks::Broken => {
                        resp.complete = false;
                        return Some(resp);
                    }
                    Chunks::More => {}
                },
                (false, Some(n)) if self.buf.len() >= n => {
                    resp.body = self.buf.drain(..n).collect();
                    return Some(resp);
                }
                _ => {}
            }
            if !fill(&mut self.tcp, &mut self.buf, "an answer body").await {
                resp.complete = length.is_none() && !chunked;
                resp.body = std::mem::take(&mut self.buf);
                return Some(resp);
            }
        }
    }

    /// The next final answer, interim ones skipped.
    pub async fn final_response(&mut self, head_request: bool) -> Option<RawResponse> {
        loop {
            let resp = self.response(head_request).await?;
            if resp.status >= 200 {
                return Some(resp);
            }
        }
    }

    /// Whether the server ends the connection without sending anything more.
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty()
            && !fill(&mut self.tcp, &mut self.buf, "the end of the connection").await
    }
}

/// A request as it reached a [`RawUpstream`].
#[derive(Debug, Clone)]
pub struct Received {
    /// Which of the upstream's connections (0, 1, …) carried it.
    pub connection: usize,
    pub method: String,
    pub target: String,
    pub fields: Fields,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
    /// False when the connection ended (or the framing broke) before the body was complete.
    pub complete: bool,
}

impl Received {
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }
}

/// What a [`RawUpstream`] answers, byte for byte; `close` ends the connection after it.
pub struct RawAnswer {
    pub bytes: Vec<u8>,
    pub close: bool,
}

type AnswerFn = dyn Fn(&Received) -> RawAnswer + Send + Sync;

/// An upstream that records each request and answers with bytes chosen per request.
pub struct RawUpstream {
    pub port: u16,
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    ended_by_peer: Arc<AtomicUsize>,
}

impl RawUpstream {
    pub async fn start(
        answer: impl Fn(&Received) -> RawAnswer + Send + Sync + 'static,
    ) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let answer: Arc<AnswerFn> = Arc::new(answer);
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let ended_by_peer = Arc::new(AtomicUsize::new(0));
        let (rec, conns, ended) = (received.clone(), connections.clone(), ended_by_peer.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let id = conns.fetch_add(1, Ordering::SeqCst);
                let (rec, ended, answer) = (rec.clone(), ended.clone(), answer.clone());
                tokio::spawn(async move {
                    if serve(tcp, id, &rec, answer.as_ref()).await {
                        ended.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        RawUpstream {
            port,
            url: format!("http://127.0.0.1:{port}"),
            received,
            connections,
            ended_by_peer,
        }
    }

    /// Every request received so far, complete or not.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections the proxy ended (rather than the upstream, after an answer with `close`).
    pub fn ended_by_peer(&self) -> usize {
        self.ended_by_peer.load(Ordering::SeqCst)
    }
}

/// Serves one connection; true when the peer ended it.
async fn serve(
    mut tcp: TcpStream,
    id: usize,
    rec: &Mutex<Vec<Received>>,
    answer: &AnswerFn,
) -> bool {
    let mut buf = Vec::new();
    loop {
        let (start, fields) = loop {
            if let Some(head) = take_head(&mut buf) {
                break head;
            }
            if !read_some(&mut tcp, &mut buf).await {
                return true;
            }
        };
        let mut parts = start.split(' ');
        let mut req = Received {
            connection: id,
            method: parts.next().unwrap_or_default().to_string(),
            target: parts.next().unwrap_or_default().to_string(),
            fields,
            body: Vec::new(),
            complete: true,
        };
        let chunked = req
            .field("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: usize = req
            .field("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let ended = loop {
            if chunked {
                match take_chunked(&mut buf) {
                    Chunks::Done(body) => {
                        req.body = body;
                        break false;
                    }
                    Chunks::Broken => break true,
                    Chunks::More => {}
                }
            } else if buf.len() >= length {
                req.body = buf.drain(..length).collect();
                break false;
            }
            if !read_some(&mut tcp, &mut buf).await {
                break true;
            }
        };
        if ended {
            req.complete = false;
            req.body = std::mem::take(&mut buf);
            rec.lock().expect("received").push(req);
            return true;
        }
        let reply = answer(&req);
        rec.lock().expect("received").push(req);
        if tcp.write_all(&reply.bytes).await.is_err() {
            return true;
        }
        if reply.close {
            let _ = tcp.shutdown().await;
            return false;
        }
    }
}

/// Reads more; false when the connection ended (or stayed silent for a minute).
async fn read_some(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}
