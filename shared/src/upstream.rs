//! Load-balancing entities: an Upstream (a virtual host name Services point at with their `host`, its
//! balancing algorithm, hashing inputs and health checks) and its Targets (`host:port` with a weight),
//! with Kong's shapes and defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::entity::{
    finish, read_common, read_ref, validate_host_name, ForeignKey, Kind, ParseCtx, References,
};
use crate::error::StateError;
use crate::http_syntax;
use crate::schema::Fields;

crate::keywords! {
    /// How an Upstream picks a Target for a request.
    pub enum Algorithm {
        RoundRobin = "round-robin",
        ConsistentHashing = "consistent-hashing",
        LeastConnections = "least-connections",
    }
}

crate::keywords! {
    /// What consistent hashing hashes.
    pub enum HashOn { None = "none", Consumer = "consumer", Ip = "ip", Header = "header", Cookie = "cookie" }
}

crate::keywords! {
    /// How active probes talk to a Target.
    pub enum ProbeType { Http = "http", Https = "https", Tcp = "tcp" }
}

/// When a Target counts as healthy again. `interval` (seconds between probes of a healthy Target; 0:
/// none) is for active checks only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    pub successes: u32,
    pub http_statuses: Vec<u16>,
}

/// When a Target counts as unhealthy: after this many failures of a kind in a row (0: never for that
/// kind). `interval` is for active checks only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unhealthy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    pub http_failures: u32,
    pub tcp_failures: u32,
    pub timeouts: u32,
    pub http_statuses: Vec<u16>,
}

/// Probes the node sends to each Target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveChecks {
    #[serde(rename = "type")]
    pub kind: ProbeType,
    pub http_path: String,
    /// Seconds a probe may take.
    pub timeout: f64,
    pub concurrency: u32,
    pub https_verify_certificate: bool,
    pub https_sni: Option<String>,
    /// Headers sent with each probe.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    pub healthy: Healthy,
    pub unhealthy: Unhealthy,
}

/// What real traffic tells about each Target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassiveChecks {
    #[serde(rename = "type")]
    pub kind: ProbeType,
    pub healthy: Healthy,
    pub unhealthy: Unhealthy,
}

/// An Upstream's health checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthchecks {
    pub active: ActiveChecks,
    pub passive: PassiveChecks,
    /// Percentage of weight that must be healthy for the Upstream to be used at all.
    pub threshold: f64,
}

/// A virtual host balancing over its Targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    pub id: Uuid,
    pub name: String,
    pub algorithm: Algorithm,
    pub hash_on: HashOn,
    pub hash_fallback: HashOn,
    pub hash_on_header: Option<String>,
    pub hash_fallback_header: Option<String>,
    pub hash_on_cookie: Option<String>,
    pub hash_on_cookie_path: String,
    pub slots: u32,
    /// Boxed: the largest part, and read only when a balancer is built.
    pub healthchecks: Box<Healthchecks>,
    pub host_header: Option<String>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One backend of an Upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: Uuid,
    /// `host:port`, the port added (8000, as Kong) when not given.
    pub target: String,
    pub weight: u32,
    pub upstream: ForeignKey,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SUCCESS_STATUSES: [u16; 19] = [
    200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
];

impl Healthchecks {
    /// Whether anything watches the Targets' health: active probes with an interval, or a passive
    /// failure threshold (otherwise Kong reports `HEALTHCHECKS_OFF`).
    pub fn enabled(&self) -> bool {
        let a = &self.active;
        let p = &self.passive.unhealthy;
        a.healthy.interval.unwrap_or(0.0) > 0.0
            || a.unhealthy.interval.unwrap_or(0.0) > 0.0
            || p.http_failures + p.tcp_failures + p.timeouts > 0
    }
}

impl Default for Healthchecks {
    fn default() -> Healthchecks {
        Healthchecks {
            active: ActiveChecks {
                kind: ProbeType::Http,
                http_path: "/".into(),
                timeout: 1.0,
                concurrency: 10,
                https_verify_certificate: true,
                https_sni: None,
                headers: None,
                healthy: Healthy {
                    interval: Some(0.0),
                    successes: 0,
                    http_statuses: vec![200, 302],
                },
                unhealthy: Unhealthy {
                    interval: Some(0.0),
                    http_failures: 0,
                    tcp_failures: 0,
                    timeouts: 0,
                    http_statuses: vec![429, 404, 500, 501, 502, 503, 504, 505],
                },
            },
            passive: PassiveChecks {
                kind: ProbeType::Http,
                healthy: Healthy {
                    interval: None,
                    successes: 0,
                    http_statuses: SUCCESS_STATUSES.to_vec(),
                },
                unhealthy: Unhealthy {
                    interval: None,
                    http_failures: 0,
                    tcp_failures: 0,
                    timeouts: 0,
                    http_statuses: vec![429, 500, 503],
                },
            },
            threshold: 0.0,
        }
    }
}

/// A number of seconds within `[0, max]` (integers and decimals).
fn seconds(f: &mut Fields<'_>, name: &str, max: f64, default: f64) -> f64 {
    match f.raw(name) {
        None => default,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| (0.0..=max).contains(&x)) => {
            n.as_f64().unwrap_or(default)
        }
        Some(_) => {
            f.error(name, format!("expected a number between 0 and {max}"));
            default
        }
    }
}

/// HTTP statuses (100–999).
fn statuses(f: &mut Fields<'_>, name: &str, default: &[u16]) -> Vec<u16> {
    match f.raw(name) {
        None => default.to_vec(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_u64().filter(|s| (100..=999).contains(s)) {
                    Some(s) => out.push(s as u16),
                    None => f.error(
                        &format!("{name}.{}", i + 1),
                        "expected an HTTP status between 100 and 999",
                    ),
                }
            }
            out
        }
        Some(Value::Object(m)) if m.is_empty() => Vec::new(),
        Some(_) => {
            f.error(name, "expected an array of HTTP statuses");
            default.to_vec()
        }
    }
}

fn counter(f: &mut Fields<'_>, name: &str, default: u32) -> u32 {
    f.int_or(name, 0, 255, i64::from(default)) as u32
}

/// Reads the object at `f[name]` with `read`, errors going under its path; `None` when absent.
fn nested<T>(f: &mut Fields<'_>, name: &str, read: impl FnOnce(&mut Fields<'_>) -> T) -> Option<T> {
    let raw = f.raw(name)?;
    let path = f.path(name);
    match Fields::new(raw, &path) {
        Ok(mut inner) => {
            let value = read(&mut inner);
            let errors = inner.finish();
            f.errors.merge_under("", errors);
            Some(value)
        }
        Err(errors) => {
            f.errors.merge_under("", errors);
            None
        }
    }
}

fn healthy(f: &mut Fields<'_>, d: &Healthy) -> Healthy {
    Healthy {
        interval: d.interval.map(|i| seconds(f, "interval", 65535.0, i)),
        successes: counter(f, "successes", d.successes),
        http_statuses: statuses(f, "http_statuses", &d.http_statuses),
    }
}

fn unhealthy(f: &mut Fields<'_>, d: &Unhealthy) -> Unhealthy {
    Unhealthy {
        interval: d.interval.map(|i| seconds(f, "interval", 65535.0, i)),
        http_failures: counter(f, "http_failures", d.http_failures),
        tcp_failures: counter(f, "tcp_failures", d.tcp_failures),
        timeouts: counter(f, "timeouts", d.timeouts),
        http_statuses: statuses(f, "http_statuses", &d.http_statuses),
    }
}

fn healthchecks(f: &mut Fields<'_>) -> Healthchecks {
    let d = Healthchecks::default();
    nested(f, "healthchecks", |f| {
        let active = nested(f, "active", |f| ActiveChecks {
            kind: f.opt_keyword("type").unwrap_or(d.active.kind),
            http_path: f.opt_string("http_path").map_or_else(
                || d.active.http_path.clone(),
                |p| {
                    if !p.starts_with('/') || !http_syntax::is_service_path(&p) {
                        f.error("http_path", "should start with: / and be a valid path");
                    }
                    p
                },
            ),
            timeout: seconds(f, "timeout", 65535.0, d.active.timeout),
            concurrency: f.int_or("concurrency", 1, 2_147_483_648, 10) as u32,
            https_verify_certificate: f.bool_or("https_verify_certificate", true),
            https_sni: f.opt_string("https_sni"),
            headers: probe_headers(f),
            healthy: nested(f, "healthy", |f| healthy(f, &d.active.healthy))
                .unwrap_or_else(|| d.active.healthy.clone()),
            unhealthy: nested(f, "unhealthy", |f| unhealthy(f, &d.active.unhealthy))
                .unwrap_or_else(|| d.active.unhealthy.clone()),
        });
        let passive = nested(f, "passive", |f| PassiveChecks {
            kind: f.opt_keyword("type").unwrap_or(d.passive.kind),
            healthy: nested(f, "healthy", |f| healthy(f, &d.passive.healthy))
                .unwrap_or_else(|| d.passive.healthy.clone()),
            unhealthy: nested(f, "unhealthy", |f| unhealthy(f, &d.passive.unhealthy))
                .unwrap_or_else(|| d.passive.unhealthy.clone()),
        });
        Healthchecks {
            active: active.unwrap_or_else(|| d.active.clone()),
            passive: passive.unwrap_or_else(|| d.passive.clone()),
            threshold: seconds(f, "threshold", 100.0, 0.0),
        }
    })
    .unwrap_or(d)
}

/// `headers` of active probes: a map of header names to a value or a list of values.
fn probe_headers(f: &mut Fields<'_>) -> Option<BTreeMap<String, Vec<String>>> {
    let raw = f.raw("headers")?;
    let Value::Object(map) = raw else {
        f.error("headers", "expected a map of header names to values");
        return None;
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let field = format!("headers.{name}");
        let values: Vec<String> = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => {
                f.error(&field, "expected a string or an array of strings");
                continue;
            }
        };
        f.check(
            &field,
            name,
            http_syntax::is_header_name,
            http_syntax::INVALID_HEADER_NAME,
        );
        for value in &values {
            f.check(
                &field,
                value,
                http_syntax::is_header_value,
                http_syntax::INVALID_HEADER_VALUE,
            );
        }
        out.insert(name.to_ascii_lowercase(), values);
    }
    Some(out)
}

fn header_name(f: &mut Fields<'_>, name: &str) -> Option<String> {
    let h = f.opt_string(name)?;
    f.check(
        name,
        &h,
        http_syntax::is_header_name,
        http_syntax::INVALID_HEADER_NAME,
    );
    Some(h.to_ascii_lowercase())
}

impl Upstream {
    /// Parses and validates an Upstream: its name is a host name, and a hash on a header or a cookie
    /// names it.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Upstream, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = f.string("name").unwrap_or_default();
        if !name.is_empty() && (name.contains('*') || validate_host_name(&name).is_err()) {
            f.error("name", "invalid hostname");
        }
        let algorithm = f.opt_keyword("algorithm").unwrap_or(Algorithm::RoundRobin);
        let hash_on = f.opt_keyword("hash_on").unwrap_or(HashOn::None);
        let hash_fallback = f.opt_keyword("hash_fallback").unwrap_or(HashOn::None);
        let hash_on_header = header_name(&mut f, "hash_on_header");
        let hash_fallback_header = header_name(&mut f, "hash_fallback_header");
        let hash_on_cookie = f.opt_string("hash_on_cookie");
        if let Some(c) = &hash_on_cookie {
            if c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                f.error("hash_on_cookie", "invalid cookie name");
            }
        }
        let hash_on_cookie_path = f
            .opt_string("hash_on_cookie_path")
            .unwrap_or_else(|| "/".into());
        if !hash_on_cookie_path.starts_with('/')
            || !http_syntax::is_service_path(&hash_on_cookie_path)
        {
            f.error(
                "hash_on_cookie_path",
                "should start with: / and be a valid path",
            );
        }
        let slots = f.int_or("slots", 10, 65536, 10_000) as u32;
        let healthchecks = healthchecks(&mut f);
        let host_header = f.opt_string("host_header");
        if host_header
            .as_deref()
            .is_some_and(|h| validate_host_name(h).is_err() || h.contains('*'))
        {
            f.error("host_header", "invalid hostname");
        }
        let needs = |on: HashOn, header: &Option<String>, field: &str, f: &mut Fields<'_>| {
            if on == HashOn::Header && header.is_none() {
                f.error(
                    field,
                    format!(
                        "required when '{}' is 'header'",
                        field.replace("_header", "")
                    ),
                );
            }
        };
        needs(hash_on, &hash_on_header, "hash_on_header", &mut f);
        needs(
            hash_fallback,
            &hash_fallback_header,
            "hash_fallback_header",
            &mut f,
        );
        if (hash_on == HashOn::Cookie || hash_fallback == HashOn::Cookie)
            && hash_on_cookie.is_none()
        {
            f.error("hash_on_cookie", "required when hashing on 'cookie'");
        }
        if hash_on == HashOn::None && hash_fallback != HashOn::None {
            f.error("hash_fallback", "must be 'none' when 'hash_on' is 'none'");
        }
        if hash_on == HashOn::Cookie && hash_fallback != HashOn::None {
            f.error("hash_fallback", "must be 'none' when 'hash_on' is 'cookie'");
        }
        if hash_on != HashOn::None && hash_on == hash_fallback && hash_on != HashOn::Header {
            f.error("hash_fallback", "must differ from 'hash_on'");
        }
        let u = Upstream {
            id,
            name: name.to_ascii_lowercase(),
            algorithm,
            hash_on,
            hash_fallback,
            hash_on_header,
            hash_fallback_header,
            hash_on_cookie,
            hash_on_cookie_path,
            slots,
            healthchecks: Box::new(healthchecks),
            host_header,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, References::new(), u)
    }
}

/// A Target's `host:port`, parsed once for everyone who needs its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAddr {
    /// The host as written (an IPv6 address keeps its brackets), lower-cased.
    pub host: String,
    pub port: u16,
    /// The host's address when it is an IP address (it then never needs resolving).
    pub ip: Option<std::net::IpAddr>,
}

impl TargetAddr {
    /// Splits `host:port` (`[v6]:port`), adding Kong's default port 8000.
    pub fn parse(target: &str) -> Result<TargetAddr, &'static str> {
        let (host, port) = match target.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                (h, p.parse::<u16>().map_err(|_| "invalid port number")?)
            }
            _ => (target, 8000),
        };
        if port == 0 {
            return Err("invalid port number");
        }
        let ip = bare(host).parse::<std::net::IpAddr>().ok();
        if ip.is_none() && (host.contains('*') || validate_host_name(host).is_err()) {
            return Err("invalid target: expected host:port with a host name or IP address");
        }
        Ok(TargetAddr {
            host: host.to_ascii_lowercase(),
            port,
            ip,
        })
    }

    /// The host without an IPv6 address's brackets: what a resolver is asked.
    pub fn bare(&self) -> &str {
        bare(&self.host)
    }
}

fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The normalised `host:port` a Target is stored as.
impl std::fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Target {
    /// The Target in the shape of Kong's health endpoints, with its `health` (`HEALTHY`, `UNHEALTHY` or
    /// `HEALTHCHECKS_OFF`).
    pub fn health_view(&self, health: &str) -> Value {
        serde_json::json!({
            "id": self.id,
            "target": self.target,
            "weight": self.weight,
            "upstream": {"id": self.upstream.id},
            "tags": self.tags,
            "created_at": self.created_at,
            "health": health,
        })
    }

    /// Parses and validates a Target: `host:port` (the port defaults to 8000), a weight of 0–65535 (0
    /// takes it out of rotation) and the Upstream it belongs to.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Target, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let raw = f.string("target").unwrap_or_default();
        let target = match (raw.is_empty(), TargetAddr::parse(&raw)) {
            (true, _) => String::new(),
            (false, Ok(addr)) => addr.to_string(),
            (false, Err(m)) => {
                f.error("target", m);
                raw
            }
        };
        let weight = f.int_or("weight", 0, 65535, 100) as u32;
        let upstream = read_ref(&mut f, &mut refs, ctx, "upstream", Kind::Upstream);
        if upstream.is_none() && !f.has("upstream") {
            f.error("upstream", "required field missing");
        }
        let t = Target {
            id,
            target,
            weight,
            upstream: upstream.unwrap_or(ForeignKey { id: Uuid::nil() }),
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, refs, t)
    }
}

#[cfg(test)]
mod tests;
