//! The console benchmark: one control plane in this process with N routes, a signed-in session, and the
//! time to render the route list (every route on one page), the overview and a route's edit form, as a
//! browser asks for them over HTTP. Prints a Markdown table.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use crate::sync::{post, start_cp_with};

/// Settings of the console benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Routes (one service each ten) loaded before measuring.
    #[arg(long, default_value_t = 1000)]
    pub routes: usize,
    /// Requests measured per page.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

/// Runs the benchmark and prints its table.
pub async fn run(s: Settings) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = start_cp_with(dir.path(), |c| c).await?;
    let services: Vec<_> = (0..s.routes.div_ceil(10))
        .map(|i| {
            json!({"name": format!("svc-{i}"), "url": format!("http://backend-{i}.test:8080"),
            "routes": (0..10).filter(|j| i * 10 + j < s.routes).map(|j| json!({
                "name": format!("route-{}", i * 10 + j),
                "paths": [format!("/api/{i}/{j}")],
                "methods": ["GET", "POST"],
                "tags": ["bench"],
            })).collect::<Vec<_>>()})
        })
        .collect();
    post(
        &format!("{}/config", cp.admin),
        json!({"_format_version": "3.0", "services": services}),
    )
    .await?;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Without an admin token (loopback only) any token signs in.
    let signed = browser
        .post(format!("{}/login", cp.console))
        .header("origin", &cp.console)
        .form(&[("token", "bench")])
        .send()
        .await?;
    if !signed.status().is_redirection() {
        bail!("sign-in answered {}", signed.status());
    }
    println!(
        "| Page ({} routes) | Bytes | min ms | median ms | p95 ms | max ms |",
        s.routes
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, path) in [
        ("Route list, all routes", "/entities/routes".to_string()),
        (
            "Route list, filtered by tag",
            "/entities/routes?tags=bench".to_string(),
        ),
        ("Cluster overview", "/".to_string()),
        (
            "Route edit form",
            "/entities/routes/route-7/edit".to_string(),
        ),
    ] {
        let url = format!("{}{path}", cp.console);
        let mut times = Vec::with_capacity(s.requests);
        let mut bytes = 0;
        for _ in 0..s.requests {
            let start = Instant::now();
            let r = browser.get(&url).send().await?;
            if !r.status().is_success() {
                bail!("GET {path}: {}", r.status());
            }
            bytes = r.bytes().await?.len();
            times.push(start.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "| {name} | {bytes} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(times[0]),
            ms(at(0.5)),
            ms(at(0.95)),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}
