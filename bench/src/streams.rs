//! gRPC unary calls/s and WebSocket message round trips/s through a Portcullis node against the same
//! calls made directly to the upstreams, interleaved in one run. The upstreams (the tests' gRPC echo
//! service and WebSocket echo server) and the clients run in this process; the node and its control
//! plane are started by `bench/streams.sh`, which pins them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tests::grpc::proto::echo_client::EchoClient;
use tests::grpc::proto::Msg;
use tokio_tungstenite::tungstenite::Message;

/// What to run against.
#[derive(clap::Args)]
pub struct Settings {
    /// The control plane's Admin API (the Services and Routes are created there).
    #[arg(long)]
    pub admin: String,
    /// The node's plain proxy listener, `host:port`.
    #[arg(long)]
    pub proxy: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Measurements per column (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Calls in flight (gRPC, on one HTTP/2 connection) and WebSocket connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

fn msg(text: &str) -> Msg {
    Msg {
        text: text.into(),
        count: 0,
        delay_ms: 0,
    }
}

/// Unary calls/s to `addr` with `concurrency` calls in flight on one channel.
async fn grpc_rate(addr: &str, concurrency: usize, secs: u64) -> anyhow::Result<f64> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut c = EchoClient::new(channel.clone());
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    c.unary(msg("ping")).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Round trips/s (a 32-byte text message and its echo) over `concurrency` WebSocket connections to
/// `url`.
async fn ws_rate(url: &str, concurrency: usize, secs: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::new();
    for _ in 0..concurrency {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        sockets.push(ws);
    }
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let done = done.clone();
            tokio::spawn(async move {
                let text = "x".repeat(32);
                while Instant::now() < until {
                    ws.send(Message::text(text.clone())).await?;
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => {}
                        other => anyhow::bail!("unexpected {other:?}"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Creates the Services and Routes, waits until the node routes both, measures, prints a table.
pub async fn run(s: Settings) -> anyhow::Result<()> {
    let grpc_port = tests::grpc::serve(None).await;
    let ws_port = tests::ws::echo_server().await;
    let admin = reqwest::Client::new();
    let post = |path: &'static str, body: serde_json::Value| {
        let req = admin.post(format!("{}{path}", s.admin)).json(&body);
        async move {
            let resp = req.send().await?;
            if !resp.status().is_success() {
                bail!("POST {path}: {} {}", resp.status(), resp.text().await?);
            }
            Ok(())
        }
    };
    post(
        "/services",
        json!({"name": "grpc-echo", "url": format!("grpc://127.0.0.1:{grpc_port}")}),
    )
    .await?;
    post(
        "/services/grpc-echo/routes",
        json!({"protocols": ["grpc"], "paths": ["/portcullis.test.echo.Echo/"]}),
    )
    .await?;
    post(
        "/services",
        json!({"name": "ws-echo", "url": format!("ws://127.0.0.1:{ws_port}")}),
    )
    .await?;
    post(
        "/services/ws-echo/routes",
        json!({"protocols": ["ws"], "paths": ["/chat"]}),
    )
    .await?;
    let ws_proxy = format!("ws://{}/chat", s.proxy);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let grpc_ok = async {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", s.proxy))?
                .connect()
                .await?;
            EchoClient::new(ch).unary(msg("ready?")).await?;
            anyhow::Ok(())
        }
        .await
        .is_ok();
        let ws_ok = tokio_tungstenite::connect_async(&ws_proxy).await.is_ok();
        if grpc_ok && ws_ok {
            break;
        }
        if Instant::now() > deadline {
            bail!("the node did not route the gRPC and WebSocket Services within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grpc_direct = format!("127.0.0.1:{grpc_port}");
    let ws_direct = format!("ws://127.0.0.1:{ws_port}/chat");
    let (mut gd, mut gp, mut wd, mut wp) = (vec![], vec![], vec![], vec![]);
    for _ in 0..s.runs {
        gd.push(
            grpc_rate(&grpc_direct, s.concurrency, s.seconds)
                .await
                .context("gRPC direct")?,
        );
        gp.push(
            grpc_rate(&s.proxy, s.concurrency, s.seconds)
                .await
                .context("gRPC through the node")?,
        );
        wd.push(
            ws_rate(&ws_direct, s.concurrency, s.seconds)
                .await
                .context("WebSocket direct")?,
        );
        wp.push(
            ws_rate(&ws_proxy, s.concurrency, s.seconds)
                .await
                .context("WebSocket through the node")?,
        );
    }
    let (gd, gp, wd, wp) = (median(gd), median(gp), median(wd), median(wp));
    println!("| measurement | per second | ratio to direct |");
    println!("|---|---:|---:|");
    println!("| gRPC unary calls, direct | {gd:.0} | 1.00× |");
    println!(
        "| gRPC unary calls, through Portcullis | {gp:.0} | {:.2}× |",
        gp / gd
    );
    println!("| WebSocket round trips, direct | {wd:.0} | 1.00× |");
    println!(
        "| WebSocket round trips, through Portcullis | {wp:.0} | {:.2}× |",
        wp / wd
    );
    Ok(())
}
