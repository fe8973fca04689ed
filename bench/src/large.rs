//! The large-cluster benchmark: one control plane (the release binary, its own process) and N simulated
//! nodes (`portcullis-bench nodes`, another process). Measures enrollment and connection of the nodes at
//! checkpoints (the control plane's RSS at each), the control plane's CPU while the nodes only send
//! heartbeats, one-route writes until every node has ACKed them (from the control plane's own ACK time
//! stamps in the node view), and a reconnect storm: the control plane killed and started again, until
//! every node is back. Prints a Markdown table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::sync::{get, post};

/// Settings of the large-cluster benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Nodes at the end; the control plane is also measured at 1,000 and at half.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Nodes the simulator starts per second.
    #[arg(long, default_value_t = 400.0)]
    pub ramp: f64,
    /// Routes in the configuration.
    #[arg(long, default_value_t = 1000)]
    pub routes: usize,
    /// One-route writes measured.
    #[arg(long, default_value_t = 10)]
    pub writes: usize,
    /// Seconds of idle CPU measured.
    #[arg(long, default_value_t = 30)]
    pub idle_seconds: u64,
    /// Milliseconds between a node's heartbeats, on the nodes and the control plane alike (the timeout is
    /// three times it).
    #[arg(long, default_value_t = 2000)]
    pub heartbeat_ms: u64,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct ControlPlaneProcess {
    child: Child,
    admin: String,
    cluster: String,
    args: Vec<String>,
    binary: PathBuf,
    log: PathBuf,
}

impl ControlPlaneProcess {
    fn start(binary: &Path, dir: &Path, heartbeat_ms: u64) -> Result<ControlPlaneProcess> {
        let (admin, cluster) = (free_port()?, free_port()?);
        let args = vec![
            "--heartbeat-interval-ms".to_string(),
            heartbeat_ms.to_string(),
            "--heartbeat-timeout-ms".to_string(),
            (heartbeat_ms * 3).to_string(),
            "--data-dir".into(),
            dir.join("cp").display().to_string(),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--cluster-listen".into(),
            format!("127.0.0.1:{cluster}"),
            "--manager-listen".into(),
            "off".into(),
        ];
        let log = dir.join("control-plane.log");
        let mut cp = ControlPlaneProcess {
            child: spawn_cp(binary, &args, &log)?,
            admin: format!("http://127.0.0.1:{admin}"),
            cluster: format!("127.0.0.1:{cluster}"),
            args,
            binary: binary.to_path_buf(),
            log,
        };
        cp.wait_up()?;
        Ok(cp)
    }

    fn wait_up(&mut self) -> Result<()> {
        for _ in 0..1000 {
            if probe::blocking_get_ok(&format!("{}/status", self.admin)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!(
            "the control plane did not answer; see {}",
            self.log.display()
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then the same command again.
    fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_cp(&self.binary, &self.args, &self.log)?;
        self.wait_up()
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_cp(binary: &Path, args: &[String], log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(binary)
        .args(args)
        .env("PORTCULLIS_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

mod probe {
    /// Whether a GET answers 200 (blocking, for start-up).
    pub fn blocking_get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            return false;
        };
        use std::io::{Read, Write};
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
    }
}

/// Resident and peak memory of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds a process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

async fn connected(cp: &ControlPlaneProcess) -> u64 {
    get(&format!("{}/status", cp.admin))
        .await
        .map(|s| s["data_planes"]["connected"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

async fn wait_connected(
    cp: &ControlPlaneProcess,
    n: usize,
    patience: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    while connected(cp).await < n as u64 {
        if started.elapsed() > patience {
            bail!(
                "{} of {n} nodes connected after {patience:?}",
                connected(cp).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(started.elapsed())
}

/// Runs the benchmark and prints its table.
pub async fn run(s: Settings) -> Result<()> {
    let me = std::env::current_exe()?;
    let bin_dir = me.parent().context("no binary dir")?;
    let dir = tempfile::tempdir()?;
    let mut cp =
        ControlPlaneProcess::start(&bin_dir.join("control-plane"), dir.path(), s.heartbeat_ms)?;
    let services: Vec<Value> = (0..s.routes.div_ceil(10))
        .map(|i| json!({"name": format!("svc-{i}"), "url": format!("http://backend-{i}.test:8080"),
            "routes": (0..10).filter(|j| i * 10 + j < s.routes)
                .map(|j| json!({"name": format!("r-{}", i * 10 + j), "paths": [format!("/api/{i}/{j}")]}))
                .collect::<Vec<_>>()}))
        .collect();
    post(
        &format!("{}/config", cp.admin),
        json!({"_format_version": "3.0", "services": services}),
    )
    .await?;
    let token = post(
        &format!("{}/clustering/pairing-tokens", cp.admin),
        json!({"ttl": 86400, "max_uses": s.nodes}),
    )
    .await?["token"]
        .as_str()
        .context("no token")?
        .to_string();
    let sim_log = dir.path().join("nodes.log");
    let mut sim = Command::new(&me)
        .args(["nodes", "--control-plane", &cp.cluster, "--token", &token])
        .args([
            "--nodes",
            &s.nodes.to_string(),
            "--ramp",
            &s.ramp.to_string(),
            "--heartbeat-ms",
            &s.heartbeat_ms.to_string(),
        ])
        .stdout(std::fs::File::create(&sim_log)?)
        .stderr(Stdio::null())
        .spawn()?;
    let idle_rss = memory_mib(cp.pid());
    println!("| Measure | Value |\n|---|---|");
    println!("| control plane RSS, no node | {:.1} MiB |", idle_rss.0);
    let started = Instant::now();
    let mut checkpoints = vec![1000.min(s.nodes), s.nodes / 2, s.nodes];
    checkpoints.sort_unstable();
    checkpoints.dedup();
    for n in checkpoints {
        let patience = Duration::from_secs_f64(n as f64 / s.ramp * 4.0 + 120.0);
        wait_connected(&cp, n, patience.saturating_sub(started.elapsed())).await?;
        let (rss, peak) = memory_mib(cp.pid());
        println!(
            "| {n} nodes enrolled and connected after | {:.1} s ({:.0} nodes/s); control plane RSS {rss:.1} MiB (peak {peak:.1}), {:.1} MiB per 1,000 streams |",
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64(),
            (rss - idle_rss.0) / n as f64 * 1000.0
        );
    }
    // The node view, a page of 1,000 at a time.
    let mut pages = Vec::new();
    for offset in (0..s.nodes).step_by(1000) {
        let t = Instant::now();
        let page = get(&format!(
            "{}/clustering/data-planes?size=1000&offset={offset}",
            cp.admin
        ))
        .await?;
        pages.push(t.elapsed());
        if page["data"].as_array().map(Vec::len) != Some(1000.min(s.nodes - offset)) {
            bail!("page at {offset} is not full");
        }
    }
    pages.sort();
    println!(
        "| node view, pages of 1,000 ({} pages) | median {:.1} ms, slowest {:.1} ms |",
        pages.len(),
        pages[pages.len() / 2].as_secs_f64() * 1000.0,
        pages[pages.len() - 1].as_secs_f64() * 1000.0
    );
    // Idle: only heartbeats (and the node-status bookkeeping).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu0, t0) = (cpu_seconds(cp.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(s.idle_seconds)).await;
    let idle = (cpu_seconds(cp.pid()) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "| control plane CPU, {} nodes idle (heartbeats) | {idle:.1}% of one core |",
        s.nodes
    );
    // One-route writes: from the request to the last node's ACK, stamped by the control plane.
    let mut latencies = Vec::new();
    for w in 0..s.writes {
        let sent_ms = platform::unix_ms();
        post(
            &format!("{}/services/svc-0/routes", cp.admin),
            json!({"name": format!("w-{w}"), "paths": [format!("/w/{w}")]}),
        )
        .await?;
        let version = get(&format!("{}/status", cp.admin)).await?["config_version"]
            .as_u64()
            .unwrap_or(0);
        let last_ack = all_acked(&cp, s.nodes, version).await?;
        latencies.push(last_ack.saturating_sub(sent_ms.max(0) as u64));
    }
    latencies.sort();
    println!(
        "| one-route write → all {} nodes ACKed ({} writes) | p50 {} ms, max {} ms |",
        s.nodes,
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // A reconnect storm: the control plane killed and started again.
    let killed = Instant::now();
    cp.restart()?;
    let back = wait_connected(&cp, s.nodes, Duration::from_secs(600)).await?;
    let (rss, peak) = memory_mib(cp.pid());
    println!(
        "| reconnect storm: control plane SIGKILLed and restarted → all {} nodes back | {:.1} s after the kill ({:.1} s after it answered); RSS {rss:.1} MiB (peak {peak:.1}) |",
        s.nodes,
        killed.elapsed().as_secs_f64(),
        back.as_secs_f64()
    );
    let _ = sim.kill();
    let _ = sim.wait();
    let tail: Vec<String> = std::fs::read_to_string(&sim_log)?
        .lines()
        .rev()
        .take(1)
        .map(str::to_string)
        .collect();
    println!("\nsimulator: {}", tail.join(""));
    Ok(())
}

/// When the last of `n` nodes ACKed `version` (Unix ms, the control plane's stamp), once all have.
async fn all_acked(cp: &ControlPlaneProcess, n: usize, version: u64) -> Result<u64> {
    let started = Instant::now();
    // The totals are cheap to poll; the node view (every node's record) is read once they say so.
    loop {
        let text = ::reqwest::get(format!("{}/metrics?per_node=false", cp.admin))
            .await?
            .text()
            .await?;
        let in_sync: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("portcullis_cp_data_planes{") && l.contains("sync_status=\"in_sync\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        let version_now =
            get(&format!("{}/status", cp.admin)).await?["published"]["version"].as_u64();
        if in_sync as usize >= n && version_now >= Some(version) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{in_sync} of {n} nodes in sync 60 s after version {version} was written");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let view = get(&format!("{}/clustering/data-planes", cp.admin)).await?;
        let nodes = view["data"].as_array().cloned().unwrap_or_default();
        let at: Vec<u64> = nodes
            .iter()
            .filter(|n| n["config_version"].as_u64().unwrap_or(0) >= version)
            .filter_map(|n| n["sync"]["last_acked_at_ms"].as_u64())
            .collect();
        if at.len() >= n {
            return Ok(at.into_iter().max().unwrap_or(0));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} of {n} nodes ACKed version {version} after 60 s",
                at.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
