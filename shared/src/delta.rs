//! Deltas: the entity changes between two config versions, as the control plane logs them and sends them
//! to nodes, and their application to a state with a consistency check of what they touch.
//!
//! Wire form: a JSON array of `{"op":"put","kind":"routes","entity":{…}}` and
//! `{"op":"delete","kind":"routes","id":"…"}`, applied in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::entity::Kind;
use crate::plugins;
use crate::state::{Change, ConfigState, Entity};

/// Above this many changes a delta is checked like a full state (one pass over everything) instead of
/// change by change (each change scans its kind for unique names).
const LOCAL_CHECK_LIMIT: usize = 64;

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum WireChange {
    Put { kind: String, entity: Value },
    Delete { kind: String, id: Uuid },
}

fn kind_of(name: &str) -> Result<Kind, String> {
    Kind::ALL
        .into_iter()
        .find(|k| k.collection() == name)
        .ok_or_else(|| format!("unknown entity kind '{name}'"))
}

/// Encodes changes for the log and the wire (secrets included: both are private to the cluster).
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    let wire: Vec<WireChange> = changes
        .iter()
        .map(|c| match c {
            Change::Put(e) => WireChange::Put {
                kind: e.kind().collection().to_string(),
                entity: e.to_json(),
            },
            Change::Delete(kind, id) => WireChange::Delete {
                kind: kind.collection().to_string(),
                id: *id,
            },
        })
        .collect();
    serde_json::to_vec(&wire).expect("changes serialise")
}

/// Decodes changes; every malformed element is an error naming its position.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, String> {
    let wire: Vec<WireChange> =
        serde_json::from_slice(bytes).map_err(|e| format!("changes are not valid: {e}"))?;
    wire.into_iter()
        .enumerate()
        .map(|(i, w)| {
            let at = |e: String| format!("change {i}: {e}");
            match w {
                WireChange::Put { kind, entity } => {
                    let kind = kind_of(&kind).map_err(at)?;
                    Entity::from_stored(kind, entity)
                        .map(Change::Put)
                        .map_err(|e| at(e.to_string()))
                }
                WireChange::Delete { kind, id } => {
                    Ok(Change::Delete(kind_of(&kind).map_err(at)?, id))
                }
            }
        })
        .collect()
}

/// The last change of each entity, in the order of those last changes: what several versions' changes
/// amount to, for one message that spans them.
pub fn compact(changes: impl IntoIterator<Item = Change>) -> Vec<Change> {
    let all: Vec<Change> = changes.into_iter().collect();
    let key = |c: &Change| match c {
        Change::Put(e) => (e.kind(), e.id()),
        Change::Delete(k, id) => (*k, *id),
    };
    let mut last = std::collections::HashMap::with_capacity(all.len());
    for (i, c) in all.iter().enumerate() {
        last.insert(key(c), i);
    }
    all.into_iter()
        .enumerate()
        .filter(|(i, c)| last[&key(c)] == *i)
        .map(|(_, c)| c)
        .collect()
}

impl ConfigState {
    /// Applies changes (in order) and checks that the result is consistent where they touched it: unique
    /// fields and references of what was put, nothing left referring to what was deleted, plugin configs
    /// valid. A delete says the entity is absent afterwards: of several versions compacted into one delta,
    /// an entity created and deleted in between arrives as a delete of something the node never had.
    /// Whether the result is the sender's state is for the content hash to tell. On error the state is
    /// unusable and must be dropped.
    pub fn apply_changes(&mut self, changes: &[Change]) -> Result<(), String> {
        for change in changes {
            match change {
                Change::Put(e) => self.insert_entity(e.clone()),
                Change::Delete(kind, id) => {
                    self.remove_entity(*kind, id);
                }
            }
        }
        self.check_delta(changes)
    }

    /// Checks a state that `changes` led to: where they touched it when they are few, everything when
    /// they are many (a change-by-change check scans its kind for unique names).
    pub fn check_delta(&self, changes: &[Change]) -> Result<(), String> {
        if changes.len() > LOCAL_CHECK_LIMIT {
            return self.check().map_err(|p| p.join("; "));
        }
        self.check_changes(changes)
    }

    fn check_changes(&self, changes: &[Change]) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut consumers_changed = false;
        for change in changes {
            match change {
                Change::Put(e) => {
                    // The entity as it now is (a later change of the same delta may have replaced it).
                    let Some(current) = self.get(e.kind(), &e.id()) else {
                        continue;
                    };
                    if let Err(err) = self.check_entity(&current) {
                        problems.push(format!("{} {}: {err}", e.kind().collection(), e.id()));
                    }
                    consumers_changed |= e.kind() == Kind::Consumer;
                }
                Change::Delete(kind, id) => {
                    if self.get(*kind, id).is_some() {
                        continue;
                    }
                    if let Some(holder) = self.referrer_of(*kind, id) {
                        problems.push(format!(
                            "{} {id} was deleted but {holder} still refers to it",
                            kind.collection()
                        ));
                    }
                    consumers_changed |= *kind == Kind::Consumer;
                }
            }
        }
        // A plugin's `anonymous` names a Consumer by id or username: any Consumer change may break it.
        if consumers_changed {
            problems.extend(
                self.plugins
                    .values()
                    .filter_map(|p| self.plugin_config_problem(p)),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn check_entity(&self, e: &Entity) -> Result<(), String> {
        self.check_unique(e).map_err(|x| x.to_string())?;
        self.check_refs(e).map_err(|x| x.to_string())?;
        if let Entity::Plugin(p) = e {
            plugins::validate_config(&p.name, &p.config, self)
                .map_err(|x| format!("invalid config: {}", x.summary()))?;
        }
        Ok(())
    }

    /// Something that still refers to the entity `kind`/`id`, described.
    fn referrer_of(&self, kind: Kind, id: &Uuid) -> Option<String> {
        let is = |fk: &Option<crate::entity::ForeignKey>| fk.map(|f| f.id) == Some(*id);
        match kind {
            Kind::Service => self
                .routes
                .values()
                .find(|r| is(&r.service))
                .map(|r| format!("route {}", r.id))
                .or_else(|| {
                    self.plugins
                        .values()
                        .find(|p| is(&p.service))
                        .map(|p| format!("plugin {}", p.id))
                }),
            Kind::Route => self
                .plugins
                .values()
                .find(|p| is(&p.route))
                .map(|p| format!("plugin {}", p.id)),
            Kind::Consumer => self
                .plugins
                .values()
                .find(|p| is(&p.consumer))
                .map(|p| format!("plugin {}", p.id))
                .or_else(|| {
                    self.acls
                        .values()
                        .find(|a| a.consumer.id == *id)
                        .map(|a| format!("acl {}", a.id))
                })
                .or_else(|| self.member_of(|m| m.consumer.id == *id)),
            Kind::Certificate => self
                .snis
                .values()
                .find(|n| n.certificate.id == *id)
                .map(|n| format!("sni {}", n.id))
                .or_else(|| {
                    self.services
                        .values()
                        .find(|s| s.client_certificate.map(|f| f.id) == Some(*id))
                        .map(|s| format!("service {}", s.id))
                }),
            Kind::CaCertificate => self
                .services
                .values()
                .find(|s| s.ca_certificates.iter().flatten().any(|c| c == id))
                .map(|s| format!("service {}", s.id)),
            Kind::Upstream => self
                .targets
                .values()
                .find(|t| t.upstream.id == *id)
                .map(|t| format!("target {}", t.id)),
            Kind::ConsumerGroup => self.member_of(|m| m.consumer_group.id == *id),
            Kind::Plugin | Kind::Sni | Kind::Target | Kind::Acl | Kind::ConsumerGroupMember => None,
        }
    }

    /// The first membership that `is` picks, named.
    fn member_of(&self, is: impl Fn(&crate::ConsumerGroupMember) -> bool) -> Option<String> {
        self.consumer_group_consumers
            .values()
            .find(|m| is(m))
            .map(|m| format!("consumer group membership {}", m.id))
    }

    /// Inserts or replaces an entity without any check (for a state already checked, such as one loaded
    /// from the store that committed it).
    pub fn insert_entity(&mut self, e: Entity) {
        match e {
            Entity::Service(s) => {
                self.services.insert(s.id, s);
            }
            Entity::Route(r) => {
                self.routes.insert(r.id, r);
            }
            Entity::Consumer(c) => {
                self.consumers.insert(c.id, c);
            }
            Entity::Plugin(p) => {
                self.plugins.insert(p.id, p);
            }
            Entity::Certificate(c) => {
                self.certificates.insert(c.id, c);
            }
            Entity::Sni(n) => {
                self.snis.insert(n.id, n);
            }
            Entity::CaCertificate(c) => {
                self.ca_certificates.insert(c.id, c);
            }
            Entity::Upstream(u) => {
                self.upstreams.insert(u.id, u);
            }
            Entity::Target(t) => {
                self.targets.insert(t.id, t);
            }
            Entity::Acl(a) => {
                self.acls.insert(a.id, a);
            }
            Entity::ConsumerGroup(g) => {
                self.consumer_groups.insert(g.id, g);
            }
            Entity::ConsumerGroupMember(m) => {
                self.consumer_group_consumers.insert(m.id, m);
            }
        }
    }

    fn remove_entity(&mut self, kind: Kind, id: &Uuid) {
        match kind {
            Kind::Service => self.services.remove(id).map(drop),
            Kind::Route => self.routes.remove(id).map(drop),
            Kind::Consumer => self.consumers.remove(id).map(drop),
            Kind::Plugin => self.plugins.remove(id).map(drop),
            Kind::Certificate => self.certificates.remove(id).map(drop),
            Kind::Sni => self.snis.remove(id).map(drop),
            Kind::CaCertificate => self.ca_certificates.remove(id).map(drop),
            Kind::Upstream => self.upstreams.remove(id).map(drop),
            Kind::Target => self.targets.remove(id).map(drop),
            Kind::Acl => self.acls.remove(id).map(drop),
            Kind::ConsumerGroup => self.consumer_groups.remove(id).map(drop),
            Kind::ConsumerGroupMember => self.consumer_group_consumers.remove(id).map(drop),
        };
    }

    /// The changes that turn `self` into `target` (deletes of plugins and routes before what they refer to,
    /// puts of what is referred to first), for logging a whole replacement as one delta.
    pub fn diff(&self, target: &ConfigState) -> Vec<Change> {
        let mut changes = Vec::new();
        for kind in Kind::ALL.into_iter().rev() {
            for e in self.list_ids(kind) {
                if target.get(kind, &e).is_none() {
                    changes.push(Change::Delete(kind, e));
                }
            }
        }
        for kind in Kind::ALL {
            for e in target.list(kind) {
                if self.get(kind, &e.id()).as_ref() != Some(&e) {
                    changes.push(Change::Put(e));
                }
            }
        }
        changes
    }

    fn list_ids(&self, kind: Kind) -> Vec<Uuid> {
        match kind {
            Kind::Service => self.services.keys().copied().collect(),
            Kind::Route => self.routes.keys().copied().collect(),
            Kind::Consumer => self.consumers.keys().copied().collect(),
            Kind::Plugin => self.plugins.keys().copied().collect(),
            Kind::Certificate => self.certificates.keys().copied().collect(),
            Kind::Sni => self.snis.keys().copied().collect(),
            Kind::CaCertificate => self.ca_certificates.keys().copied().collect(),
            Kind::Upstream => self.upstreams.keys().copied().collect(),
            Kind::Target => self.targets.keys().copied().collect(),
            Kind::Acl => self.acls.keys().copied().collect(),
            Kind::ConsumerGroup => self.consumer_groups.keys().copied().collect(),
            Kind::ConsumerGroupMember => self.consumer_group_consumers.keys().copied().collect(),
        }
    }
}
