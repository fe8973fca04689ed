//! `GET /metrics`: the control plane in Prometheus's text format (0.0.4), behind the admin token like
//! every Admin API path. Totals of the nodes by status and sync status, this control plane's streams and
//! their counters, and one set of series per node (labelled `node` and `hostname`: about 8 series a node;
//! `?per_node=false` leaves them out for very large clusters). Node figures are what the node view
//! (`/clustering/data-planes`) shows, including nodes held by other control planes on the same database.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Router;
use serde_json::Value;

use super::{AdminCtx, ApiError, ApiResult, Ctx};
use crate::cluster::counters::{EncodeTimes, Histogram, SyncCounters};
use crate::store::StoreTimes;

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new().route("/metrics", axum::routing::get(metrics))
}

async fn metrics(State(ctx): Ctx, RawQuery(q): RawQuery) -> ApiResult {
    let mut per_node = true;
    for (k, v) in super::entities::parse_query(&q)? {
        match (k.as_str(), v.as_str()) {
            ("per_node", "true") => per_node = true,
            ("per_node", "false") => per_node = false,
            ("per_node", _) => {
                return Err(ApiError::invalid_option(
                    "per_node",
                    "expected true or false",
                ))
            }
            _ => {}
        }
    }
    let latest = ctx.cluster.latest();
    let remote = super::clustering::remote_status(&ctx).await;
    // Per-node series need every node's record rendered; the totals alone are counted without that.
    let nodes = per_node.then(|| ctx.cluster.nodes.view(None, latest.as_deref(), &remote));
    let census = match &nodes {
        Some(nodes) => census_of(nodes),
        None => ctx.cluster.nodes.census(latest.as_deref(), &remote),
    };
    let here = ControlPlane {
        name: ctx.cluster.nodes.name().to_string(),
        config_version: ctx.core.current().version,
        connected: ctx.cluster.nodes.connected(),
        counters: &ctx.cluster.nodes.counters,
        encode_times: &ctx.cluster.encode_times,
        store_times: &ctx.store_times,
        change_log: {
            let log = ctx.core.log().lock().expect("change log lock");
            let versions = log.span().map(|(a, b)| b - a + 1).unwrap_or(0);
            (versions, log.bytes())
        },
    };
    let text = render(&here, &census, nodes.as_deref());
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}

/// This control plane's own figures.
struct ControlPlane<'a> {
    name: String,
    config_version: u64,
    connected: usize,
    counters: &'a SyncCounters,
    encode_times: &'a EncodeTimes,
    store_times: &'a StoreTimes,
    /// Versions and bytes the change log keeps.
    change_log: (u64, usize),
}

/// One metric family being written: its help and type once, then its samples.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format writes it: backslash, double quote and line feed escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A counter sample: its name, its help (empty after the family's first sample), labels and value.
type Counter<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u64);

/// A per-node gauge: its name, its help, and how to read it from a node's view.
type NodeGauge = (&'static str, &'static str, fn(&Value) -> i64);

/// The sync statuses a node can be in (`/clustering/data-planes`' `sync_status`).
const SYNC_STATUSES: &[&str] = &[
    "in_sync",
    "behind",
    "rejected",
    "applied_not_persisted",
    "incompatible",
    "revoked",
    "unknown",
];

/// How many of `nodes` (the node view) have each connection status and sync status.
fn census_of(nodes: &[Value]) -> BTreeMap<(&str, &str), u64> {
    let mut counts = BTreeMap::new();
    for n in nodes {
        let key = (
            n["status"].as_str().unwrap_or("unknown"),
            n["sync_status"].as_str().unwrap_or("unknown"),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// The metrics text: `census` counts the nodes by status; `nodes`, when given, adds a series per node.
fn render(
    cp: &ControlPlane<'_>,
    census: &BTreeMap<(&str, &str), u64>,
    nodes: Option<&[Value]>,
) -> String {
    let mut out = Out {
        text: String::new(),
    };
    let name = cp.name.as_str();
    out.family(
        "portcullis_cp_config_version",
        "gauge",
        "The latest configuration version.",
    );
    out.sample("portcullis_cp_config_version", &[], cp.config_version);
    out.family(
        "portcullis_cp_data_planes_connected",
        "gauge",
        "Data-plane nodes whose stream this control plane holds.",
    );
    out.sample(
        "portcullis_cp_data_planes_connected",
        &[("control_plane", name)],
        cp.connected,
    );
    let mut by_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for status in ["connected", "disconnected", "revoked"] {
        for sync in SYNC_STATUSES {
            by_status.insert((status, sync), 0);
        }
    }
    for (key, count) in census {
        *by_status.entry(*key).or_default() += count;
    }
    out.family(
        "portcullis_cp_data_planes",
        "gauge",
        "Data-plane nodes paired with the cluster, by connection status and sync status.",
    );
    for ((status, sync), count) in &by_status {
        out.sample(
            "portcullis_cp_data_planes",
            &[("status", status), ("sync_status", sync)],
            count,
        );
    }
    let c = cp.counters;
    let counters: [Counter; 9] = [
        (
            "portcullis_cp_sessions_total",
            "Node streams this control plane has opened.",
            &[],
            SyncCounters::get(&c.sessions),
        ),
        (
            "portcullis_cp_config_acks_total",
            "Configurations nodes acknowledged, by how they arrived.",
            &[("kind", "full")],
            SyncCounters::get(&c.acks_full),
        ),
        (
            "portcullis_cp_config_acks_total",
            "",
            &[("kind", "delta")],
            SyncCounters::get(&c.acks_delta),
        ),
        (
            "portcullis_cp_config_received_bytes_total",
            "Bytes of acknowledged configurations, as the nodes received them, by how they arrived.",
            &[("kind", "full")],
            SyncCounters::get(&c.bytes_full),
        ),
        (
            "portcullis_cp_config_received_bytes_total",
            "",
            &[("kind", "delta")],
            SyncCounters::get(&c.bytes_delta),
        ),
        (
            "portcullis_cp_session_revocations_total",
            "Session revocations (back-channel logout) received from nodes.",
            &[],
            SyncCounters::get(&c.session_revocations),
        ),
        (
            "portcullis_cp_enrollments_total",
            "Pairings with an enrollment token, by outcome.",
            &[("outcome", "paired")],
            SyncCounters::get(&c.enrollments),
        ),
        (
            "portcullis_cp_enrollments_total",
            "",
            &[("outcome", "refused")],
            SyncCounters::get(&c.enrollments_refused),
        ),
        (
            "portcullis_cp_node_revocations_total",
            "Nodes revoked through the Admin API on this control plane.",
            &[],
            SyncCounters::get(&c.revocations),
        ),
    ];
    for (metric, help, labels, value) in counters {
        if !help.is_empty() {
            out.family(metric, "counter", help);
        }
        let mut all = vec![("control_plane", name)];
        all.extend_from_slice(labels);
        out.sample(metric, &all, value);
    }
    out.family(
        "portcullis_cp_config_nacks_total",
        "counter",
        "Configurations nodes refused, by the reason's kind (the node view has each node's reason).",
    );
    for (kind, count) in c.nacks.read() {
        let labels = [("control_plane", name), ("reason", kind.as_str())];
        out.sample("portcullis_cp_config_nacks_total", &labels, count);
    }
    histograms(
        &mut out,
        (
            "portcullis_cp_config_ack_seconds",
            "From sending a configuration (full or delta) on a node's stream to the node's ACK of it.",
        ),
        name,
        &[(None, &c.ack_latency)],
    );
    histograms(
        &mut out,
        (
            "portcullis_cp_config_encode_seconds",
            "Time to encode a configuration for the nodes, once per version (full, full_zstd) or per version and base (delta).",
        ),
        name,
        &cp.encode_times.kinds().map(|(kind, h)| (Some(("kind", kind)), h)),
    );
    histograms(
        &mut out,
        (
            "portcullis_cp_store_write_seconds",
            "Time the store (sled or PostgreSQL) took to write, by operation.",
        ),
        name,
        &cp.store_times
            .operations()
            .map(|(operation, h)| (Some(("operation", operation)), h)),
    );
    {
        let log = cp.change_log;
        out.family(
            "portcullis_cp_change_log_versions",
            "gauge",
            "Versions the change log keeps for incremental sync.",
        );
        out.sample(
            "portcullis_cp_change_log_versions",
            &[("control_plane", name)],
            log.0,
        );
        out.family(
            "portcullis_cp_change_log_bytes",
            "gauge",
            "Bytes of encoded changes the change log keeps.",
        );
        out.sample(
            "portcullis_cp_change_log_bytes",
            &[("control_plane", name)],
            log.1,
        );
    }
    if let Some(nodes) = nodes {
        node_series(&mut out, nodes);
    }
    out.text
}

/// A histogram family: its help once, then the buckets, sum and count of each histogram, labelled with
/// this control plane's name and, where given, one label of its own.
fn histograms(
    out: &mut Out,
    (metric, help): (&str, &str),
    name: &str,
    each: &[(Option<(&str, &str)>, &Histogram)],
) {
    out.family(metric, "histogram", help);
    let bucket = format!("{metric}_bucket");
    for (label, h) in each {
        let labels: Vec<(&str, &str)> = [("control_plane", name)]
            .into_iter()
            .chain(*label)
            .collect();
        let (buckets, count, sum) = h.read();
        let les: Vec<String> = h.bounds().iter().map(f64::to_string).collect();
        let les = les.iter().map(String::as_str).chain(["+Inf"]);
        for (le, n) in les.zip(buckets.iter().chain([&count])) {
            let mut with_le = labels.clone();
            with_le.push(("le", le));
            out.sample(&bucket, &with_le, n);
        }
        out.sample(&format!("{metric}_sum"), &labels, sum);
        out.sample(&format!("{metric}_count"), &labels, count);
    }
}

/// The series of each node.
fn node_series(out: &mut Out, nodes: &[Value]) {
    let id = |n: &Value| n["id"].as_str().unwrap_or_default().to_string();
    let host = |n: &Value| n["hostname"].as_str().unwrap_or_default().to_string();
    let gauges: [NodeGauge; 5] = [
        (
            "portcullis_cp_data_plane_connected",
            "1 while the node's stream is open (on any control plane).",
            |n| i64::from(n["status"] == "connected"),
        ),
        (
            "portcullis_cp_data_plane_last_seen_timestamp_seconds",
            "When the node was last heard from (Unix seconds; 0 never).",
            |n| n["last_seen"].as_i64().unwrap_or(0),
        ),
        (
            "portcullis_cp_data_plane_config_version",
            "The configuration version the node runs.",
            |n| n["config_version"].as_i64().unwrap_or(0),
        ),
        (
            "portcullis_cp_data_plane_cert_expiry_timestamp_seconds",
            "When the node's client certificate expires (Unix seconds).",
            |n| n["cert_expiry"].as_i64().unwrap_or(0),
        ),
        (
            "portcullis_cp_data_plane_version_compatible",
            "1 when the node runs every plugin of the latest configuration.",
            |n| i64::from(n["sync_status"] != "incompatible"),
        ),
    ];
    for (metric, help, value) in gauges {
        out.family(metric, "gauge", help);
        for n in nodes {
            let (id, host) = (id(n), host(n));
            out.sample(metric, &[("node", &id), ("hostname", &host)], value(n));
        }
    }
    out.family(
        "portcullis_cp_data_plane_sync_status",
        "gauge",
        "1 for the node's sync status (in_sync, behind, rejected, applied_not_persisted, incompatible, revoked, unknown).",
    );
    for n in nodes {
        let (id, host) = (id(n), host(n));
        let status = n["sync_status"].as_str().unwrap_or("unknown");
        for s in SYNC_STATUSES {
            let labels = [
                ("node", id.as_str()),
                ("hostname", &host),
                ("sync_status", s),
            ];
            out.sample(
                "portcullis_cp_data_plane_sync_status",
                &labels,
                i64::from(*s == status),
            );
        }
    }
    out.family(
        "portcullis_cp_data_plane_info",
        "gauge",
        "Always 1; the node's software version, configuration hash and the control plane holding it.",
    );
    for n in nodes {
        let (id, host) = (id(n), host(n));
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (version, hash, holder) = (
            text(&n["version"]),
            text(&n["config_hash"]),
            text(&n["control_plane"]),
        );
        let labels = [
            ("node", id.as_str()),
            ("hostname", host.as_str()),
            ("version", version.as_str()),
            ("config_hash", hash.as_str()),
            ("control_plane", holder.as_str()),
        ];
        out.sample("portcullis_cp_data_plane_info", &labels, 1);
    }
}

#[cfg(test)]
mod tests;
