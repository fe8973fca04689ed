//! The desired configuration as a plain value, with the operations the Admin API performs on it and the
//! consistency check every snapshot must pass before it is published or applied.

//!
//! - [`Entity`] and [`Change`] (`any.rs`); the write rules and the consistency check (`rules.rs`).

mod any;
mod groups;
mod rules;

use imbl::OrdMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use any::{Change, Entity};

use crate::digest::StateDigest;
use crate::entity::{
    Acl, Consumer, ConsumerGroup, ConsumerGroupMember, Kind, Plugin, Resolver, Route, Service,
};
use crate::tls::{CaCertificate, Certificate, Sni};
use crate::upstream::{Target, Upstream};

/// The whole configuration: every Service, Route, Consumer, Plugin, Certificate, SNI, CA Certificate,
/// Upstream, Target, ACL, consumer group and consumer-group membership, keyed by id.
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
    /// Left out of the encoded state while empty, so a configuration without ACLs encodes as before.
    #[serde(default, skip_serializing_if = "OrdMap::is_empty")]
    pub acls: OrdMap<Uuid, Acl>,
    #[serde(default, skip_serializing_if = "OrdMap::is_empty")]
    pub consumer_groups: OrdMap<Uuid, ConsumerGroup>,
    #[serde(default, skip_serializing_if = "OrdMap::is_empty")]
    pub consumer_group_consumers: OrdMap<Uuid, ConsumerGroupMember>,
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
            // A group names an ACL only within its Consumer (see the Admin API's nested paths).
            Kind::Acl => by_id.filter(|id| self.acls.contains_key(id)),
            Kind::ConsumerGroup => by_id
                .filter(|id| self.consumer_groups.contains_key(id))
                .or_else(|| {
                    self.consumer_groups
                        .values()
                        .find(|g| g.name == key)
                        .map(|g| g.id)
                }),
            Kind::ConsumerGroupMember => {
                by_id.filter(|id| self.consumer_group_consumers.contains_key(id))
            }
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
            Kind::Acl => self.acls.get(id).cloned().map(Entity::Acl),
            Kind::ConsumerGroup => self
                .consumer_groups
                .get(id)
                .cloned()
                .map(Entity::ConsumerGroup),
            Kind::ConsumerGroupMember => self
                .consumer_group_consumers
                .get(id)
                .cloned()
                .map(Entity::ConsumerGroupMember),
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
            Kind::Acl => self.acls.values().cloned().map(Entity::Acl).collect(),
            Kind::ConsumerGroup => self
                .consumer_groups
                .values()
                .cloned()
                .map(Entity::ConsumerGroup)
                .collect(),
            Kind::ConsumerGroupMember => self
                .consumer_group_consumers
                .values()
                .cloned()
                .map(Entity::ConsumerGroupMember)
                .collect(),
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
            + self.acls.len()
            + self.consumer_groups.len()
            + self.consumer_group_consumers.len()
    }

    /// True when there is no entity at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of plugins used by enabled plugin entities.
    pub fn plugin_names(&self) -> std::collections::BTreeSet<String> {
        self.plugins.values().map(|p| p.name.clone()).collect()
    }
}

/// Encodes a state once for the wire and disk: deterministic JSON (maps are ordered).
pub fn encode(state: &ConfigState) -> Vec<u8> {
    serde_json::to_vec(state).expect("config state serialises")
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
mod tests;
