//! The content hash of a configuration, kept up to date change by change.
//!
//! Each entity has a digest (SHA-256 of its kind, id and stored JSON); the state's digest is the sum of
//! its entities' digests modulo 2^256, so adding, replacing or removing one entity updates it in constant
//! time whatever the size of the configuration. The published hash is SHA-256 of that sum and the entity
//! count. The control plane and every node compute it with this code: a node that applied deltas holds
//! the state the control plane hashed exactly when the hashes agree.
//!
//! The sum is a checksum between parties that trust each other (the stream is mutually authenticated
//! TLS); it detects divergence, it is not meant to resist someone who chooses entities to collide.

use imbl::OrdMap;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entity::Kind;
use crate::state::{Change, ConfigState, Entity};

/// Hex SHA-256 of `data`: CA and certificate fingerprints, token hashes, checksums of stored files.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

type Sum = [u64; 4];

/// Per-entity digests and their sum. Cloning is O(1) (the map is persistent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDigest {
    entities: OrdMap<(Kind, Uuid), [u8; 32]>,
    sum: Sum,
}

impl StateDigest {
    /// The digest of a whole state.
    pub fn of(state: &ConfigState) -> StateDigest {
        let mut d = StateDigest::default();
        let mut add = |kind: Kind, id: Uuid, json: Vec<u8>| {
            let e = entity_digest(kind, &id, &json);
            d.sum = add(d.sum, &e);
            d.entities.insert((kind, id), e);
        };
        for s in state.services.values() {
            add(Kind::Service, s.id, to_json(s));
        }
        for r in state.routes.values() {
            add(Kind::Route, r.id, to_json(r));
        }
        for c in state.consumers.values() {
            add(Kind::Consumer, c.id, to_json(c));
        }
        for p in state.plugins.values() {
            add(Kind::Plugin, p.id, to_json(p));
        }
        for c in state.certificates.values() {
            add(Kind::Certificate, c.id, to_json(c));
        }
        for n in state.snis.values() {
            add(Kind::Sni, n.id, to_json(n));
        }
        for c in state.ca_certificates.values() {
            add(Kind::CaCertificate, c.id, to_json(c));
        }
        for u in state.upstreams.values() {
            add(Kind::Upstream, u.id, to_json(u));
        }
        for t in state.targets.values() {
            add(Kind::Target, t.id, to_json(t));
        }
        for a in state.acls.values() {
            add(Kind::Acl, a.id, to_json(a));
        }
        for g in state.consumer_groups.values() {
            add(Kind::ConsumerGroup, g.id, to_json(g));
        }
        for m in state.consumer_group_consumers.values() {
            add(Kind::ConsumerGroupMember, m.id, to_json(m));
        }
        d
    }

    /// Updates the digest with changes already applied to the state.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            let (key, new) = match change {
                Change::Put(e) => {
                    let json = entity_json(e);
                    (
                        (e.kind(), e.id()),
                        Some(entity_digest(e.kind(), &e.id(), &json)),
                    )
                }
                Change::Delete(kind, id) => ((*kind, *id), None),
            };
            if let Some(old) = self.entities.remove(&key) {
                self.sum = sub(self.sum, &old);
            }
            if let Some(new) = new {
                self.sum = add(self.sum, &new);
                self.entities.insert(key, new);
            }
        }
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// True for the empty configuration.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The hash both planes compare (hex SHA-256).
    pub fn hex(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"portcullis-config-v1\0");
        for limb in self.sum {
            h.update(limb.to_be_bytes());
        }
        h.update((self.entities.len() as u64).to_be_bytes());
        hex::encode(h.finalize())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("entities serialise")
}

fn entity_json(e: &Entity) -> Vec<u8> {
    match e {
        Entity::Service(s) => to_json(s),
        Entity::Route(r) => to_json(r),
        Entity::Consumer(c) => to_json(c),
        Entity::Plugin(p) => to_json(p),
        Entity::Certificate(c) => to_json(c),
        Entity::Sni(n) => to_json(n),
        Entity::CaCertificate(c) => to_json(c),
        Entity::Upstream(u) => to_json(u),
        Entity::Target(t) => to_json(t),
        Entity::Acl(a) => to_json(a),
        Entity::ConsumerGroup(g) => to_json(g),
        Entity::ConsumerGroupMember(m) => to_json(m),
    }
}

fn entity_digest(kind: Kind, id: &Uuid, json: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind.collection().as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    h.update(json);
    h.finalize().into()
}

fn limbs(d: &[u8; 32]) -> Sum {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        *limb = u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    out
}

/// `a + d` modulo 2^256 (limb 0 is the most significant).
fn add(a: Sum, d: &[u8; 32]) -> Sum {
    let b = limbs(d);
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in (0..4).rev() {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        out[i] = s2;
        carry = c1 || c2;
    }
    out
}

/// `a - d` modulo 2^256.
fn sub(a: Sum, d: &[u8; 32]) -> Sum {
    let b = limbs(d);
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in (0..4).rev() {
        let (s1, b1) = a[i].overflowing_sub(b[i]);
        let (s2, b2) = s1.overflowing_sub(u64::from(borrow));
        out[i] = s2;
        borrow = b1 || b2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_sub_are_inverse_with_carries() {
        let all_ones = [0xffu8; 32];
        let one = {
            let mut d = [0u8; 32];
            d[31] = 1;
            d
        };
        let s = add(add([0; 4], &all_ones), &one);
        assert_eq!(s, [0; 4], "2^256 - 1 + 1 wraps to 0");
        assert_eq!(sub(s, &one), limbs(&all_ones));
        let x = add(add([1, 2, 3, u64::MAX], &all_ones), &one);
        assert_eq!(sub(sub(x, &one), &all_ones), [1, 2, 3, u64::MAX]);
    }

    #[test]
    fn the_empty_state_has_a_fixed_hash() {
        let d = StateDigest::of(&ConfigState::default());
        assert!(d.is_empty());
        assert_eq!(d.hex(), StateDigest::default().hex());
        assert_eq!(d.hex().len(), 64);
    }
}
