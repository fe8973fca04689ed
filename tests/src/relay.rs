//! A TCP relay between a node and its control plane that can cut the path without closing anything, as
//! a network partition does: while cut, bytes are neither forwarded nor refused, and new connections are
//! accepted and left hanging. Healing forwards again; what was sent meanwhile arrives late, as TCP
//! retransmission would deliver it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running relay; stops when dropped.
pub struct Relay {
    /// `127.0.0.1:<port>` to dial instead of the target.
    pub addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Relays connections on an ephemeral loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let cut = Arc::new(watch::channel(false).0);
        let state = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = state.subscribe();
                tokio::spawn(async move {
                    wait_healed(rx.clone()).await;
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pump(cr, sw, rx.clone()) => {}
                        _ = pump(sr, cw, rx) => {}
                    }
                });
            }
        });
        Relay { addr, cut, task }
    }

    /// Cuts the path (`true`) or heals it (`false`).
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_healed(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|cut| !*cut).await;
}

/// Copies `from` to `to`, holding every chunk while the path is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rx: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        wait_healed(rx.clone()).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_healed(rx.clone()).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
