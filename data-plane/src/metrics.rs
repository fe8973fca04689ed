//! Prometheus metrics: counters and histograms keyed by label values, rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations. Each observation counts in the one bucket it falls in; the cumulative
/// counts Prometheus expects are summed when the histogram is rendered.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket: `buckets[i]` counts those above `BUCKETS[i - 1]` and at most
    /// `BUCKETS[i]`; those above the last bound are only in `count`.
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.partition_point(|b| *b < secs);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

type Labels = Vec<(&'static str, String)>;

/// A family of counters sharing a name.
#[derive(Debug, Default)]
pub struct CounterVec {
    series: RwLock<BTreeMap<Labels, Arc<AtomicU64>>>,
}

impl CounterVec {
    /// The counter for `labels`.
    pub fn with(&self, labels: &[(&'static str, &str)]) -> Arc<AtomicU64> {
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Some(c) = self.series.read().expect("metrics lock").get(&key) {
            return c.clone();
        }
        self.series
            .write()
            .expect("metrics lock")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Adds `n` to the counter for `labels`.
    pub fn add(&self, labels: &[(&'static str, &str)], n: u64) {
        self.with(labels).fetch_add(n, Ordering::Relaxed);
    }

    /// Current value for `labels` (0 when never touched).
    pub fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.series
            .read()
            .expect("metrics lock")
            .get(&key)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in self.series.read().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "{name}{} {}",
                fmt_labels(labels, None),
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// A family of histograms sharing a name.
#[derive(Debug, Default)]
pub struct HistogramVec {
    series: RwLock<BTreeMap<Labels, Arc<Histogram>>>,
}

impl HistogramVec {
    /// Records one observation for `labels`.
    pub fn observe(&self, labels: &[(&'static str, &str)], d: std::time::Duration) {
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let h = {
            let read = self.series.read().expect("metrics lock");
            read.get(&key).cloned()
        };
        let h = h.unwrap_or_else(|| {
            self.series
                .write()
                .expect("metrics lock")
                .entry(key)
                .or_default()
                .clone()
        });
        h.observe(d);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (labels, h) in self.series.read().expect("metrics lock").iter() {
            render_histogram(name, labels, h, out);
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The request metrics of one (route, service) pair, looked up once per request without allocating.
#[derive(Debug)]
pub struct Series {
    route: String,
    service: String,
    statuses: std::sync::Mutex<BTreeMap<u16, u64>>,
    latency: Histogram,
    upstream: Histogram,
}

impl Series {
    /// Records one finished request.
    pub fn record(
        &self,
        status: u16,
        total: std::time::Duration,
        upstream: Option<std::time::Duration>,
    ) {
        *self
            .statuses
            .lock()
            .expect("metrics lock")
            .entry(status)
            .or_default() += 1;
        self.latency.observe(total);
        if let Some(u) = upstream {
            self.upstream.observe(u);
        }
    }
}

/// Route id and service id.
type SeriesKey = (uuid::Uuid, Option<uuid::Uuid>);

/// Request series keyed by route and service id.
#[derive(Debug, Default)]
pub struct RequestSeries {
    // Keys are the configuration's ids, not client input, so a fast hash serves.
    series: RwLock<rustc_hash::FxHashMap<SeriesKey, Arc<Series>>>,
}

impl RequestSeries {
    /// The series of a route and service; `labels` runs only the first time.
    pub fn get(
        &self,
        route: uuid::Uuid,
        service: Option<uuid::Uuid>,
        labels: impl FnOnce() -> (String, String),
    ) -> Arc<Series> {
        if let Some(s) = self
            .series
            .read()
            .expect("metrics lock")
            .get(&(route, service))
        {
            return s.clone();
        }
        let (route_label, service_label) = labels();
        self.series
            .write()
            .expect("metrics lock")
            .entry((route, service))
            .or_insert_with(|| {
                Arc::new(Series {
                    route: route_label,
                    service: service_label,
                    statuses: Default::default(),
                    latency: Histogram::default(),
                    upstream: Histogram::default(),
                })
            })
            .clone()
    }

    fn render(&self, out: &mut String) {
        let series: Vec<Arc<Series>> = self
            .series
            .read()
            .expect("metrics lock")
            .values()
            .cloned()
            .collect();
        let labels = |s: &Series| vec![("route", s.route.clone()), ("service", s.service.clone())];
        let _ = writeln!(out, "# HELP portcullis_http_requests_total Requests proxied, by route, service and status.\n# TYPE portcullis_http_requests_total counter");
        for s in &series {
            for (status, n) in s.statuses.lock().expect("metrics lock").iter() {
                let mut l = labels(s);
                l.push(("status", status.to_string()));
                let _ = writeln!(
                    out,
                    "portcullis_http_requests_total{} {n}",
                    fmt_labels(&l, None)
                );
            }
        }
        for (name, help, pick) in [
            (
                "portcullis_request_duration_seconds",
                "Total time from request received to response headers sent.",
                0,
            ),
            (
                "portcullis_upstream_duration_seconds",
                "Time the upstream took to answer with headers.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for s in &series {
                let h = if pick == 0 { &s.latency } else { &s.upstream };
                render_histogram(name, &labels(s), h, out);
            }
        }
    }
}

fn render_histogram(name: &str, labels: &Labels, h: &Histogram, out: &mut String) {
    let mut cumulative = 0;
    for (b, n) in BUCKETS.iter().zip(&h.buckets) {
        cumulative += n.load(Ordering::Relaxed);
        let le = format!("{b}");
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            fmt_labels(labels, Some(&le)),
        );
    }
    let count = h.count.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name}_bucket{} {count}",
        fmt_labels(labels, Some("+Inf"))
    );
    let _ = writeln!(
        out,
        "{name}_sum{} {}",
        fmt_labels(labels, None),
        h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(labels, None));
}

/// Every metric of a node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests, total latency and upstream latency by route and service.
    pub requests: RequestSeries,
    /// Upstream failures by service and kind (connect, timeout, protocol).
    pub upstream_errors: CounterVec,
    /// Plugin cache events by plugin, instance and event (hit, miss, negative_hit, idp_call, idp_error).
    pub plugin_events: CounterVec,
    /// Requests a plugin answered itself, by plugin and reason (unauthorized, forbidden,
    /// idp_unavailable, malformed_body, body_too_large).
    pub plugin_refusals: CounterVec,
    /// Identity-provider call latency by plugin and instance.
    pub idp_latency: HistogramVec,
    /// Snapshots applied and rejected.
    pub config_applied: AtomicU64,
    pub config_rejected: AtomicU64,
    /// Version of the live config.
    pub config_version: AtomicU64,
    /// Open downstream connections.
    pub connections: AtomicU64,
    /// Failed `accept()` calls by listener and kind (descriptors, memory, connection).
    pub accept_errors: CounterVec,
    /// Failed TLS handshakes on the proxy by kind (handshake, timeout).
    pub tls_handshake_errors: CounterVec,
    /// Requests the client got wrong, answered before anything was forwarded or once its body broke, by
    /// kind (bad_request, too_large, not_implemented, body).
    pub client_errors: CounterVec,
    /// Upgraded (WebSocket) connections by how they ended (closed, idle, stalled, error).
    pub upgraded_connections: CounterVec,
    /// Bytes through upgraded connections by direction (upstream, downstream), counted when they end.
    pub upgraded_bytes: CounterVec,
    /// 1 while the applied config could not be stored as last-known-good.
    pub lkg_degraded: AtomicU64,
    /// Failed last-known-good writes.
    pub lkg_write_errors: AtomicU64,
    /// Cache purges received from the control plane, by cache.
    pub cache_purges: CounterVec,
    /// Session revocations applied, by where they came from (`identity_provider`: a logout token this
    /// node verified; `control_plane`: another node's, or one kept while this node was away).
    pub session_revocations: CounterVec,
}

impl Metrics {
    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.requests.render(&mut out);
        self.upstream_errors.render(
            "portcullis_upstream_errors_total",
            "Upstream failures by kind.",
            &mut out,
        );
        self.plugin_events.render(
            "portcullis_plugin_events_total",
            "Plugin cache and identity-provider events.",
            &mut out,
        );
        self.plugin_refusals.render(
            "portcullis_plugin_refusals_total",
            "Requests a plugin answered instead of the upstream, by plugin and reason.",
            &mut out,
        );
        self.idp_latency.render(
            "portcullis_idp_request_duration_seconds",
            "Identity-provider call latency.",
            &mut out,
        );
        self.accept_errors.render(
            "portcullis_accept_errors_total",
            "Failed accepts by listener and kind; descriptor and memory errors pause accepting.",
            &mut out,
        );
        self.tls_handshake_errors.render(
            "portcullis_tls_handshake_errors_total",
            "Failed TLS handshakes on the proxy listener by kind (handshake, timeout).",
            &mut out,
        );
        self.client_errors.render(
            "portcullis_client_errors_total",
            "Requests refused for the client's framing, head or body, by kind.",
            &mut out,
        );
        self.upgraded_connections.render(
            "portcullis_upgraded_connections_total",
            "Upgraded (WebSocket) connections by how they ended.",
            &mut out,
        );
        self.upgraded_bytes.render(
            "portcullis_upgraded_bytes_total",
            "Bytes through upgraded connections by direction, counted when they end.",
            &mut out,
        );
        self.cache_purges.render(
            "portcullis_cache_purges_total",
            "Cache purges received from the control plane, by cache.",
            &mut out,
        );
        self.session_revocations.render(
            "portcullis_session_revocations_total",
            "Session revocations (back-channel logout) applied, by where they came from.",
            &mut out,
        );
        let gauges = [
            (
                "portcullis_config_version",
                "Version of the live configuration.",
                "gauge",
                self.config_version.load(Ordering::Relaxed),
            ),
            (
                "portcullis_config_applied_total",
                "Snapshots applied.",
                "counter",
                self.config_applied.load(Ordering::Relaxed),
            ),
            (
                "portcullis_config_rejected_total",
                "Snapshots rejected.",
                "counter",
                self.config_rejected.load(Ordering::Relaxed),
            ),
            (
                "portcullis_connections",
                "Open downstream connections.",
                "gauge",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "portcullis_lkg_degraded",
                "1 while the applied config could not be stored as last-known-good.",
                "gauge",
                self.lkg_degraded.load(Ordering::Relaxed),
            ),
            (
                "portcullis_lkg_write_errors_total",
                "Failed last-known-good writes.",
                "counter",
                self.lkg_write_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, kind, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}
