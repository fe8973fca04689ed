//! The high-availability benchmark: admin writes per second and write → all-ACKed latency for N nodes,
//! measured in one run on one control plane with the embedded store and on two control planes sharing a
//! throwaway PostgreSQL server with the nodes split between them (writes through the first). Everything
//! runs in this process except PostgreSQL. Prints a Markdown table.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::sync::{get, percentile, post, start_cp_with, start_nodes, unix_ms, wait_all, Cp, Node};

/// Settings of the HA benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Nodes in each setup (split evenly over the two PostgreSQL control planes).
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// One-route writes measured per setup.
    #[arg(long, default_value_t = 30)]
    pub writes: usize,
    /// Routes loaded before measuring.
    #[arg(long, default_value_t = 1000)]
    pub routes: usize,
    /// Seconds of sequential admin writes for the writes/s figure.
    #[arg(long, default_value_t = 5)]
    pub throughput_seconds: u64,
}

struct Figures {
    name: String,
    writes_per_s: f64,
    acked_ms: Vec<f64>,
}

/// The nodes' `last_acked_at_ms` once every node named `prefix…` that `cp` holds runs `version`.
async fn acked(cp: &Cp, prefix: &str, n: usize, version: u64) -> Result<f64> {
    let nodes = wait_all(cp, prefix, n, version, Duration::from_secs(60)).await?;
    Ok(nodes
        .iter()
        .filter_map(|x| x["sync"]["last_acked_at_ms"].as_f64())
        .fold(0.0, f64::max))
}

async fn version(cp: &Cp) -> Result<u64> {
    Ok(
        get(&format!("{}/status", cp.admin)).await?["config_version"]
            .as_u64()
            .unwrap_or(0),
    )
}

/// Writes through `writer`; every group is (control plane, node-name prefix, nodes it holds).
async fn measure(
    name: &str,
    writer: &Cp,
    groups: &[(&Cp, String, usize)],
    s: &Settings,
) -> Result<Figures> {
    let mut acked_ms = Vec::new();
    for w in 0..s.writes {
        let started = unix_ms();
        post(
            &format!("{}/services/up/routes", writer.admin),
            json!({"paths": [format!("/{}/w{w}", slug(name))]}),
        )
        .await?;
        let v = version(writer).await?;
        let mut last = 0.0f64;
        for (cp, prefix, n) in groups {
            last = last.max(acked(cp, prefix, *n, v).await?);
        }
        acked_ms.push(last - started);
    }
    let t0 = Instant::now();
    let mut writes = 0u64;
    while t0.elapsed() < Duration::from_secs(s.throughput_seconds) {
        post(
            &format!("{}/consumers", writer.admin),
            json!({"username": format!("{}-tp-{writes}", slug(name))}),
        )
        .await?;
        writes += 1;
    }
    Ok(Figures {
        name: name.to_string(),
        writes_per_s: writes as f64 / t0.elapsed().as_secs_f64(),
        acked_ms,
    })
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

async fn load(cp: &Cp, s: &Settings, upstream: &str) -> Result<()> {
    let routes: Vec<Value> = (0..s.routes)
        .map(|i| json!({"name": format!("r{i}"), "paths": [format!("/r/{i}")]}))
        .collect();
    post(
        &format!("{}/config", cp.admin),
        json!({"_format_version": "3.0", "services": [{"name": "up", "url": upstream, "routes": routes}]}),
    )
    .await?;
    Ok(())
}

async fn nodes_on(cp: &Cp, dir: &Path, prefix: &str, n: usize) -> Result<Vec<Node>> {
    let v = version(cp).await?;
    let nodes = start_nodes(cp, dir, prefix, n, &["delta", "zstd"]).await?;
    wait_all(cp, prefix, n, v, Duration::from_secs(300)).await?;
    Ok(nodes)
}

/// Runs the benchmark and prints the report.
pub async fn run(s: Settings) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let upstream_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    tokio::spawn(crate::upstream::serve(upstream_port));
    let upstream = format!("http://127.0.0.1:{upstream_port}");
    let mut results = Vec::new();

    // One control plane, embedded store.
    {
        let cp = start_cp_with(&dir.path().join("sled"), |c| c).await?;
        load(&cp, &s, &upstream).await?;
        let _nodes = nodes_on(&cp, dir.path(), "sled-", s.nodes).await?;
        let groups = [(&cp, "sled-".to_string(), s.nodes)];
        results.push(measure("one control plane, sled", &cp, &groups, &s).await?);
    }

    // Two control planes on PostgreSQL, nodes split between them, writes through the first.
    let pg = tests::postgres::Postgres::start();
    let url = pg.database("bench");
    let key = dir.path().join("ca-key");
    std::fs::write(&key, "7e".repeat(32))?;
    let on_pg = |c: control_plane::Config| control_plane::Config {
        database: control_plane::DatabaseArgs {
            database_url: Some(url.parse().expect("a postgres URL")),
            ..c.database.clone()
        },
        cluster_ca_encryption_key_file: Some(key.clone()),
        ..c
    };
    let a = start_cp_with(&dir.path().join("pg-a"), on_pg).await?;
    let b = start_cp_with(&dir.path().join("pg-b"), on_pg).await?;
    load(&a, &s, &upstream).await?;
    let (na, nb) = (s.nodes - s.nodes / 2, s.nodes / 2);
    let _on_a = nodes_on(&a, dir.path(), "pga-", na).await?;
    let _on_b = nodes_on(&b, dir.path(), "pgb-", nb).await?;
    let groups = [(&a, "pga-".to_string(), na), (&b, "pgb-".to_string(), nb)];
    results.push(
        measure(
            "two control planes, PostgreSQL (writes via A)",
            &a,
            &groups,
            &s,
        )
        .await?,
    );

    println!(
        "\n{} nodes, {} routes, {} one-route writes per setup; throughput: sequential consumer writes for {} s\n",
        s.nodes, s.routes, s.writes, s.throughput_seconds
    );
    println!("| setup | admin writes/s | write → all ACKed p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for r in &results {
        let mut l = r.acked_ms.clone();
        l.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.name,
            r.writes_per_s,
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
