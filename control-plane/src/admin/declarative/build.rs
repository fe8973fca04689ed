//! Building a complete, consistent state from a declarative document.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use shared::{ConfigState, Entity, FieldErrors, Kind, ParseCtx, Resolver, StateError};
use uuid::Uuid;

use super::document::{elements, parse, Document, Sections};
use crate::admin::entities::{complete_secrets, parse_entity};
use crate::cluster::unix_now;

const FORMAT_VERSIONS: &[&str] = &["1.1", "2.1", "3.0"];
const TOP_LEVEL: &[&str] = &[
    "_format_version",
    "_transform",
    "_info",
    "_comment",
    "services",
    "routes",
    "consumers",
    "plugins",
    "certificates",
    "snis",
    "ca_certificates",
    "upstreams",
    "targets",
    "acls",
    "consumer_groups",
    "consumer_group_consumers",
];

/// An entity waiting for its turn: its error path, its JSON text (with its parent reference written in),
/// kept as text rather than a parsed tree so waiting costs what the body costs.
type Pending = (String, String);

/// Builds a complete, consistent state from a declarative document, reusing ids (and so `created_at`
/// and stored secrets) of entities that keep their natural key. Errors are reported with their paths
/// (the first [`shared::schema::MAX_FIELD_ERRORS`], then a count).
pub fn build_state(doc: &Document, old: &ConfigState) -> Result<ConfigState, FieldErrors> {
    let mut errors = FieldErrors::new();
    let sections = match doc.sections() {
        Ok(s) => s,
        // Kong's field for a document that is not an object at all.
        Err(e) => {
            errors.add(
                "error",
                format!("failed parsing declarative configuration: {e}"),
            );
            return Err(errors);
        }
    };
    match sections.get("_format_version").map(|raw| parse(raw)) {
        Some(Value::String(v)) if FORMAT_VERSIONS.contains(&v.as_str()) => {}
        Some(Value::String(v)) => errors.add(
            "_format_version",
            format!(
                "unsupported version '{v}'; expected one of {}",
                FORMAT_VERSIONS.join(", ")
            ),
        ),
        Some(_) => errors.add("_format_version", "expected a string"),
        None => errors.add("_format_version", "required field missing"),
    }
    // Kong's `_transform: false` says secrets are already transformed (hashed); Portcullis stores none
    // that it transforms, so either value reads the same.
    if let Some(raw) = sections.get("_transform") {
        if !parse(raw).is_boolean() {
            errors.add("_transform", "expected a boolean");
        }
    }
    for k in sections.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            errors.add(k.clone(), "unknown field");
        }
    }
    let mut b = Builder {
        new: ConfigState::default(),
        old,
        errors,
        now: unix_now(),
    };
    // CA certificates, certificates and their SNIs, services, consumers, routes, then plugins, so
    // references within the file resolve.
    for (i, raw) in items(&sections, "ca_certificates", &mut b.errors) {
        b.add(
            Kind::CaCertificate,
            &parse(raw),
            &format!("ca_certificates.{i}"),
        );
    }
    let mut pending_snis: Vec<Pending> = Vec::new();
    for (i, raw) in items(&sections, "certificates", &mut b.errors) {
        let path = format!("certificates.{i}");
        let mut cert = parse(raw);
        // `snis` may list plain names as well as SNI objects.
        if let Some(Value::Array(snis)) = cert.get_mut("snis") {
            for sni in snis.iter_mut().filter(|s| s.is_string()) {
                *sni = json!({ "name": sni.take() });
            }
        }
        let Some(id) = b.add(Kind::Certificate, &cert, &path) else {
            continue;
        };
        let parent = json!({ "id": id });
        pend(
            &cert,
            "snis",
            &path,
            ("certificate", &parent),
            &mut pending_snis,
            &mut b.errors,
        );
    }
    for (i, raw) in items(&sections, "snis", &mut b.errors) {
        pending_snis.push((format!("snis.{i}"), raw.get().to_string()));
    }
    for (path, text) in &pending_snis {
        let sni = serde_json::from_str(text).unwrap_or(Value::Null);
        b.add(Kind::Sni, &sni, path);
    }
    drop(pending_snis);
    let mut pending_targets: Vec<Pending> = Vec::new();
    for (i, raw) in items(&sections, "upstreams", &mut b.errors) {
        let path = format!("upstreams.{i}");
        let upstream = parse(raw);
        let Some(id) = b.add(Kind::Upstream, &upstream, &path) else {
            continue;
        };
        let parent = json!({ "id": id });
        pend(
            &upstream,
            "targets",
            &path,
            ("upstream", &parent),
            &mut pending_targets,
            &mut b.errors,
        );
    }
    for (i, raw) in items(&sections, "targets", &mut b.errors) {
        pending_targets.push((format!("targets.{i}"), raw.get().to_string()));
    }
    for (path, text) in &pending_targets {
        let target = serde_json::from_str(text).unwrap_or(Value::Null);
        b.add(Kind::Target, &target, path);
    }
    drop(pending_targets);
    let mut pending_routes: Vec<Pending> = Vec::new();
    let mut pending_plugins: Vec<Pending> = Vec::new();
    for (i, raw) in items(&sections, "services", &mut b.errors) {
        let path = format!("services.{i}");
        let svc = parse(raw);
        let Some(id) = b.add(Kind::Service, &svc, &path) else {
            continue;
        };
        let parent = json!({ "id": id });
        pend(
            &svc,
            "routes",
            &path,
            ("service", &parent),
            &mut pending_routes,
            &mut b.errors,
        );
        pend(
            &svc,
            "plugins",
            &path,
            ("service", &parent),
            &mut pending_plugins,
            &mut b.errors,
        );
    }
    let mut pending_acls: Vec<Pending> = Vec::new();
    for (i, raw) in items(&sections, "consumers", &mut b.errors) {
        let path = format!("consumers.{i}");
        let c = parse(raw);
        let Some(id) = b.add(Kind::Consumer, &c, &path) else {
            continue;
        };
        let parent = json!({ "id": id });
        pend(
            &c,
            "plugins",
            &path,
            ("consumer", &parent),
            &mut pending_plugins,
            &mut b.errors,
        );
        pend(
            &c,
            "acls",
            &path,
            ("consumer", &parent),
            &mut pending_acls,
            &mut b.errors,
        );
    }
    for (i, raw) in items(&sections, "acls", &mut b.errors) {
        pending_acls.push((format!("acls.{i}"), raw.get().to_string()));
    }
    for (path, text) in &pending_acls {
        let acl = serde_json::from_str(text).unwrap_or(Value::Null);
        b.add(Kind::Acl, &acl, path);
    }
    drop(pending_acls);
    consumer_groups(&sections, &mut b);
    for (i, raw) in items(&sections, "routes", &mut b.errors) {
        pending_routes.push((format!("routes.{i}"), raw.get().to_string()));
    }
    for (path, text) in &pending_routes {
        let r = serde_json::from_str(text).unwrap_or(Value::Null);
        let Some(id) = b.add(Kind::Route, &r, path) else {
            continue;
        };
        let parent = json!({ "id": id });
        pend(
            &r,
            "plugins",
            path,
            ("route", &parent),
            &mut pending_plugins,
            &mut b.errors,
        );
    }
    drop(pending_routes);
    for (i, raw) in items(&sections, "plugins", &mut b.errors) {
        pending_plugins.push((format!("plugins.{i}"), raw.get().to_string()));
    }
    for (path, text) in &pending_plugins {
        let p = serde_json::from_str(text).unwrap_or(Value::Null);
        b.add(Kind::Plugin, &p, path);
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    if let Err(problems) = b.new.check() {
        let mut errors = FieldErrors::new();
        errors.add("@entity", problems.join("; "));
        return Err(errors);
    }
    Ok(b.new)
}

fn already_declared(kind: Kind, key: &str) -> String {
    format!(
        "uniqueness violation: '{}' entity with {key} already declared",
        kind.collection()
    )
}

/// `name set to 'foo'` for the unique fields a conflict names (a reference by its id), joined by `and`.
fn unique_key(fields: &Value) -> String {
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("null")
            .to_string(),
        other => other.to_string(),
    };
    fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} set to '{}'", shown(v)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `consumer_groups` (each maybe listing its `consumers` by username or id, decK's shape) and
/// `consumer_group_consumers` (Kong's flat memberships), after the Consumers they name.
fn consumer_groups(sections: &Sections<'_>, b: &mut Builder<'_>) {
    let mut members: Vec<(String, Value)> = Vec::new();
    for (i, raw) in items(sections, "consumer_groups", &mut b.errors) {
        let path = format!("consumer_groups.{i}");
        let mut group = parse(raw);
        let listed = group.as_object_mut().and_then(|o| o.remove("consumers"));
        let Some(id) = b.add(Kind::ConsumerGroup, &group, &path) else {
            continue;
        };
        match listed {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (j, consumer) in list.into_iter().enumerate() {
                    let member = json!({"consumer_group": {"id": id}, "consumer": consumer});
                    members.push((format!("{path}.consumers.{}", j + 1), member));
                }
            }
            Some(_) => b
                .errors
                .add(format!("{path}.consumers"), "expected an array"),
        }
    }
    for (i, raw) in items(sections, "consumer_group_consumers", &mut b.errors) {
        members.push((format!("consumer_group_consumers.{i}"), parse(raw)));
    }
    for (path, member) in &members {
        b.add(Kind::ConsumerGroupMember, member, path);
    }
}

/// The elements of a top-level section, numbered from 1.
fn items<'a>(
    sections: &Sections<'a>,
    key: &str,
    errors: &mut FieldErrors,
) -> Vec<(usize, &'a RawValue)> {
    let Some(raw) = sections.get(key) else {
        return Vec::new();
    };
    match elements(raw) {
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect(),
        None => {
            errors.add(key, "expected an array");
            Vec::new()
        }
    }
}

/// Queues the entities nested under `parent[key]` with the parent's reference written in.
fn pend(
    parent: &Value,
    key: &str,
    path: &str,
    (field, reference): (&str, &Value),
    queue: &mut Vec<Pending>,
    errors: &mut FieldErrors,
) {
    match parent.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (j, item) in a.iter().enumerate() {
                let mut item = item.clone();
                if let Some(obj) = item.as_object_mut() {
                    obj.insert(field.to_string(), reference.clone());
                }
                queue.push((format!("{path}.{key}.{}", j + 1), item.to_string()));
            }
        }
        Some(_) => errors.add(format!("{path}.{key}"), "expected an array"),
    }
}

struct Builder<'a> {
    new: ConfigState,
    old: &'a ConfigState,
    errors: FieldErrors,
    now: i64,
}

impl Builder<'_> {
    /// Parses one entity into the new state; returns its id, or records its errors under `path`.
    fn add(&mut self, kind: Kind, raw: &Value, path: &str) -> Option<Uuid> {
        if !raw.is_object() {
            self.errors.add(path, "expected an object");
            return None;
        }
        let mut body = raw.clone();
        let id = self.stable_id(kind, &body);
        if let Some(obj) = body.as_object_mut() {
            for nested in super::NESTED_LISTS {
                obj.remove(*nested);
            }
            obj.insert("id".into(), Value::String(id.to_string()));
        }
        let existing = self.old.get(kind, &id);
        complete_secrets(&mut body, existing.as_ref());
        let ctx = ParseCtx {
            id,
            now: self.now,
            created_at: existing.as_ref().map(Entity::created_at),
            resolver: &self.new,
        };
        let result = parse_entity(kind, &body, &ctx).and_then(|e| {
            if self.new.get(kind, &e.id()).is_some() {
                return Err(StateError::PrimaryKey(e.id()));
            }
            self.new.put(e.clone()).map(|_| e.id())
        });
        match result {
            Ok(id) => Some(id),
            Err(StateError::Schema(f)) => {
                self.errors.merge_under(path, f);
                None
            }
            // Kong's wording for an entity declared twice, on the entity's own position.
            Err(StateError::PrimaryKey(id)) => {
                let key = format!("primary key set to '{id}'");
                self.errors.add(path, already_declared(kind, &key));
                None
            }
            Err(StateError::Unique { fields, .. }) => {
                self.errors
                    .add(path, already_declared(kind, &unique_key(&fields)));
                None
            }
            Err(e) => {
                self.errors.add(format!("{path}.@entity"), e.to_string());
                None
            }
        }
    }

    /// The id to give an entity: its own, else the id of the old entity with the same natural key, else new.
    fn stable_id(&self, kind: Kind, body: &Value) -> Uuid {
        if let Some(id) = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            return id;
        }
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let found = match kind {
            Kind::Service | Kind::Route | Kind::Sni | Kind::Upstream | Kind::ConsumerGroup => {
                s("name").and_then(|n| self.old.resolve(kind, n))
            }
            Kind::ConsumerGroupMember => {
                let named = |field: &str, kind: Kind| {
                    let r = body.get(field)?;
                    let key = ["id", "name", "username"]
                        .iter()
                        .find_map(|k| r.get(*k))
                        .unwrap_or(r)
                        .as_str()?;
                    self.new.resolve(kind, key)
                };
                let group = named("consumer_group", Kind::ConsumerGroup);
                let consumer = named("consumer", Kind::Consumer);
                group.zip(consumer).and_then(|(g, c)| {
                    self.old
                        .consumer_group_consumers
                        .values()
                        .find(|m| m.consumer_group.id == g && m.consumer.id == c)
                        .map(|m| m.id)
                })
            }
            Kind::Target => {
                let upstream = body
                    .get("upstream")
                    .and_then(|r| r.get("id").or(Some(r)))
                    .and_then(Value::as_str)
                    .and_then(|key| self.new.resolve(Kind::Upstream, key));
                let target = s("target").and_then(|t| shared::upstream::TargetAddr::parse(t).ok());
                upstream.zip(target).and_then(|(u, addr)| {
                    let name = addr.to_string();
                    self.old
                        .targets
                        .values()
                        .find(|t| t.upstream.id == u && t.target == name)
                        .map(|t| t.id)
                })
            }
            // A Certificate has no natural key: it keeps its id only when the document gives it.
            Kind::Certificate => None,
            Kind::Acl => {
                let consumer = body
                    .get("consumer")
                    .and_then(|r| r.get("id").or_else(|| r.get("username")).or(Some(r)))
                    .and_then(Value::as_str)
                    .and_then(|key| self.new.resolve(Kind::Consumer, key));
                consumer.zip(s("group")).and_then(|(c, group)| {
                    self.old
                        .acls
                        .values()
                        .find(|a| a.consumer.id == c && a.group == group)
                        .map(|a| a.id)
                })
            }
            Kind::CaCertificate => {
                let digest = s("cert")
                    .and_then(|pem| shared::tls::ca_der(pem).ok())
                    .map(|(der, _)| shared::digest::sha256_hex(&der));
                digest.and_then(|d| {
                    self.old
                        .ca_certificates
                        .values()
                        .find(|c| c.cert_digest == d)
                        .map(|c| c.id)
                })
            }
            Kind::Consumer => s("username")
                .and_then(|n| self.old.resolve(kind, n))
                .or_else(|| {
                    let cid = s("custom_id")?;
                    self.old
                        .consumers
                        .values()
                        .find(|c| c.custom_id.as_deref() == Some(cid))
                        .map(|c| c.id)
                }),
            Kind::Plugin => {
                let scope = |k: &str, kind: Kind| -> Option<Uuid> {
                    let r = body.get(k)?;
                    let key = r
                        .get("id")
                        .or_else(|| r.get("name"))
                        .and_then(Value::as_str)
                        .or(r.as_str())?;
                    self.new.resolve(kind, key)
                };
                let (svc, route, cons) = (
                    scope("service", Kind::Service),
                    scope("route", Kind::Route),
                    scope("consumer", Kind::Consumer),
                );
                s("name").and_then(|name| {
                    self.old
                        .plugins
                        .values()
                        .find(|p| {
                            p.name == name
                                && p.service.map(|f| f.id) == svc
                                && p.route.map(|f| f.id) == route
                                && p.consumer.map(|f| f.id) == cons
                        })
                        .map(|p| p.id)
                })
            }
        };
        found.unwrap_or_else(Uuid::new_v4)
    }
}
