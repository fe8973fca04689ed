//! The incremental-sync benchmark: one control plane and N nodes in this process, 10,000 routes loaded,
//! then one-route writes measured twice in the same run, once with every node on full snapshots
//! (`--sync-features none`, the behaviour before deltas) and once with deltas (the default). Prints a
//! Markdown table; figures come from the nodes' own reports (`sync.last_*` in the node view) and from the
//! control plane's time stamp of each ACK (`sync.last_acked_at_ms`), against the time the write was sent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Settings of the sync benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Nodes per mode.
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// Routes loaded before measuring.
    #[arg(long, default_value_t = 10_000)]
    pub routes: usize,
    /// One-route writes measured per mode.
    #[arg(long, default_value_t = 30)]
    pub writes: usize,
    /// Where the control plane's store and the nodes' data dirs go (default: the system temp dir). The
    /// nodes of one process share its disk, so their journal syncs queue behind each other; a tmpfs shows
    /// the protocol without that.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Seconds of proxy latency measured idle and again while one-route writes land every 100 ms.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

pub(crate) async fn get(url: &str) -> Result<Value> {
    Ok(http().get(url).send().await?.json().await?)
}

pub(crate) async fn post(url: &str, body: Value) -> Result<Value> {
    let r = http().post(url).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {v}");
    }
    Ok(v)
}

pub(crate) struct Cp {
    pub(crate) admin: String,
    /// The operator console.
    pub(crate) console: String,
    pub(crate) cluster: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_cp(dir: &Path) -> Result<Cp> {
    start_cp_with(dir, |c| c).await
}

/// A control plane in this process with its data in `dir/cp`, its settings adjusted by `adjust`.
pub(crate) async fn start_cp_with(
    dir: &Path,
    adjust: impl FnOnce(control_plane::Config) -> control_plane::Config,
) -> Result<Cp> {
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cluster = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let manager = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let console = format!("http://{}", manager.local_addr()?);
    let (admin_url, cluster_addr) = (
        format!("http://{}", admin.local_addr()?),
        cluster.local_addr()?.to_string(),
    );
    let config = adjust(control_plane::Config {
        data_dir: dir.join("cp"),
        admin_listen: admin.local_addr()?,
        cluster_listen: cluster.local_addr()?,
        ..control_plane::Config::defaults()
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(control_plane::run(
        config,
        control_plane::Listeners {
            admin,
            cluster,
            manager: Some(manager),
        },
        async move {
            let _ = rx.await;
        },
    ));
    for _ in 0..500 {
        if get(&format!("{admin_url}/status")).await.is_ok() {
            return Ok(Cp {
                admin: admin_url,
                console,
                cluster: cluster_addr,
                _stop: tx,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the control plane did not answer")
}

pub(crate) async fn start_nodes(
    cp: &Cp,
    dir: &Path,
    prefix: &str,
    n: usize,
    features: &[&str],
) -> Result<Vec<Node>> {
    let token = post(
        &format!("{}/clustering/pairing-tokens", cp.admin),
        json!({"ttl": 3600, "max_uses": n}),
    )
    .await?["token"]
        .as_str()
        .context("no token")?
        .to_string();
    let mut nodes = Vec::new();
    for i in 0..n {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let proxy_addr = proxy.local_addr()?;
        let status = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = data_plane::Config {
            data_dir: dir.join(format!("{prefix}{i}")),
            control_plane: Some(cp.cluster.clone()),
            pairing_token: Some(token.clone()),
            proxy_listen: proxy.local_addr()?,
            status_listen: status.local_addr()?,
            node_name: Some(format!("{prefix}{i}")),
            log_format: data_plane::LogFormat::Json,
            sync_features: features.iter().map(|f| f.to_string()).collect(),
            ..data_plane::Config::defaults()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        nodes.push(Node {
            proxy: proxy_addr,
            _stop: tx,
        });
        tokio::spawn(data_plane::run(
            config,
            data_plane::Listeners {
                proxy,
                proxy_tls: None,
                status,
            },
            async move {
                let _ = rx.await;
            },
        ));
    }
    Ok(nodes)
}

/// A node running in this process; it stops when dropped.
pub(crate) struct Node {
    proxy: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The nodes named `prefix…` once all of them run `version`.
pub(crate) async fn wait_all(
    cp: &Cp,
    prefix: &str,
    n: usize,
    version: u64,
    patience: Duration,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + patience;
    loop {
        let view = get(&format!("{}/clustering/data-planes", cp.admin)).await?;
        let nodes: Vec<Value> = view["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|x| {
                x["hostname"]
                    .as_str()
                    .is_some_and(|h| h.starts_with(prefix))
            })
            .collect();
        if nodes.len() == n
            && nodes
                .iter()
                .all(|x| x["config_version"].as_u64() >= Some(version))
        {
            return Ok(nodes);
        }
        if Instant::now() > deadline {
            bail!("{n} nodes {prefix}* did not reach version {version}");
        }
        // Polling is not the measurement (the control plane stamps each ACK), so it stays light.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Mode {
    name: &'static str,
    bytes_per_write: Vec<f64>,
    apply_us: Vec<f64>,
    cpu_us: Vec<f64>,
    acked_ms: Vec<f64>,
    first_bytes: f64,
    first_apply_us: f64,
}

async fn measure(
    cp: &Cp,
    dir: &Path,
    s: &Settings,
    name: &'static str,
    features: &[&str],
) -> Result<Mode> {
    let prefix = format!("{name}-");
    let version = get(&format!("{}/status", cp.admin)).await?["config_version"]
        .as_u64()
        .unwrap_or(0);
    let nodes_running = start_nodes(cp, dir, &prefix, s.nodes, features).await?;
    let first = wait_all(cp, &prefix, s.nodes, version, Duration::from_secs(600)).await?;
    let field = |nodes: &[Value], f: &str| -> Vec<f64> {
        nodes.iter().filter_map(|x| x["sync"][f].as_f64()).collect()
    };
    let mut mode = Mode {
        name,
        bytes_per_write: Vec::new(),
        apply_us: Vec::new(),
        cpu_us: Vec::new(),
        acked_ms: Vec::new(),
        first_bytes: field(&first, "last_received_bytes")
            .into_iter()
            .fold(0.0, f64::max),
        first_apply_us: median(field(&first, "last_apply_micros")),
    };
    for w in 0..s.writes {
        let started_ms = unix_ms();
        post(
            &format!("{}/services/up/routes", cp.admin),
            json!({"name": format!("{name}-w{w}"), "paths": [format!("/{name}/w{w}")]}),
        )
        .await?;
        let version = get(&format!("{}/status", cp.admin)).await?["config_version"]
            .as_u64()
            .unwrap_or(0);
        let nodes = wait_all(cp, &prefix, s.nodes, version, Duration::from_secs(120)).await?;
        let last_ack = field(&nodes, "last_acked_at_ms")
            .into_iter()
            .fold(0.0, f64::max);
        mode.acked_ms.push(last_ack - started_ms);
        mode.bytes_per_write
            .extend(field(&nodes, "last_received_bytes"));
        mode.apply_us.extend(field(&nodes, "last_apply_micros"));
        mode.cpu_us.extend(field(&nodes, "last_apply_cpu_micros"));
    }
    drop(nodes_running);
    Ok(mode)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Runs the benchmark and prints the report.
pub async fn run(s: Settings) -> Result<()> {
    let dir = match &s.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let upstream_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    tokio::spawn(crate::upstream::serve(upstream_port));
    let upstream = format!("http://127.0.0.1:{upstream_port}");
    let cp = start_cp(dir.path()).await?;
    let routes: Vec<Value> = (0..s.routes)
        .map(|i| json!({"name": format!("r{i}"), "paths": [format!("/r/{i}")]}))
        .collect();
    let t0 = Instant::now();
    post(
        &format!("{}/config", cp.admin),
        json!({"_format_version": "3.0", "services": [{"name": "up", "url": upstream, "routes": routes}]}),
    )
    .await?;
    println!(
        "loaded {} routes in {:.0} ms",
        s.routes,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    // First, while no other node shares the process.
    let latency = proxy_latency(&cp, dir.path(), &s).await?;
    let mut modes = Vec::new();
    for (name, features) in [("full", &["none"][..]), ("delta", &["delta", "zstd"][..])] {
        let m = measure(&cp, dir.path(), &s, name, features).await?;
        println!("{name}: done");
        modes.push(m);
    }
    // Admin write throughput: sequential one-route writes for 3 s, no node connected.
    let t0 = Instant::now();
    let mut writes = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        post(
            &format!("{}/services/up/routes", cp.admin),
            json!({"paths": [format!("/tp/{writes}")]}),
        )
        .await?;
        writes += 1;
    }
    let writes_per_s = writes as f64 / t0.elapsed().as_secs_f64();
    println!(
        "\n{} routes, {} nodes per mode, {} one-route writes per mode; admin writes/s (sequential, sled): {writes_per_s:.0}\n",
        s.routes, s.nodes, s.writes
    );
    println!("| mode | first sync bytes/node | first sync apply (median) | bytes/node per write (median) | apply per write p50 / p99 (wall) | apply per write p50 / p99 (CPU) | write → all ACKed p50 / p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &modes {
        let mut b = m.bytes_per_write.clone();
        b.sort_by(f64::total_cmp);
        let mut a = m.apply_us.clone();
        a.sort_by(f64::total_cmp);
        let mut c = m.cpu_us.clone();
        c.sort_by(f64::total_cmp);
        let mut l = m.acked_ms.clone();
        l.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.0} B | {:.1} ms | {:.0} B | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.1} / {:.1} ms |",
            m.name,
            m.first_bytes,
            m.first_apply_us / 1000.0,
            percentile(&b, 0.5),
            percentile(&a, 0.5) / 1000.0,
            percentile(&a, 0.99) / 1000.0,
            percentile(&c, 0.5) / 1000.0,
            percentile(&c, 0.99) / 1000.0,
            percentile(&l, 0.5),
            percentile(&l, 0.99)
        );
    }
    println!("\nProxy latency on one delta node ({} routes; one client, sequential keep-alive GETs, {} s each):\n", s.routes, s.latency_seconds);
    println!("| | requests | p50 | p99 | max |\n|---|---:|---:|---:|---:|");
    for (name, mut v) in latency {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms |",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// Proxy latency on a fresh delta node: idle, then while one-route writes land every 100 ms.
async fn proxy_latency(cp: &Cp, dir: &Path, s: &Settings) -> Result<Vec<(&'static str, Vec<f64>)>> {
    let version = get(&format!("{}/status", cp.admin)).await?["config_version"]
        .as_u64()
        .unwrap_or(0);
    let probe = start_nodes(cp, dir, "probe-", 1, &["delta", "zstd"]).await?;
    let proxy_url = format!("http://{}/r/5000", probe[0].proxy);
    wait_all(cp, "probe-", 1, version, Duration::from_secs(120)).await?;
    let client = reqwest::Client::new();
    let sample = |client: reqwest::Client, url: String, secs: u64| async move {
        let mut out = Vec::new();
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let t0 = Instant::now();
            let r = client.get(&url).send().await?;
            let ok = r.status().is_success();
            r.bytes().await?;
            if !ok {
                bail!("the probe request failed");
            }
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        Ok::<_, anyhow::Error>(out)
    };
    sample(client.clone(), proxy_url.clone(), 1).await?;
    let idle = sample(client.clone(), proxy_url.clone(), s.latency_seconds).await?;
    let during = tokio::spawn(sample(client, proxy_url, s.latency_seconds));
    let admin = cp.admin.clone();
    let mut w = 0;
    while !during.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(
            &format!("{admin}/services/up/routes"),
            json!({"paths": [format!("/lat/{w}")]}),
        )
        .await?;
        w += 1;
    }
    let during = during.await??;
    Ok(vec![
        ("idle", idle),
        ("one-route write every 100 ms", during),
    ])
}
