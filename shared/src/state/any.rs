//! `Entity`, one entity of any kind, and `Change`, one change to persist or send.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::entity::{
    Acl, Consumer, ConsumerGroup, ConsumerGroupMember, Kind, Plugin, Route, Service,
};
use crate::error::StateError;
use crate::keyword::Keyword;
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
    Acl(Acl),
    ConsumerGroup(ConsumerGroup),
    ConsumerGroupMember(ConsumerGroupMember),
}

/// Collections Kong shows as `null` when they hold nothing.
const NULL_WHEN_EMPTY: &[&str] = &["tags", "methods", "hosts", "paths", "headers"];

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
            Entity::Acl(_) => Kind::Acl,
            Entity::ConsumerGroup(_) => Kind::ConsumerGroup,
            Entity::ConsumerGroupMember(_) => Kind::ConsumerGroupMember,
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
            Entity::Acl(e) => e.id,
            Entity::ConsumerGroup(e) => e.id,
            Entity::ConsumerGroupMember(e) => e.id,
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
            Entity::Acl(e) => serde_json::to_value(e),
            Entity::ConsumerGroup(e) => serde_json::to_value(e),
            Entity::ConsumerGroupMember(e) => serde_json::to_value(e),
        }
        .expect("entities serialise")
    }

    /// The entity as the Admin API shows it: secrets redacted, an unset collection (`tags`, `hosts`, …)
    /// as `null`, and a Service's unset TLS fields as `null`, as Kong shows them.
    pub fn to_public_json(&self) -> Value {
        let mut v = match self {
            Entity::Plugin(p) => serde_json::to_value(p.redacted()).expect("entities serialise"),
            Entity::Certificate(c) => {
                serde_json::to_value(c.redacted()).expect("entities serialise")
            }
            other => other.to_json(),
        };
        if let Value::Object(fields) = &mut v {
            // Kong always shows these; the stored form leaves them out while unset.
            let always: &[&str] = match self {
                Entity::Service(_) => {
                    &["tls_verify_depth", "client_certificate", "ca_certificates"]
                }
                Entity::Route(_) => crate::entity::route_unmatched(),
                _ => &[],
            };
            for name in always {
                fields.entry(*name).or_insert(Value::Null);
            }
            self.unset_collections_as_null(fields);
        }
        v
    }

    /// The entity as stored (secrets included) with its unset collections as `null`: what a PATCH merges
    /// into, so that parsing the merge again keeps an unset field unset and an empty one empty.
    pub fn to_patch_base(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(fields) = &mut v {
            self.unset_collections_as_null(fields);
        }
        v
    }

    /// Writes `null` for each empty collection that was not given empty, and drops the record of which
    /// were (`Route::given_empty`), which is not a field of the entity.
    fn unset_collections_as_null(&self, fields: &mut Map<String, Value>) {
        let given_empty = match self {
            Entity::Route(r) => r.given_empty.iter().map(|l| l.as_str()).collect(),
            _ => Vec::new(),
        };
        fields.remove("given_empty");
        for name in NULL_WHEN_EMPTY {
            if given_empty.contains(name) {
                continue;
            }
            if let Some(field) = fields.get_mut(*name) {
                let empty = match field {
                    Value::Array(items) => items.is_empty(),
                    Value::Object(map) => map.is_empty(),
                    _ => false,
                };
                if empty {
                    *field = Value::Null;
                }
            }
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
            Entity::Acl(e) => &e.tags,
            Entity::ConsumerGroup(e) => &e.tags,
            Entity::ConsumerGroupMember(_) => &[],
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
            Entity::Acl(e) => e.created_at,
            Entity::ConsumerGroup(e) => e.created_at,
            Entity::ConsumerGroupMember(e) => e.created_at,
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
            Kind::Acl => Entity::Acl(Acl::parse(v, ctx)?),
            Kind::ConsumerGroup => Entity::ConsumerGroup(ConsumerGroup::parse(v, ctx)?),
            Kind::ConsumerGroupMember => {
                Entity::ConsumerGroupMember(ConsumerGroupMember::parse(v, ctx)?)
            }
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
            Kind::Acl => Entity::Acl(serde_json::from_value(v)?),
            Kind::ConsumerGroup => Entity::ConsumerGroup(serde_json::from_value(v)?),
            Kind::ConsumerGroupMember => Entity::ConsumerGroupMember(serde_json::from_value(v)?),
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
