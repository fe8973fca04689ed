//! Kong-compatible entities: Service, Route, Consumer, Plugin, ACL (Certificate and SNI are in
//! [`crate::tls`]).
//!
//! Each entity is parsed from JSON through [`crate::schema::Fields`], so validation errors name their field,
//! defaults are filled in and unknown fields are rejected. PATCH is "merge into the current JSON, then parse
//! the whole", so every stored entity passed the same checks.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::StateError;
use crate::keyword::Keyword;
use crate::plugins;
use crate::protocol::Protocol;
use crate::schema::{FieldErrors, Fields};

mod acl;
mod consumer_group;
mod references;
mod route;
mod service;

pub use acl::Acl;
pub use consumer_group::{ConsumerGroup, ConsumerGroupMember};
pub(crate) use references::{finish, parse_id, read_ref, References};

/// The entity collections, by their Admin API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/services`
    Service,
    /// `/routes`
    Route,
    /// `/consumers`
    Consumer,
    /// `/plugins`
    Plugin,
    /// `/certificates`
    Certificate,
    /// `/snis`
    Sni,
    /// `/ca_certificates`
    CaCertificate,
    /// `/upstreams`
    Upstream,
    /// `/targets`
    Target,
    /// `/acls`
    Acl,
    /// `/consumer_groups`
    ConsumerGroup,
    /// A Consumer's membership of a consumer group (no endpoint of its own, as in Kong).
    ConsumerGroupMember,
}

impl Kind {
    /// The collection name (`services`).
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Route => "routes",
            Kind::Consumer => "consumers",
            Kind::Plugin => "plugins",
            Kind::Certificate => "certificates",
            Kind::Sni => "snis",
            Kind::CaCertificate => "ca_certificates",
            Kind::Upstream => "upstreams",
            Kind::Target => "targets",
            Kind::Acl => "acls",
            Kind::ConsumerGroup => "consumer_groups",
            Kind::ConsumerGroupMember => "consumer_group_consumers",
        }
    }

    /// The singular (`service`): the field by which other entities refer to one of this kind.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Route => "route",
            Kind::Consumer => "consumer",
            Kind::Plugin => "plugin",
            Kind::Certificate => "certificate",
            Kind::Sni => "sni",
            Kind::CaCertificate => "ca_certificate",
            Kind::Upstream => "upstream",
            Kind::Target => "target",
            Kind::Acl => "acl",
            Kind::ConsumerGroup => "consumer_group",
            Kind::ConsumerGroupMember => "consumer_group_consumer",
        }
    }

    /// The kind whose collection is `name` (`services`).
    pub fn from_collection(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.collection() == name)
    }

    /// False for a kind the Admin API reaches only through other entities' paths (memberships).
    pub fn has_endpoints(self) -> bool {
        self != Kind::ConsumerGroupMember
    }

    /// All kinds in dependency order (referenced entities first).
    pub const ALL: [Kind; 12] = [
        Kind::CaCertificate,
        Kind::Certificate,
        Kind::Sni,
        Kind::Upstream,
        Kind::Target,
        Kind::Service,
        Kind::Consumer,
        Kind::ConsumerGroup,
        Kind::ConsumerGroupMember,
        Kind::Acl,
        Kind::Route,
        Kind::Plugin,
    ];
}

/// Kong's Route fields this gateway does not match on (sent only empty, read back as `null`).
pub fn route_unmatched() -> &'static [&'static str] {
    &route::UNMATCHED
}

/// Looks up entities by id or by their unique name while parsing references.
pub trait Resolver {
    /// The id of the entity of `kind` whose id, or name (username for consumers), is `key`.
    fn resolve(&self, kind: Kind, key: &str) -> Option<Uuid>;
}

/// What the parser needs besides the input: the id and timestamps to assign, and a reference resolver.
pub struct ParseCtx<'a> {
    /// The id to use when the input has none.
    pub id: Uuid,
    /// Unix seconds of this change.
    pub now: i64,
    /// `created_at` of the entity being replaced, if any.
    pub created_at: Option<i64>,
    /// Resolves references to other entities.
    pub resolver: &'a dyn Resolver,
}

/// A reference to another entity as Kong serialises it: `{"id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referenced entity's id.
    pub id: Uuid,
}

/// An upstream API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: Uuid,
    pub name: Option<String>,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub path: Option<String>,
    pub retries: u32,
    pub connect_timeout: u64,
    pub write_timeout: u64,
    pub read_timeout: u64,
    pub enabled: bool,
    pub tls_verify: Option<bool>,
    /// Depth of the upstream's verified chain: at most this many intermediates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify_depth: Option<u32>,
    /// The Certificate presented to the upstream (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ForeignKey>,
    /// CA Certificates trusted for the upstream instead of the node's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<Vec<Uuid>>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A rule that matches client requests and sends them to a Service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub id: Uuid,
    pub name: Option<String>,
    pub protocols: Vec<String>,
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    pub headers: BTreeMap<String, Vec<String>>,
    pub regex_priority: i64,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub path_handling: String,
    pub https_redirect_status_code: u16,
    pub request_buffering: bool,
    pub response_buffering: bool,
    pub service: Option<ForeignKey>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The list fields given as an empty array: Kong shows them as `[]`, and the unset ones as `null`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub given_empty: BTreeSet<RouteList>,
}

crate::keywords! {
    /// A Route's list field that is `null` while unset and `[]` once given empty.
    #[derive(PartialOrd, Ord)]
    pub enum RouteList {
        Methods = "methods",
        Hosts = "hosts",
        Paths = "paths",
        Tags = "tags",
    }
}

/// A user or application of the APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub id: Uuid,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A plugin instance, global or scoped to a Service, Route and/or Consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    pub id: Uuid,
    pub name: String,
    pub instance_name: Option<String>,
    /// The plugin's config, validated and with every default filled in.
    pub config: Value,
    pub enabled: bool,
    pub protocols: Vec<String>,
    pub service: Option<ForeignKey>,
    pub route: Option<ForeignKey>,
    pub consumer: Option<ForeignKey>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Entity names (and a plugin's `instance_name`), as Kong's `utf8_name`: any non-ASCII character, and of
/// ASCII only letters, digits, `.`, `-`, `_` and `~`. Shared with the OpenAPI document.
pub const NAME_PATTERN: &str = r"^([A-Za-z0-9._~-]|[^\x00-\x7F])+$";

/// Why a name does not match [`NAME_PATTERN`] (Kong's wording).
const INVALID_NAME: &str = "the only accepted ascii characters are alphanumerics or ., -, _, and ~";

fn name_pattern() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(NAME_PATTERN).expect("static regex"))
}

fn host_pattern() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?)*\.?)$")
            .expect("static regex")
    })
}

/// Common fields every entity has: id, tags, timestamps.
pub(crate) fn read_common(f: &mut Fields<'_>, ctx: &ParseCtx<'_>) -> (Uuid, Vec<String>, i64) {
    let id = match f.opt_string("id") {
        // Only the hyphenated form (36 characters), as Kong writes and reads ids.
        Some(s) => match parse_id(&s) {
            Some(id) => id,
            None => {
                f.error("id", "expected a valid UUID");
                ctx.id
            }
        },
        None => ctx.id,
    };
    let tags = f.strings("tags");
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.contains(',') || t.contains('/') {
            f.error(
                &format!("tags.{}", i + 1),
                "tags must be non-empty and cannot contain ',' or '/'",
            );
        }
    }
    // Timestamps are assigned by the server; inputs may carry them (exports) but they are not trusted.
    let created = f.opt_int("created_at", 0, i64::MAX);
    f.ignore("updated_at");
    let created_at = ctx.created_at.or(created).unwrap_or(ctx.now);
    (id, tags, created_at)
}

fn read_name(f: &mut Fields<'_>) -> Option<String> {
    let name = f.opt_string("name")?;
    if !name_pattern().is_match(&name) {
        f.error("name", format!("invalid value '{name}': {INVALID_NAME}"));
    }
    Some(name)
}

/// Checks a host name without port: optionally one leading (`*.example.com`) or trailing (`example.*`)
/// wildcard label.
pub fn validate_host_name(name: &str) -> Result<(), &'static str> {
    let stars = name.matches('*').count();
    if stars > 1 {
        return Err("invalid wildcard: must have at most one wildcard");
    }
    if stars == 1 && !(name.starts_with("*.") || name.ends_with(".*")) {
        return Err("invalid wildcard: must be placed at leftmost or rightmost label");
    }
    let plain = name.trim_start_matches("*.").trim_end_matches(".*");
    if plain.is_empty() || !host_pattern().is_match(plain) {
        return Err("invalid hostname");
    }
    Ok(())
}

impl Consumer {
    /// Parses and validates a Consumer.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Consumer, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let username = f.opt_string("username").filter(|s| !s.is_empty());
        let custom_id = f.opt_string("custom_id").filter(|s| !s.is_empty());
        if username.is_none() && custom_id.is_none() {
            f.error(
                "@entity",
                "at least one of these fields must be non-empty: 'custom_id', 'username'",
            );
        }
        let c = Consumer {
            id,
            username,
            custom_id,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, References::new(), c)
    }
}

impl Plugin {
    /// Parses and validates a Plugin, including its `config` through the plugin's own schema.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Plugin, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = f.string("name").unwrap_or_default();
        let instance_name = f.opt_string("instance_name");
        if let Some(n) = &instance_name {
            if !name_pattern().is_match(n) {
                f.error(
                    "instance_name",
                    format!("invalid value '{n}': {INVALID_NAME}"),
                );
            }
        }
        let enabled = f.bool_or("enabled", true);
        let protocols = f
            .opt_many_of("protocols", &Protocol::names())
            .unwrap_or_else(|| Protocol::names().into_iter().map(String::from).collect());
        let service = read_ref(&mut f, &mut refs, ctx, "service", Kind::Service);
        let route = read_ref(&mut f, &mut refs, ctx, "route", Kind::Route);
        let consumer = read_ref(&mut f, &mut refs, ctx, "consumer", Kind::Consumer);
        let empty = Value::Object(Map::new());
        let raw_config = f
            .raw("config")
            .filter(|v| !v.is_null())
            .unwrap_or(&empty)
            .clone();
        let mut config = Value::Null;
        if consumer.is_some() && !plugins::takes_consumer(&name) {
            f.error("consumer", "value must be null");
        }
        if !name.is_empty() && !plugins::is_supported(&name) {
            f.error("name", plugins::not_enabled(&name));
        } else if !raw_config.is_object() {
            // Kong's wording, on the field itself.
            f.error("config", "expected a record");
        } else if !name.is_empty() {
            match plugins::validate_config(&name, &raw_config, ctx.resolver) {
                Ok(c) => config = c,
                Err(e) => f.errors.merge_under("config", e),
            }
        }
        let p = Plugin {
            id,
            name,
            instance_name,
            config,
            enabled,
            protocols,
            service,
            route,
            consumer,
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, refs, p)
    }

    /// A copy whose secret config fields are replaced by [`plugins::REDACTED`].
    pub fn redacted(&self) -> Plugin {
        let mut p = self.clone();
        plugins::redact(&p.name, &mut p.config);
        p
    }
}

/// Merges `patch` into `base` (objects recursively; anything else replaces), as PATCH does.
pub fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_json(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Builds a `FieldErrors` with a single entry (helper for callers outside this module).
pub fn field_error(path: &str, message: &str) -> FieldErrors {
    let mut e = FieldErrors::new();
    e.add(path, message);
    e
}

#[cfg(test)]
mod tests;
