//! The node simulator: N data-plane nodes in one process, each a real cluster client without a proxy or a
//! last-known-good store. Each node enrolls with the (multi-use) token through the node's own pairing code
//! (its own key, CSR and certificate), opens its own mTLS gRPC stream with the node's own connector, says
//! hello, sends heartbeats, receives snapshots and deltas, checks each one's content hash as a node does
//! and ACKs it. What crosses the wire is exactly what a node sends and receives.
//!
//! Nodes with the same configuration share its decoded form in this process (a node checks the hash of
//! every update it is sent; a state already decoded and checked for that hash is not decoded again), so
//! 10,000 nodes fit in one machine's memory. Some nodes can be told to refuse every configuration
//! (`--nack`) or to stop reading their stream once connected (`--stall`), and a share of them to reconnect
//! every minute (`--churn`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use data_plane::control_planes::{Candidate, ControlPlanes};
use data_plane::identity::{self, Identity};
use data_plane::sync::Backoff;
use proto::cluster_client::ClusterClient;
use proto::{control_message, node_message, NodeMessage};

/// The largest configuration a simulated node takes, compressed or not.
const MAX_CONFIG_BYTES: usize = 256 * 1024 * 1024;
use shared::digest::StateDigest;
use shared::state::ConfigState;
use tokio::sync::mpsc;

/// Settings of the simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The control plane's cluster address (`host:port`).
    #[arg(long)]
    pub control_plane: String,
    /// An enrollment token that admits at least `--nodes` nodes.
    #[arg(long)]
    pub token: String,
    /// Nodes to run.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Nodes started per second.
    #[arg(long, default_value_t = 500.0)]
    pub ramp: f64,
    /// Share of the nodes that close their stream and connect again every minute.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Share of the nodes that refuse every configuration (NACK).
    #[arg(long, default_value_t = 0.0)]
    pub nack: f64,
    /// Share of the nodes that stop reading their stream once connected (slow readers).
    #[arg(long, default_value_t = 0.0)]
    pub stall: f64,
    /// Milliseconds between a node's heartbeats (the node's default).
    #[arg(long, default_value_t = 2000)]
    pub heartbeat_ms: u64,
    /// Seconds to run once every node has started; 0 runs until stopped.
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
}

/// What the simulated nodes have done, printed every few seconds.
#[derive(Default)]
pub struct Totals {
    pub paired: AtomicU64,
    pub pair_failures: AtomicU64,
    pub connected: AtomicU64,
    pub streams_opened: AtomicU64,
    pub stream_failures: AtomicU64,
    pub acks: AtomicU64,
    pub nacks: AtomicU64,
}

/// A configuration a node runs: version, hash, and the decoded state and digest.
type Config = Arc<(u64, String, Arc<ConfigState>, StateDigest)>;

/// States already decoded and checked, by hash (a handful: the newest few versions).
#[derive(Default)]
struct Decoded {
    by_hash: Mutex<HashMap<String, (Arc<ConfigState>, StateDigest)>>,
}

impl Decoded {
    const KEPT: usize = 8;

    fn get(&self, hash: &str) -> Option<(Arc<ConfigState>, StateDigest)> {
        self.by_hash
            .lock()
            .expect("decoded lock")
            .get(hash)
            .cloned()
    }

    fn put(&self, hash: &str, state: Arc<ConfigState>, digest: StateDigest) {
        let mut m = self.by_hash.lock().expect("decoded lock");
        if m.len() >= Self::KEPT {
            m.clear();
        }
        m.insert(hash.to_string(), (state, digest));
    }
}

/// How one simulated node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    Nack,
    Stall,
}

struct Sim {
    settings: Settings,
    cps: ControlPlanes,
    totals: Arc<Totals>,
    decoded: Decoded,
    plugins: Vec<proto::PluginVersion>,
}

/// Runs the simulator: starts the nodes at the ramp rate and prints the totals every 5 s.
pub async fn run(settings: Settings) -> Result<()> {
    let sim = Arc::new(Sim {
        cps: ControlPlanes::parse(&settings.control_plane)?,
        totals: Arc::new(Totals::default()),
        decoded: Decoded::default(),
        plugins: data_plane::plugins::registry()
            .iter()
            .map(|r| proto::PluginVersion {
                name: r.name.to_string(),
                version: r.version.to_string(),
            })
            .collect(),
        settings,
    });
    let s = &sim.settings;
    let started = Instant::now();
    let report = tokio::spawn(report(sim.totals.clone(), started));
    let gap = Duration::from_secs_f64(1.0 / s.ramp.max(0.001));
    let mut next = tokio::time::Instant::now();
    for i in 0..s.nodes {
        let behaviour = match i as f64 / s.nodes as f64 {
            f if f < s.nack => Behaviour::Nack,
            f if f < s.nack + s.stall => Behaviour::Stall,
            _ => Behaviour::Normal,
        };
        let churns = (i as f64 / s.nodes as f64) >= 1.0 - s.churn;
        tokio::spawn(node(sim.clone(), i, behaviour, churns));
        next += gap;
        tokio::time::sleep_until(next).await;
    }
    println!(
        "all {} nodes started in {:.1} s",
        s.nodes,
        started.elapsed().as_secs_f64()
    );
    if s.seconds == 0 {
        let _ = tokio::signal::ctrl_c().await;
    } else {
        tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    }
    report.abort();
    print_totals(&sim.totals, started);
    Ok(())
}

async fn report(totals: Arc<Totals>, started: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        print_totals(&totals, started);
    }
}

fn print_totals(t: &Totals, started: Instant) {
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{:>6.1} s: paired {} (failed {}), connected {}, streams opened {} (failed {}), acks {}, nacks {}",
        started.elapsed().as_secs_f64(),
        g(&t.paired),
        g(&t.pair_failures),
        g(&t.connected),
        g(&t.streams_opened),
        g(&t.stream_failures),
        g(&t.acks),
        g(&t.nacks),
    );
}

/// One node: enrolls (retrying with the node's back-off), then keeps a stream open for good.
async fn node(sim: Arc<Sim>, i: usize, behaviour: Behaviour, churns: bool) {
    let hostname = format!("sim-{i:05}");
    let mut backoff = Backoff::new();
    let identity = loop {
        match identity::pair(&sim.cps, &sim.settings.token, &hostname).await {
            Ok(id) => break id,
            Err(e) => {
                sim.totals.pair_failures.fetch_add(1, Ordering::Relaxed);
                if e.to_string().contains("refused by the control plane") {
                    eprintln!("{hostname}: {e:#}");
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    sim.totals.paired.fetch_add(1, Ordering::Relaxed);
    backoff.reset();
    let mut current: Option<Config> = None;
    let mut attempt = 0usize;
    loop {
        let outcome = match sim.cps.pick(attempt).await {
            Ok(cp) => {
                session(
                    &sim,
                    &cp,
                    &identity,
                    &hostname,
                    behaviour,
                    churns,
                    &mut current,
                    &mut backoff,
                )
                .await
            }
            Err(e) => Err(e),
        };
        attempt = attempt.wrapping_add(1);
        if outcome.is_err() {
            sim.totals.stream_failures.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Counts a connected stream for as long as it lives.
struct Connected<'a>(&'a Totals);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    sim: &Sim,
    cp: &Candidate,
    identity: &Identity,
    hostname: &str,
    behaviour: Behaviour,
    churns: bool,
    current: &mut Option<Config>,
    backoff: &mut Backoff,
) -> Result<()> {
    let heartbeat_timeout = Duration::from_millis(sim.settings.heartbeat_ms * 3);
    let channel = identity::connect(cp, identity.client_tls()?, heartbeat_timeout).await?;
    let mut client = ClusterClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
    let (tx, rx) = mpsc::channel::<NodeMessage>(16);
    let hello = proto::Hello {
        node_id: identity.node_id.clone(),
        hostname: hostname.to_string(),
        software_version: shared::VERSION.to_string(),
        plugins: sim.plugins.clone(),
        config_version: current.as_ref().map(|c| c.0).unwrap_or(0),
        config_hash: current.as_ref().map(|c| c.1.clone()).unwrap_or_default(),
        cert_not_after: identity.cert_not_after,
        features: vec![
            proto::payload::FEATURE_DELTA.into(),
            proto::payload::FEATURE_ZSTD.into(),
            proto::payload::FEATURE_PARTS.into(),
        ],
    };
    tx.send(NodeMessage {
        kind: Some(node_message::Kind::Hello(hello)),
    })
    .await?;
    let mut inbound = client
        .sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| anyhow!("sync refused: {}", s.message()))?
        .into_inner();
    sim.totals.streams_opened.fetch_add(1, Ordering::Relaxed);
    sim.totals.connected.fetch_add(1, Ordering::Relaxed);
    let _connected = Connected(&sim.totals);
    backoff.reset();
    let every = Duration::from_millis(sim.settings.heartbeat_ms);
    let mut heartbeat = tokio::time::interval(every);
    // A churning node leaves after a random part of a minute.
    let leave = tokio::time::sleep(if churns {
        Duration::from_millis(rand::random::<u64>() % 60_000)
    } else {
        Duration::MAX / 4
    });
    tokio::pin!(leave);
    if behaviour == Behaviour::Stall {
        // Keeps the stream open and never reads it: the control plane's sends back up.
        (&mut leave).await;
        return Ok(());
    }
    let mut parts = proto::payload::Assembly::default();
    loop {
        tokio::select! {
            _ = &mut leave => return Ok(()),
            _ = heartbeat.tick() => {
                let hb = proto::Heartbeat { sent_at_ms: platform::unix_ms() };
                tx.send(NodeMessage { kind: Some(node_message::Kind::Heartbeat(hb)) }).await?;
            }
            msg = inbound.message() => {
                let Some(msg) = msg.map_err(|s| anyhow!("stream closed: {}", s.message()))? else { return Ok(()) };
                let reply = match msg.kind {
                    Some(control_message::Kind::Part(p)) => {
                        parts.push(&p.data, MAX_CONFIG_BYTES);
                        None
                    }
                    Some(control_message::Kind::Snapshot(s)) => {
                        let payload = parts.finish(s.payload);
                        Some(answer(sim, behaviour, current, s.version, s.hash, &s.encoding, payload, None))
                    }
                    Some(control_message::Kind::Delta(d)) => {
                        let base = Some((d.base_version, d.base_hash));
                        let payload = parts.finish(d.changes);
                        Some(answer(sim, behaviour, current, d.version, d.hash, &d.encoding, payload, base))
                    }
                    _ => None,
                };
                if let Some(kind) = reply {
                    tx.send(NodeMessage { kind: Some(kind) }).await?;
                }
            }
        }
    }
}

/// The ACK or NACK a node sends for a configuration, after checking it as a node does.
#[allow(clippy::too_many_arguments)]
fn answer(
    sim: &Sim,
    behaviour: Behaviour,
    current: &mut Option<Config>,
    version: u64,
    hash: String,
    encoding: &str,
    payload: Result<bytes::Bytes, proto::payload::PayloadError>,
    base: Option<(u64, String)>,
) -> node_message::Kind {
    let started = Instant::now();
    let kind = if base.is_some() { "delta" } else { "full" };
    let received_bytes = payload.as_ref().map_or(0, |b| b.len()) as u64;
    let checked = match (behaviour, payload) {
        (Behaviour::Nack, _) => Err(("refused by the simulator (--nack)".to_string(), "simulated")),
        (_, Err(why)) => Err((why.to_string(), why.kind())),
        (_, Ok(bytes)) => check(
            sim,
            current.as_ref(),
            version,
            &hash,
            encoding,
            &bytes,
            base,
        )
        .map_err(|why| (why, "invalid")),
    };
    match checked {
        Ok(config) => {
            *current = Some(config);
            sim.totals.acks.fetch_add(1, Ordering::Relaxed);
            let micros = started.elapsed().as_micros() as u64;
            node_message::Kind::Ack(proto::Ack {
                version,
                hash,
                not_persisted: String::new(),
                sync_kind: kind.to_string(),
                received_bytes,
                apply_micros: micros,
                apply_cpu_micros: micros,
            })
        }
        Err((reason, why)) => {
            sim.totals.nacks.fetch_add(1, Ordering::Relaxed);
            node_message::Kind::Nack(proto::Nack {
                version,
                hash,
                reason,
                kind: why.to_string(),
            })
        }
    }
}

/// Decodes an update and checks its content hash against the node's current configuration.
fn check(
    sim: &Sim,
    current: Option<&Config>,
    version: u64,
    hash: &str,
    encoding: &str,
    bytes: &[u8],
    base: Option<(u64, String)>,
) -> Result<Config, String> {
    let plain =
        proto::payload::decompress(encoding, bytes, MAX_CONFIG_BYTES).map_err(|e| e.to_string())?;
    let (state, digest) = match base {
        None => match sim.decoded.get(hash) {
            Some(known) => known,
            None => {
                let (state, digest) = shared::state::decode(&plain, hash)?;
                let state = Arc::new(state);
                sim.decoded.put(hash, state.clone(), digest.clone());
                (state, digest)
            }
        },
        Some((base_version, base_hash)) => {
            let cur = current.ok_or(format!(
                "no configuration to apply a delta on (base {base_version})"
            ))?;
            if cur.0 != base_version || cur.1 != base_hash {
                return Err(format!(
                    "delta for base {base_version} {base_hash}, running {} {}",
                    cur.0, cur.1
                ));
            }
            let changes = shared::delta::decode_changes(&plain)?;
            match sim.decoded.get(hash) {
                Some(known) => known,
                None => {
                    let mut state = (*cur.2).clone();
                    state.apply_changes(&changes)?;
                    let mut digest = cur.3.clone();
                    digest.apply(&changes);
                    if digest.hex() != hash {
                        return Err(format!("delta leads to {}, expected {hash}", digest.hex()));
                    }
                    let state = Arc::new(state);
                    sim.decoded.put(hash, state.clone(), digest.clone());
                    (state, digest)
                }
            }
        }
    };
    Ok(Arc::new((version, hash.to_string(), state, digest)))
}
