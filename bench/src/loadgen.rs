//! An open-loop, constant-rate HTTP load generator. Each connection sends on its own schedule
//! (`start + (k·C + i)/rate`); latency is measured from the scheduled time, so a slow response delays
//! later requests and shows in the tail instead of hiding it (wrk2's correction for coordinated omission).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// How requests carry tokens.
#[derive(Debug, Clone)]
pub enum Tokens {
    None,
    /// The same bearer token every time.
    Fixed(String),
    /// The same `Authorization` value every time (e.g. `Basic …`).
    Auth(String),
    /// A new token for every request.
    Unique,
    /// Cycle through this many distinct tokens.
    Cycle(u64),
    /// The same `Cookie` value every time (a browser's session).
    Cookie(String),
}

impl std::str::FromStr for Tokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "none" => Ok(Tokens::None),
            None if s == "unique" => Ok(Tokens::Unique),
            Some(("fixed", t)) => Ok(Tokens::Fixed(t.to_string())),
            Some(("auth", v)) => Ok(Tokens::Auth(v.to_string())),
            Some(("cycle", n)) => n.parse().map(Tokens::Cycle).map_err(|e| e.to_string()),
            Some(("cookie", v)) => Ok(Tokens::Cookie(v.to_string())),
            _ => Err(format!(
                "bad token mode '{s}': none, unique, fixed:<token>, auth:<value>, cycle:<n> or cookie:<value>"
            )),
        }
    }
}

/// One run's settings.
pub struct Load {
    pub url: String,
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
    pub tokens: Tokens,
}

/// The credential field of request `seq`: its name and value.
fn token_for(tokens: &Tokens, seq: u64, run: &str) -> Option<(&'static str, String)> {
    let bearer = |t: String| Some(("authorization", t));
    match tokens {
        Tokens::None => None,
        Tokens::Fixed(t) => bearer(format!("Bearer {t}")),
        Tokens::Auth(v) => bearer(v.clone()),
        Tokens::Unique => bearer(format!("Bearer bench-{run}-{seq}")),
        Tokens::Cycle(n) => bearer(format!("Bearer bench-cycle-{}", seq % n.max(&1))),
        Tokens::Cookie(v) => Some(("cookie", v.clone())),
    }
}

/// Runs the load and returns a JSON summary (latencies in milliseconds).
pub async fn run(load: Load) -> anyhow::Result<Value> {
    let uri: http::Uri = load.url.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("url needs host:port"))?
        .to_string();
    let run_id = hex::encode(rand_bytes());
    let start = Instant::now() + Duration::from_millis(50);
    let interval = Duration::from_secs_f64(load.connections as f64 / load.rate);
    let per_conn =
        ((load.rate * load.duration.as_secs_f64()) / load.connections as f64).ceil() as u64;
    let mut tasks = Vec::new();
    for i in 0..load.connections {
        let connections = load.connections;
        let (authority, uri, tokens, run_id) = (
            authority.clone(),
            uri.clone(),
            load.tokens.clone(),
            run_id.clone(),
        );
        let offset = Duration::from_secs_f64(i as f64 / load.rate);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_conn as usize);
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut errors = 0u64;
            let mut sender = None;
            for k in 0..per_conn {
                let scheduled = start + offset + interval * k as u32;
                tokio::time::sleep_until(scheduled.into()).await;
                if sender.is_none() {
                    match tokio::net::TcpStream::connect(&authority).await {
                        Ok(tcp) => {
                            let _ = tcp.set_nodelay(true);
                            match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
                                TokioIo::new(tcp),
                            )
                            .await
                            {
                                Ok((s, conn)) => {
                                    tokio::spawn(conn);
                                    sender = Some(s);
                                }
                                Err(_) => {
                                    errors += 1;
                                    continue;
                                }
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    }
                }
                let s = sender.as_mut().expect("connected above");
                let mut req = http::Request::builder()
                    .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
                    .header("host", &authority);
                if let Some((name, value)) =
                    token_for(&tokens, k * connections as u64 + i as u64, &run_id)
                {
                    req = req.header(name, value);
                }
                let req = req.body(Empty::new()).expect("request");
                match s.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.into_body().collect().await;
                        *statuses.entry(status).or_default() += 1;
                        lat.push(scheduled.elapsed().as_micros() as u64);
                    }
                    Err(_) => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (lat, statuses, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    for t in tasks {
        let (l, s, e) = t.await?;
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        errors += e;
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx] as f64 / 1000.0
    };
    Ok(json!({
        "rate": load.rate,
        "requests": lat.len(),
        "errors": errors,
        "statuses": statuses,
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": lat.last().map(|v| *v as f64 / 1000.0).unwrap_or(0.0),
    }))
}

fn rand_bytes() -> [u8; 6] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let b = t.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}
