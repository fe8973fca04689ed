//! What replacing the configuration changes, entity by entity: what `POST /config?dry_run=1` answers,
//! what `check_hash=1` tests for emptiness, and what `control-plane config diff` prints.

use serde_json::{json, Value};
use shared::{ConfigState, Entity, Kind};

/// What happens to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One entity's change, for people: its kind, id, what it is called, and the fields that differ.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityChange {
    pub action: Action,
    pub kind: Kind,
    pub entity: Entity,
    /// Fields whose value differs (updates only), secret fields included.
    pub fields: Vec<String>,
}

impl EntityChange {
    /// `{"action", "entity" (collection), "id", "name", "fields"}`; secrets stay redacted.
    pub fn to_json(&self) -> Value {
        json!({
            "action": self.action.as_str(),
            "entity": self.kind.collection(),
            "id": self.entity.id(),
            "name": label(&self.entity),
            "fields": self.fields,
        })
    }
}

/// What an entity is called in a change list: its name, username, target or SNI name; its id otherwise.
fn label(e: &Entity) -> String {
    let named = match e {
        Entity::Service(s) => s.name.clone(),
        Entity::Route(r) => r.name.clone(),
        Entity::Consumer(c) => c.username.clone().or_else(|| c.custom_id.clone()),
        Entity::Plugin(p) => Some(p.instance_name.clone().unwrap_or_else(|| p.name.clone())),
        Entity::Sni(n) => Some(n.name.clone()),
        Entity::Upstream(u) => Some(u.name.clone()),
        Entity::Target(t) => Some(t.target.clone()),
        Entity::Acl(a) => Some(a.group.clone()),
        Entity::ConsumerGroup(g) => Some(g.name.clone()),
        Entity::ConsumerGroupMember(_) => None,
        Entity::Certificate(_) | Entity::CaCertificate(_) => None,
    };
    named.unwrap_or_else(|| e.id().to_string())
}

/// An entity's fields without the timestamps, which every replacement sets anew.
fn comparable(e: &Entity) -> serde_json::Map<String, Value> {
    let mut v = match e.to_json() {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    v.remove("created_at");
    v.remove("updated_at");
    v
}

/// The changes that turn `old` into `new`, matched by id (a declarative replacement keeps the id of an
/// entity whose natural key it keeps): deletions, then creations and updates, in the order kinds refer
/// to each other.
pub fn changes(old: &ConfigState, new: &ConfigState) -> Vec<EntityChange> {
    let mut out = Vec::new();
    for kind in Kind::ALL.into_iter().rev() {
        for e in old.list(kind) {
            if new.get(kind, &e.id()).is_none() {
                out.push(EntityChange {
                    action: Action::Delete,
                    kind,
                    entity: e,
                    fields: Vec::new(),
                });
            }
        }
    }
    for kind in Kind::ALL {
        for e in new.list(kind) {
            match old.get(kind, &e.id()) {
                None => out.push(EntityChange {
                    action: Action::Create,
                    kind,
                    entity: e,
                    fields: Vec::new(),
                }),
                Some(before) => {
                    let (a, b) = (comparable(&before), comparable(&e));
                    let mut fields: Vec<String> = a
                        .keys()
                        .chain(b.keys())
                        .filter(|k| a.get(*k) != b.get(*k))
                        .cloned()
                        .collect();
                    fields.sort();
                    fields.dedup();
                    if !fields.is_empty() {
                        out.push(EntityChange {
                            action: Action::Update,
                            kind,
                            entity: e,
                            fields,
                        });
                    }
                }
            }
        }
    }
    out
}

/// `{"changes": [...], "summary": {"created", "updated", "deleted"}}`.
pub fn report(changes: &[EntityChange]) -> Value {
    let count = |a: Action| changes.iter().filter(|c| c.action == a).count();
    json!({
        "changes": changes.iter().map(EntityChange::to_json).collect::<Vec<_>>(),
        "summary": {
            "created": count(Action::Create),
            "updated": count(Action::Update),
            "deleted": count(Action::Delete),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ParseCtx;
    use uuid::Uuid;

    fn entity(kind: Kind, id: Uuid, body: Value, updated_at: i64) -> Entity {
        let ctx = ParseCtx {
            id,
            now: updated_at,
            created_at: Some(1),
            resolver: &ConfigState::default(),
        };
        Entity::parse(kind, &body, &ctx).unwrap()
    }

    #[test]
    fn changes_ignore_timestamps_and_name_the_fields_that_differ() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let billing = |port: u16, at: i64| {
            entity(
                Kind::Service,
                a,
                json!({"name": "billing", "host": "billing.internal", "port": port}),
                at,
            )
        };
        let mut old = ConfigState::default();
        old.put(billing(80, 2)).unwrap();
        old.put(entity(Kind::Consumer, b, json!({"username": "gone"}), 2))
            .unwrap();
        // The same Service written again later, the Consumer gone: one deletion.
        let mut same = ConfigState::default();
        same.put(billing(80, 99)).unwrap();
        let c = changes(&old, &same);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].action, c[0].kind), (Action::Delete, Kind::Consumer));
        assert_eq!(c[0].to_json()["name"], "gone");
        // Another port: an update naming that field.
        let mut new = ConfigState::default();
        new.put(billing(8080, 3)).unwrap();
        let c = changes(&old, &new);
        let update = c.iter().find(|c| c.action == Action::Update).unwrap();
        assert_eq!(update.fields, ["port"]);
        assert_eq!(
            report(&c)["summary"],
            json!({"created": 0, "updated": 1, "deleted": 1})
        );
        assert!(changes(&old, &old).is_empty());
        assert_eq!(changes(&ConfigState::default(), &old).len(), 2);
    }
}
