//! A server that accepts connections, reads what is sent and never answers: an identity provider that
//! hangs. It counts the connections it accepted, so tests can show how many attempts a client made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The running server; stops (and drops every held connection) when dropped.
pub struct SilentServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl SilentServer {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                }));
            }
        });
        SilentServer {
            url,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
