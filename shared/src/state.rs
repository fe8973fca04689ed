//! The desired configuration as a plain value, with the operations the Admin API performs on it and the
//! consistency check every snapshot must pass before it is published or applied.

use std::collections::HashSet;

use imbl::OrdMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::digest::StateDigest;
use crate::entity::{Consumer, Kind, Plugin, Resolver, Route, Service};
use crate::error::StateError;
use crate::plugins;
use crate::tls::{CaCertificate, Certificate, Sni};
use crate::upstream::{Target, Upstream};

/// One entity of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Service(Service),
    Route(Route),
    Consumer(Consumer),
    Plugin(Plugin),
    Certificate(Certificate),
    Sni(Sni),
    CaCertificate(CaCertificate),
    Upstream(Upstream),
    Target(Target),
}

impl Entity {
    /// The entity's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Entity::Service(_) => Kind::Service,
            Entity::Route(_) => Kind::Route,
            Entity::Consumer(_) => Kind::Consumer,
            Entity::Plugin(_) => Kind::Plugin,
            Entity::Certificate(_) => Kind::Certificate,
            Entity::Sni(_) => Kind::Sni,
            Entity::CaCertificate(_) => Kind::CaCertificate,
            Entity::Upstream(_) => Kind::Upstream,
            Entity::Target(_) => Kind::Target,
        }
    }

    /// The entity's id.
    pub fn id(&self) -> Uuid {
        match self {
            Entity::Service(e) => e.id,
            Entity::Route(e) => e.id,
            Entity::Consumer(e) => e.id,
            Entity::Plugin(e) => e.id,
            Entity::Certificate(e) => e.id,
            Entity::Sni(e) => e.id,
            Entity::CaCertificate(e) => e.id,
            Entity::Upstream(e) => e.id,
            Entity::Target(e) => e.id,
        }
    }

    /// The entity as stored (secrets included).
    pub fn to_json(&self) -> Value {
        match self {
            Entity::Service(e) => serde_json::to_value(e),
            Entity::Route(e) => serde_json::to_value(e),
            Entity::Consumer(e) => serde_json::to_value(e),
            Entity::Plugin(e) => serde_json::to_value(e),
            Entity::Certificate(e) => serde_json::to_value(e),
            Entity::Sni(e) => serde_json::to_value(e),
            Entity::CaCertificate(e) => serde_json::to_value(e),
            Entity::Upstream(e) => serde_json::to_value(e),
            Entity::Target(e) => serde_json::to_value(e),
        }
        .expect("entities serialise")
    }

    /// The entity as the Admin API shows it (secrets redacted).
    pub fn to_public_json(&self) -> Value {
        match self {
            Entity::Plugin(p) => serde_json::to_value(p.redacted()).expect("entities serialise"),
            Entity::Certificate(c) => {
                serde_json::to_value(c.redacted()).expect("entities serialise")
            }
            other => other.to_json(),
        }
    }

    /// The entity's tags.
    pub fn tags(&self) -> &[String] {
        match self {
            Entity::Service(e) => &e.tags,
            Entity::Route(e) => &e.tags,
            Entity::Consumer(e) => &e.tags,
            Entity::Plugin(e) => &e.tags,
            Entity::Certificate(e) => &e.tags,
            Entity::Sni(e) => &e.tags,
            Entity::CaCertificate(e) => &e.tags,
            Entity::Upstream(e) => &e.tags,
            Entity::Target(e) => &e.tags,
        }
    }

    /// `created_at` of the entity.
    pub fn created_at(&self) -> i64 {
        match self {
            Entity::Service(e) => e.created_at,
            Entity::Route(e) => e.created_at,
            Entity::Consumer(e) => e.created_at,
            Entity::Plugin(e) => e.created_at,
            Entity::Certificate(e) => e.created_at,
            Entity::Sni(e) => e.created_at,
            Entity::CaCertificate(e) => e.created_at,
            Entity::Upstream(e) => e.created_at,
            Entity::Target(e) => e.created_at,
        }
    }

    /// Parses and validates an entity of `kind` from an Admin API or declarative body.
    pub fn parse(kind: Kind, v: &Value, ctx: &crate::ParseCtx<'_>) -> Result<Entity, StateError> {
        Ok(match kind {
            Kind::Service => Entity::Service(Service::parse(v, ctx)?),
            Kind::Route => Entity::Route(Route::parse(v, ctx)?),
            Kind::Consumer => Entity::Consumer(Consumer::parse(v, ctx)?),
            Kind::Plugin => Entity::Plugin(Plugin::parse(v, ctx)?),
            Kind::Certificate => Entity::Certificate(Certificate::parse(v, ctx)?),
            Kind::Sni => Entity::Sni(Sni::parse(v, ctx)?),
            Kind::CaCertificate => Entity::CaCertificate(CaCertificate::parse(v, ctx)?),
            Kind::Upstream => Entity::Upstream(Upstream::parse(v, ctx)?),
            Kind::Target => Entity::Target(Target::parse(v, ctx)?),
        })
    }

    /// Decodes a stored entity of `kind`.
    pub fn from_stored(kind: Kind, v: Value) -> Result<Entity, serde_json::Error> {
        Ok(match kind {
            Kind::Service => Entity::Service(serde_json::from_value(v)?),
            Kind::Route => Entity::Route(serde_json::from_value(v)?),
            Kind::Consumer => Entity::Consumer(serde_json::from_value(v)?),
            Kind::Plugin => Entity::Plugin(serde_json::from_value(v)?),
            Kind::Certificate => Entity::Certificate(serde_json::from_value(v)?),
            Kind::Sni => Entity::Sni(serde_json::from_value(v)?),
            Kind::CaCertificate => Entity::CaCertificate(serde_json::from_value(v)?),
            Kind::Upstream => Entity::Upstream(serde_json::from_value(v)?),
            Kind::Target => Entity::Target(serde_json::from_value(v)?),
        })
    }
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived, built once per write
pub enum Change {
    /// Insert or replace an entity.
    Put(Entity),
    /// Remove an entity.
    Delete(Kind, Uuid),
}

/// The whole configuration: every Service, Route, Consumer, Plugin, Certificate, SNI, CA Certificate,
/// Upstream and Target, keyed by id.
///
/// The maps are persistent (structurally shared): cloning a state costs O(1) and a changed copy shares
/// every untouched entity with the original, so a write on the control plane and a delta on a node never
/// copy a large configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigState {
    pub services: OrdMap<Uuid, Service>,
    pub routes: OrdMap<Uuid, Route>,
    pub consumers: OrdMap<Uuid, Consumer>,
    pub plugins: OrdMap<Uuid, Plugin>,
    #[serde(default)]
    pub certificates: OrdMap<Uuid, Certificate>,
    #[serde(default)]
    pub snis: OrdMap<Uuid, Sni>,
    #[serde(default)]
    pub ca_certificates: OrdMap<Uuid, CaCertificate>,
    #[serde(default)]
    pub upstreams: OrdMap<Uuid, Upstream>,
    #[serde(default)]
    pub targets: OrdMap<Uuid, Target>,
}

impl Resolver for ConfigState {
    fn resolve(&self, kind: Kind, key: &str) -> Option<Uuid> {
        let by_id = Uuid::parse_str(key).ok();
        match kind {
            Kind::Service => by_id
                .filter(|id| self.services.contains_key(id))
                .or_else(|| {
                    self.services
                        .values()
                        .find(|s| s.name.as_deref() == Some(key))
                        .map(|s| s.id)
                }),
            Kind::Route => by_id.filter(|id| self.routes.contains_key(id)).or_else(|| {
                self.routes
                    .values()
                    .find(|r| r.name.as_deref() == Some(key))
                    .map(|r| r.id)
            }),
            Kind::Consumer => by_id
                .filter(|id| self.consumers.contains_key(id))
                .or_else(|| {
                    self.consumers
                        .values()
                        .find(|c| c.username.as_deref() == Some(key))
                        .map(|c| c.id)
                }),
            Kind::Plugin => by_id
                .filter(|id| self.plugins.contains_key(id))
                .or_else(|| {
                    self.plugins
                        .values()
                        .find(|p| p.instance_name.as_deref() == Some(key))
                        .map(|p| p.id)
                }),
            // Certificates have no name: only their id.
            Kind::Certificate => by_id.filter(|id| self.certificates.contains_key(id)),
            Kind::CaCertificate => by_id.filter(|id| self.ca_certificates.contains_key(id)),
            Kind::Upstream => by_id
                .filter(|id| self.upstreams.contains_key(id))
                .or_else(|| {
                    let name = key.to_ascii_lowercase();
                    self.upstreams
                        .values()
                        .find(|u| u.name == name)
                        .map(|u| u.id)
                }),
            Kind::Target => by_id.filter(|id| self.targets.contains_key(id)),
            Kind::Sni => by_id.filter(|id| self.snis.contains_key(id)).or_else(|| {
                self.snis
                    .values()
                    .find(|s| s.name.eq_ignore_ascii_case(key))
                    .map(|s| s.id)
            }),
        }
    }
}

impl ConfigState {
    /// Looks up an entity by kind and id.
    pub fn get(&self, kind: Kind, id: &Uuid) -> Option<Entity> {
        match kind {
            Kind::Service => self.services.get(id).cloned().map(Entity::Service),
            Kind::Route => self.routes.get(id).cloned().map(Entity::Route),
            Kind::Consumer => self.consumers.get(id).cloned().map(Entity::Consumer),
            Kind::Plugin => self.plugins.get(id).cloned().map(Entity::Plugin),
            Kind::Certificate => self.certificates.get(id).cloned().map(Entity::Certificate),
            Kind::Sni => self.snis.get(id).cloned().map(Entity::Sni),
            Kind::CaCertificate => self
                .ca_certificates
                .get(id)
                .cloned()
                .map(Entity::CaCertificate),
            Kind::Upstream => self.upstreams.get(id).cloned().map(Entity::Upstream),
            Kind::Target => self.targets.get(id).cloned().map(Entity::Target),
        }
    }

    /// Every entity of `kind`, ordered by id.
    pub fn list(&self, kind: Kind) -> Vec<Entity> {
        match kind {
            Kind::Service => self
                .services
                .values()
                .cloned()
                .map(Entity::Service)
                .collect(),
            Kind::Route => self.routes.values().cloned().map(Entity::Route).collect(),
            Kind::Consumer => self
                .consumers
                .values()
                .cloned()
                .map(Entity::Consumer)
                .collect(),
            Kind::Plugin => self.plugins.values().cloned().map(Entity::Plugin).collect(),
            Kind::Certificate => self
                .certificates
                .values()
                .cloned()
                .map(Entity::Certificate)
                .collect(),
            Kind::Sni => self.snis.values().cloned().map(Entity::Sni).collect(),
            Kind::CaCertificate => self
                .ca_certificates
                .values()
                .cloned()
                .map(Entity::CaCertificate)
                .collect(),
            Kind::Upstream => self
                .upstreams
                .values()
                .cloned()
                .map(Entity::Upstream)
                .collect(),
            Kind::Target => self.targets.values().cloned().map(Entity::Target).collect(),
        }
    }

    /// Number of entities of all kinds.
    pub fn len(&self) -> usize {
        self.services.len()
            + self.routes.len()
            + self.consumers.len()
            + self.plugins.len()
            + self.certificates.len()
            + self.snis.len()
            + self.ca_certificates.len()
            + self.upstreams.len()
            + self.targets.len()
    }

    /// True when there is no entity at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts or replaces an entity after checking unique fields and references.
    pub fn put(&mut self, entity: Entity) -> Result<Vec<Change>, StateError> {
        self.check_unique(&entity)?;
        self.check_refs(&entity)?;
        match &entity {
            Entity::Service(s) => {
                self.services.insert(s.id, s.clone());
            }
            Entity::Route(r) => {
                self.routes.insert(r.id, r.clone());
            }
            Entity::Consumer(c) => {
                self.consumers.insert(c.id, c.clone());
            }
            Entity::Plugin(p) => {
                self.plugins.insert(p.id, p.clone());
            }
            Entity::Certificate(c) => {
                self.certificates.insert(c.id, c.clone());
            }
            Entity::Sni(n) => {
                self.snis.insert(n.id, n.clone());
            }
            Entity::CaCertificate(c) => {
                self.ca_certificates.insert(c.id, c.clone());
            }
            Entity::Upstream(u) => {
                self.upstreams.insert(u.id, u.clone());
            }
            Entity::Target(t) => {
                self.targets.insert(t.id, t.clone());
            }
        }
        Ok(vec![Change::Put(entity)])
    }

    pub(crate) fn check_unique(&self, e: &Entity) -> Result<(), StateError> {
        let conflict = |field: &str, value: &str| {
            Err(StateError::Unique(format!(
                "UNIQUE violation detected on '{{{field}=\"{value}\"}}'"
            )))
        };
        match e {
            Entity::Service(s) => {
                if let Some(n) = &s.name {
                    if self
                        .services
                        .values()
                        .any(|o| o.id != s.id && o.name.as_ref() == Some(n))
                    {
                        return conflict("name", n);
                    }
                }
            }
            Entity::Route(r) => {
                if let Some(n) = &r.name {
                    if self
                        .routes
                        .values()
                        .any(|o| o.id != r.id && o.name.as_ref() == Some(n))
                    {
                        return conflict("name", n);
                    }
                }
            }
            Entity::Consumer(c) => {
                if let Some(n) = &c.username {
                    if self
                        .consumers
                        .values()
                        .any(|o| o.id != c.id && o.username.as_ref() == Some(n))
                    {
                        return conflict("username", n);
                    }
                }
                if let Some(n) = &c.custom_id {
                    if self
                        .consumers
                        .values()
                        .any(|o| o.id != c.id && o.custom_id.as_ref() == Some(n))
                    {
                        return conflict("custom_id", n);
                    }
                }
            }
            Entity::Plugin(p) => {
                let same_scope = self.plugins.values().find(|o| {
                    o.id != p.id
                        && o.name == p.name
                        && o.service == p.service
                        && o.route == p.route
                        && o.consumer == p.consumer
                });
                if same_scope.is_some() {
                    return Err(StateError::Unique(format!(
                        "UNIQUE violation detected on '{{consumer={},name=\"{}\",route={},service={}}}'",
                        fk_text(&p.consumer),
                        p.name,
                        fk_text(&p.route),
                        fk_text(&p.service)
                    )));
                }
                if let Some(n) = &p.instance_name {
                    if self
                        .plugins
                        .values()
                        .any(|o| o.id != p.id && o.instance_name.as_ref() == Some(n))
                    {
                        return conflict("instance_name", n);
                    }
                }
            }
            Entity::Sni(n) => {
                if self.snis.values().any(|o| o.id != n.id && o.name == n.name) {
                    return conflict("name", &n.name);
                }
            }
            Entity::CaCertificate(c) => {
                if self
                    .ca_certificates
                    .values()
                    .any(|o| o.id != c.id && o.cert_digest == c.cert_digest)
                {
                    return conflict("cert_digest", &c.cert_digest);
                }
            }
            Entity::Upstream(u) => {
                if self
                    .upstreams
                    .values()
                    .any(|o| o.id != u.id && o.name == u.name)
                {
                    return conflict("name", &u.name);
                }
            }
            Entity::Target(t) => {
                if self
                    .targets
                    .values()
                    .any(|o| o.id != t.id && o.upstream == t.upstream && o.target == t.target)
                {
                    return Err(StateError::Unique(format!(
                        "UNIQUE violation detected on '{{target=\"{}\",upstream={{id=\"{}\"}}}}'",
                        t.target, t.upstream.id
                    )));
                }
            }
            Entity::Certificate(_) => {}
        }
        Ok(())
    }

    pub(crate) fn check_refs(&self, e: &Entity) -> Result<(), StateError> {
        let missing = |field: &str, id: &Uuid, kind: Kind| {
            Err(StateError::ForeignKey(format!(
                "the foreign key '{{id=\"{id}\"}}' in field '{field}' does not reference an existing '{}' entity",
                kind.collection()
            )))
        };
        match e {
            Entity::Route(r) => {
                if let Some(fk) = &r.service {
                    if !self.services.contains_key(&fk.id) {
                        return missing("service", &fk.id, Kind::Service);
                    }
                }
            }
            Entity::Sni(n) if !self.certificates.contains_key(&n.certificate.id) => {
                return missing("certificate", &n.certificate.id, Kind::Certificate);
            }
            Entity::Target(t) if !self.upstreams.contains_key(&t.upstream.id) => {
                return missing("upstream", &t.upstream.id, Kind::Upstream);
            }
            Entity::Service(s) => {
                if let Some(fk) = &s.client_certificate {
                    if !self.certificates.contains_key(&fk.id) {
                        return missing("client_certificate", &fk.id, Kind::Certificate);
                    }
                }
                let cas = s.ca_certificates.iter().flatten();
                if let Some(id) = cas
                    .into_iter()
                    .find(|id| !self.ca_certificates.contains_key(id))
                {
                    return missing("ca_certificates", id, Kind::CaCertificate);
                }
            }
            Entity::Plugin(p) => {
                for (field, fk, kind, exists) in [
                    (
                        "service",
                        &p.service,
                        Kind::Service,
                        p.service.map(|f| self.services.contains_key(&f.id)),
                    ),
                    (
                        "route",
                        &p.route,
                        Kind::Route,
                        p.route.map(|f| self.routes.contains_key(&f.id)),
                    ),
                    (
                        "consumer",
                        &p.consumer,
                        Kind::Consumer,
                        p.consumer.map(|f| self.consumers.contains_key(&f.id)),
                    ),
                ] {
                    if exists == Some(false) {
                        return missing(field, &fk.expect("checked above").id, kind);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes an entity. A Service still used by Routes, or a Consumer used as a plugin's `anonymous`, is
    /// refused; plugins scoped to a removed Service, Route or Consumer are removed with it, and the SNIs of
    /// a removed Certificate.
    pub fn delete(&mut self, kind: Kind, id: &Uuid) -> Result<Vec<Change>, StateError> {
        if self.get(kind, id).is_none() {
            return Err(StateError::NotFound);
        }
        let mut changes = vec![Change::Delete(kind, *id)];
        match kind {
            Kind::Service => {
                if self
                    .routes
                    .values()
                    .any(|r| r.service.map(|f| f.id) == Some(*id))
                {
                    return Err(StateError::ForeignKey(
                        "an existing 'routes' entity references this 'services' entity".into(),
                    ));
                }
                self.services.remove(id);
            }
            Kind::Route => {
                self.routes.remove(id);
            }
            Kind::Consumer => {
                let consumer = &self.consumers[id];
                let keys = [Some(id.to_string()), consumer.username.clone()];
                if let Some(p) = self.plugins.values().find(|p| {
                    p.config
                        .get("anonymous")
                        .and_then(Value::as_str)
                        .is_some_and(|a| keys.iter().flatten().any(|k| k == a))
                }) {
                    return Err(StateError::ForeignKey(format!(
                        "this consumer is the 'anonymous' consumer of plugin '{}' ({})",
                        p.name, p.id
                    )));
                }
                self.consumers.remove(id);
            }
            Kind::Plugin => {
                self.plugins.remove(id);
            }
            Kind::Certificate => {
                if let Some(s) = self
                    .services
                    .values()
                    .find(|s| s.client_certificate.map(|f| f.id) == Some(*id))
                {
                    return Err(StateError::ForeignKey(format!(
                        "service {} uses this certificate as its 'client_certificate'",
                        s.id
                    )));
                }
                self.certificates.remove(id);
                let snis: Vec<Uuid> = self
                    .snis
                    .values()
                    .filter(|s| s.certificate.id == *id)
                    .map(|s| s.id)
                    .collect();
                for sid in snis {
                    self.snis.remove(&sid);
                    changes.push(Change::Delete(Kind::Sni, sid));
                }
            }
            Kind::Sni => {
                self.snis.remove(id);
            }
            Kind::Upstream => {
                self.upstreams.remove(id);
                let targets: Vec<Uuid> = self
                    .targets
                    .values()
                    .filter(|t| t.upstream.id == *id)
                    .map(|t| t.id)
                    .collect();
                for tid in targets {
                    self.targets.remove(&tid);
                    changes.push(Change::Delete(Kind::Target, tid));
                }
            }
            Kind::Target => {
                self.targets.remove(id);
            }
            Kind::CaCertificate => {
                if let Some(s) = self
                    .services
                    .values()
                    .find(|s| s.ca_certificates.iter().flatten().any(|c| c == id))
                {
                    return Err(StateError::ForeignKey(format!(
                        "service {} trusts this CA certificate in 'ca_certificates'",
                        s.id
                    )));
                }
                self.ca_certificates.remove(id);
            }
        }
        let scoped: Vec<Uuid> = self
            .plugins
            .values()
            .filter(|p| {
                let scope = match kind {
                    Kind::Service => p.service,
                    Kind::Route => p.route,
                    Kind::Consumer => p.consumer,
                    _ => None,
                };
                scope.map(|f| f.id) == Some(*id)
            })
            .map(|p| p.id)
            .collect();
        for pid in scoped {
            self.plugins.remove(&pid);
            changes.push(Change::Delete(Kind::Plugin, pid));
        }
        Ok(changes)
    }

    /// Checks that the state is self-consistent: unique fields, every reference resolves and every plugin
    /// config is valid for its schema. Returns every problem found.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for s in self.services.values() {
            if let Some(n) = &s.name {
                if !seen.insert(("service", n.clone())) {
                    problems.push(format!("services: duplicate name '{n}'"));
                }
            }
            if let Err(e) = self.check_refs(&Entity::Service(s.clone())) {
                problems.push(format!("service {}: {e}", s.id));
            }
        }
        for c in self.ca_certificates.values() {
            if !seen.insert(("cert_digest", c.cert_digest.clone())) {
                problems.push(format!(
                    "ca_certificates: duplicate cert_digest '{}'",
                    c.cert_digest
                ));
            }
        }
        for r in self.routes.values() {
            if let Some(n) = &r.name {
                if !seen.insert(("route", n.clone())) {
                    problems.push(format!("routes: duplicate name '{n}'"));
                }
            }
            if let Some(fk) = r.service {
                if !self.services.contains_key(&fk.id) {
                    problems.push(format!("route {}: service {} does not exist", r.id, fk.id));
                }
            }
        }
        for c in self.consumers.values() {
            if let Some(n) = &c.username {
                if !seen.insert(("username", n.clone())) {
                    problems.push(format!("consumers: duplicate username '{n}'"));
                }
            }
        }
        for n in self.snis.values() {
            if !seen.insert(("sni", n.name.clone())) {
                problems.push(format!("snis: duplicate name '{}'", n.name));
            }
            if !self.certificates.contains_key(&n.certificate.id) {
                problems.push(format!(
                    "sni {}: certificate {} does not exist",
                    n.id, n.certificate.id
                ));
            }
        }
        for u in self.upstreams.values() {
            if !seen.insert(("upstream", u.name.clone())) {
                problems.push(format!("upstreams: duplicate name '{}'", u.name));
            }
        }
        let mut targets = HashSet::new();
        for t in self.targets.values() {
            if !self.upstreams.contains_key(&t.upstream.id) {
                problems.push(format!(
                    "target {}: upstream {} does not exist",
                    t.id, t.upstream.id
                ));
            }
            if !targets.insert((t.upstream.id, t.target.clone())) {
                problems.push(format!(
                    "target {}: '{}' is in its upstream twice",
                    t.id, t.target
                ));
            }
        }
        let mut scopes = HashSet::new();
        for p in self.plugins.values() {
            if !scopes.insert((p.name.clone(), p.service, p.route, p.consumer)) {
                problems.push(format!(
                    "plugin {}: another '{}' plugin has the same scope",
                    p.id, p.name
                ));
            }
            if let Err(e) = self.check_refs(&Entity::Plugin(p.clone())) {
                problems.push(format!("plugin {}: {e}", p.id));
            }
            problems.extend(self.plugin_config_problem(p));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// What is wrong with a plugin's config in this state (its schema, or a Consumer it names), if anything.
    pub(crate) fn plugin_config_problem(&self, p: &Plugin) -> Option<String> {
        plugins::validate_config(&p.name, &p.config, self)
            .err()
            .map(|e| {
                format!(
                    "plugin {} ({}): invalid config: {}",
                    p.id,
                    p.name,
                    e.summary()
                )
            })
    }

    /// The names of plugins used by enabled plugin entities.
    pub fn plugin_names(&self) -> std::collections::BTreeSet<String> {
        self.plugins.values().map(|p| p.name.clone()).collect()
    }
}

fn fk_text(fk: &Option<crate::entity::ForeignKey>) -> String {
    match fk {
        Some(f) => format!("{{id=\"{}\"}}", f.id),
        None => "null".into(),
    }
}

/// Encodes a state once for the wire and disk: deterministic JSON (maps are ordered).
pub fn encode(state: &ConfigState) -> Vec<u8> {
    serde_json::to_vec(state).expect("config state serialises")
}

/// Hex SHA-256 of bytes (a checksum of stored files).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decodes an encoded state, checks its consistency and that its content hash ([`StateDigest`]) is
/// `expected_hash`.
pub fn decode(payload: &[u8], expected_hash: &str) -> Result<(ConfigState, StateDigest), String> {
    let state: ConfigState = serde_json::from_slice(payload)
        .map_err(|e| format!("payload is not a valid config: {e}"))?;
    let digest = StateDigest::of(&state);
    let actual = digest.hex();
    if actual != expected_hash {
        return Err(format!(
            "hash mismatch: the config hashes to {actual}, expected {expected_hash}"
        ));
    }
    state.check().map_err(|p| p.join("; "))?;
    Ok((state, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ParseCtx;
    use serde_json::json;

    fn ctx(state: &ConfigState, n: u128) -> ParseCtx<'_> {
        ParseCtx {
            id: Uuid::from_u128(n),
            now: 1,
            created_at: None,
            resolver: state,
        }
    }

    fn add(
        state: &mut ConfigState,
        kind: Kind,
        v: Value,
        n: u128,
    ) -> Result<Vec<Change>, StateError> {
        let e = Entity::parse(kind, &v, &ctx(state, n))?;
        state.put(e)
    }

    fn sample() -> ConfigState {
        let mut s = ConfigState::default();
        add(
            &mut s,
            Kind::Service,
            json!({"name": "svc", "url": "http://up"}),
            1,
        )
        .unwrap();
        add(
            &mut s,
            Kind::Route,
            json!({"name": "r", "paths": ["/"], "service": {"name": "svc"}}),
            2,
        )
        .unwrap();
        add(&mut s, Kind::Consumer, json!({"username": "anon"}), 3).unwrap();
        add(
            &mut s,
            Kind::Plugin,
            json!({"name": "oauth2-introspection", "service": "svc", "config": {"introspection_url": "http://idp/i", "authorization_value": "x", "anonymous": "anon"}}),
            4,
        )
        .unwrap();
        s
    }

    #[test]
    fn unique_names_and_plugin_scopes() {
        let mut s = sample();
        let e = add(
            &mut s,
            Kind::Service,
            json!({"name": "svc", "url": "http://b"}),
            9,
        )
        .unwrap_err();
        assert!(matches!(e, StateError::Unique(_)));
        let e = add(
            &mut s,
            Kind::Plugin,
            json!({"name": "oauth2-introspection", "service": "svc", "config": {"introspection_url": "http://idp/i", "authorization_value": "x"}}),
            10,
        )
        .unwrap_err();
        assert!(matches!(e, StateError::Unique(_)), "{e:?}");
    }

    #[test]
    fn delete_rules() {
        let mut s = sample();
        let svc = Uuid::from_u128(1);
        assert!(matches!(
            s.delete(Kind::Service, &svc),
            Err(StateError::ForeignKey(_))
        ));
        assert!(matches!(
            s.delete(Kind::Consumer, &Uuid::from_u128(3)),
            Err(StateError::ForeignKey(_))
        ));
        s.delete(Kind::Route, &Uuid::from_u128(2)).unwrap();
        let changes = s.delete(Kind::Service, &svc).unwrap();
        assert_eq!(changes.len(), 2, "the service's plugin goes with it");
        assert!(s.plugins.is_empty());
        assert!(matches!(
            s.delete(Kind::Service, &svc),
            Err(StateError::NotFound)
        ));
    }

    #[test]
    fn encode_is_deterministic_and_checked() {
        let s = sample();
        let a = encode(&s);
        assert_eq!(a, encode(&s.clone()));
        let h = StateDigest::of(&s).hex();
        assert_eq!(decode(&a, &h).unwrap().0, s);
        assert!(decode(&a, "00").unwrap_err().contains("hash mismatch"));
        let mut broken = s.clone();
        broken.services.clear();
        let b = encode(&broken);
        assert!(decode(&b, &StateDigest::of(&broken).hex())
            .unwrap_err()
            .contains("does not exist"));
    }
}
