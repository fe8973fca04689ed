//! The rules every write and every snapshot obeys: unique fields, references that resolve, what a delete
//! takes with it or is refused for, and the whole-state consistency check.

use std::collections::HashSet;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{Change, ConfigState, Entity};
use crate::entity::{Kind, Plugin};
use crate::error::StateError;
use crate::plugins;

impl ConfigState {
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
            Entity::Acl(a) => {
                self.acls.insert(a.id, a.clone());
            }
            Entity::ConsumerGroup(g) => {
                self.consumer_groups.insert(g.id, g.clone());
            }
            Entity::ConsumerGroupMember(m) => {
                self.consumer_group_consumers.insert(m.id, m.clone());
            }
        }
        Ok(vec![Change::Put(entity)])
    }

    pub(crate) fn check_unique(&self, e: &Entity) -> Result<(), StateError> {
        let conflict = |field: &str, value: &str| Err(StateError::unique(json!({ field: value })));
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
                    return Err(StateError::unique(json!({
                        "consumer": fk_json(&p.consumer),
                        "name": p.name,
                        "route": fk_json(&p.route),
                        "service": fk_json(&p.service),
                    })));
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
                    return Err(StateError::unique(json!({
                        "target": t.target,
                        "upstream": {"id": t.upstream.id.to_string()},
                    })));
                }
            }
            Entity::Acl(a) => {
                if self
                    .acls
                    .values()
                    .any(|o| o.id != a.id && o.consumer == a.consumer && o.group == a.group)
                {
                    return Err(StateError::unique(json!({
                        "consumer": {"id": a.consumer.id.to_string()},
                        "group": a.group,
                    })));
                }
            }
            Entity::ConsumerGroup(_) | Entity::ConsumerGroupMember(_) => {
                self.check_group_unique(e)?;
            }
            Entity::Certificate(_) => {}
        }
        Ok(())
    }

    pub(crate) fn check_refs(&self, e: &Entity) -> Result<(), StateError> {
        let missing = |field: &str, id: &Uuid, kind: Kind| {
            Err(StateError::missing_reference(field, id, kind))
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
            Entity::Acl(a) if !self.consumers.contains_key(&a.consumer.id) => {
                return missing("consumer", &a.consumer.id, Kind::Consumer);
            }
            Entity::ConsumerGroupMember(m) => self.check_member_refs(m)?,
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
    /// refused; plugins scoped to a removed Service, Route or Consumer are removed with it, the ACLs and
    /// consumer-group memberships of a removed Consumer, the memberships of a removed consumer group, the
    /// Targets of a removed Upstream and the SNIs of a removed Certificate.
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
                    return Err(StateError::referenced_by("routes", Kind::Service, None));
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
                    return Err(StateError::referenced_by(
                        "plugins",
                        Kind::Consumer,
                        Some(format!(
                            "this consumer is the 'anonymous' consumer of plugin '{}' ({})",
                            p.name, p.id
                        )),
                    ));
                }
                self.consumers.remove(id);
                let acls: Vec<Uuid> = self
                    .acls
                    .values()
                    .filter(|a| a.consumer.id == *id)
                    .map(|a| a.id)
                    .collect();
                for aid in acls {
                    self.acls.remove(&aid);
                    changes.push(Change::Delete(Kind::Acl, aid));
                }
                changes.extend(self.remove_memberships(|m| m.consumer.id == *id));
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
                    return Err(StateError::referenced_by(
                        "services",
                        Kind::Certificate,
                        Some(format!(
                            "service {} uses this certificate as its 'client_certificate'",
                            s.id
                        )),
                    ));
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
            Kind::Acl => {
                self.acls.remove(id);
            }
            Kind::ConsumerGroup => {
                self.consumer_groups.remove(id);
                changes.extend(self.remove_memberships(|m| m.consumer_group.id == *id));
            }
            Kind::ConsumerGroupMember => {
                self.consumer_group_consumers.remove(id);
            }
            Kind::CaCertificate => {
                if let Some(s) = self
                    .services
                    .values()
                    .find(|s| s.ca_certificates.iter().flatten().any(|c| c == id))
                {
                    return Err(StateError::referenced_by(
                        "services",
                        Kind::CaCertificate,
                        Some(format!(
                            "service {} trusts this CA certificate in 'ca_certificates'",
                            s.id
                        )),
                    ));
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
        let mut memberships = HashSet::new();
        for a in self.acls.values() {
            if !self.consumers.contains_key(&a.consumer.id) {
                problems.push(format!(
                    "acl {}: consumer {} does not exist",
                    a.id, a.consumer.id
                ));
            }
            if !memberships.insert((a.consumer.id, a.group.as_str())) {
                problems.push(format!(
                    "acl {}: its consumer holds group '{}' twice",
                    a.id, a.group
                ));
            }
        }
        problems.extend(self.group_problems());
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
}

fn fk_json(fk: &Option<crate::entity::ForeignKey>) -> Value {
    match fk {
        Some(f) => json!({ "id": f.id.to_string() }),
        None => Value::Null,
    }
}
