//! Group memberships as `acl` and `rate-limiting` read them: a Consumer's ACL groups and consumer groups
//! from the snapshot, indexed once per snapshot, and the groups an auth plugin found in a token
//! (authenticated groups, or consumer groups a claim names). Each set carries the field value it is sent
//! upstream with, made once.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use shared::ConfigState;
use uuid::Uuid;

/// A set of group names, in the order they are listed upstream.
#[derive(Debug)]
pub struct Groups {
    names: Box<[String]>,
    /// The names joined by `", "` (Kong's form); `None` when that is not a valid field value or empty.
    field: Option<HeaderValue>,
}

impl Groups {
    /// The groups `names`, in their order, each once (a token may list hundreds: a set keeps this linear).
    pub fn new(names: impl IntoIterator<Item = String>) -> Groups {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<String> = names
            .into_iter()
            .filter(|name| seen.insert(name.clone()))
            .collect();
        let field = (!unique.is_empty())
            .then(|| HeaderValue::from_str(&unique.join(", ")).ok())
            .flatten();
        Groups {
            names: unique.into_boxed_slice(),
            field,
        }
    }

    /// The groups a token's claim at `path` lists (an array, or a space-separated string): what an auth
    /// plugin's `authenticated_groups_claim` gives the request. `None` when no path is configured or the
    /// token lists no group there.
    pub fn from_claim(claims: &serde_json::Value, path: &[String]) -> Option<Arc<Groups>> {
        if path.is_empty() {
            return None;
        }
        let names = super::claims::claim_values(claims, path);
        (!names.is_empty()).then(|| Arc::new(Groups::new(names)))
    }

    /// These groups followed by `more`'s, each once.
    pub fn with(&self, more: &Groups) -> Groups {
        Groups::new(self.names.iter().chain(more.names.iter()).cloned())
    }

    /// The first group, in listed order.
    pub fn first(&self) -> Option<&str> {
        self.names.first().map(String::as_str)
    }

    /// Whether any of `listed` is one of these groups.
    pub fn any_of(&self, listed: &[String]) -> bool {
        listed.iter().any(|l| self.names.contains(l))
    }

    /// The names joined as they are sent upstream.
    pub fn field(&self) -> Option<&HeaderValue> {
        self.field.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A token whose `consumer_groups_claim` names no consumer group, where one is required.
#[derive(Debug)]
pub struct NoConsumerGroup;

/// Who is in which group, indexed once per snapshot (again only when an ACL, a consumer group or a
/// membership changed): every Consumer's ACL groups (Kong's ACL credentials) and consumer groups, oldest
/// membership first, and the consumer groups by name.
#[derive(Debug, Default)]
pub struct Memberships {
    acl: HashMap<Uuid, Arc<Groups>>,
    consumer_groups: HashMap<Uuid, Arc<Groups>>,
    group_ids: HashMap<String, Uuid>,
}

impl Memberships {
    /// Indexes the ACLs, consumer groups and memberships of `state`.
    pub fn build(state: &ConfigState) -> Memberships {
        let mut acls: Vec<&shared::Acl> = state.acls.values().collect();
        acls.sort_by(|a, b| (a.created_at, &a.group).cmp(&(b.created_at, &b.group)));
        let mut names: HashMap<Uuid, Vec<String>> = HashMap::new();
        for acl in acls {
            names
                .entry(acl.consumer.id)
                .or_default()
                .push(acl.group.clone());
        }
        Memberships {
            acl: names
                .into_iter()
                .map(|(id, names)| (id, Arc::new(Groups::new(names))))
                .collect(),
            consumer_groups: state
                .groups_by_consumer(None)
                .into_iter()
                .map(|(id, names)| (id, Arc::new(Groups::new(names))))
                .collect(),
            group_ids: state
                .consumer_groups
                .values()
                .map(|g| (g.name.clone(), g.id))
                .collect(),
        }
    }

    /// The ACL groups of Consumer `id`; `None` when it has none.
    pub fn acl_of(&self, id: &Uuid) -> Option<&Arc<Groups>> {
        self.acl.get(id)
    }

    /// The consumer groups Consumer `id` is in; `None` when it is in none.
    pub fn consumer_groups_of(&self, id: &Uuid) -> Option<&Arc<Groups>> {
        self.consumer_groups.get(id)
    }

    /// The consumer groups among `names` (what a token's `consumer_groups_claim` lists); `None` when
    /// none of them is a consumer group.
    pub fn consumer_groups_named(&self, names: Vec<String>) -> Option<Arc<Groups>> {
        let known: Vec<String> = names
            .into_iter()
            .filter(|n| self.group_ids.contains_key(n))
            .collect();
        (!known.is_empty()).then(|| Arc::new(Groups::new(known)))
    }

    /// The consumer groups a token's claim at `path` names (an auth plugin's `consumer_groups_claim`):
    /// `Ok(None)` when no path is configured, or when none is named and that is `optional`; `Err` when
    /// none is named and it is not.
    pub fn from_claim(
        &self,
        claims: &serde_json::Value,
        path: &[String],
        optional: bool,
    ) -> Result<Option<Arc<Groups>>, NoConsumerGroup> {
        if path.is_empty() {
            return Ok(None);
        }
        match self.consumer_groups_named(super::claims::claim_values(claims, path)) {
            Some(groups) => Ok(Some(groups)),
            None if optional => Ok(None),
            None => Err(NoConsumerGroup),
        }
    }

    /// The id of the consumer group named `name`.
    pub fn consumer_group_id(&self, name: &str) -> Option<Uuid> {
        self.group_ids.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Acl, Consumer, ForeignKey};

    #[test]
    fn a_consumer_s_groups_are_indexed_once_in_the_order_they_were_added() {
        let mut state = ConfigState::default();
        let consumer = Uuid::from_u128(1);
        state.consumers.insert(
            consumer,
            Consumer {
                id: consumer,
                username: Some("alice".into()),
                custom_id: None,
                tags: vec![],
                created_at: 0,
                updated_at: 0,
            },
        );
        for (i, (group, at)) in [("ops", 20), ("admins", 10), ("dev", 20)]
            .iter()
            .enumerate()
        {
            let id = Uuid::from_u128(10 + i as u128);
            state.acls.insert(
                id,
                Acl {
                    id,
                    consumer: ForeignKey { id: consumer },
                    group: group.to_string(),
                    tags: vec![],
                    created_at: *at,
                },
            );
        }
        let index = Memberships::build(&state);
        let groups = index.acl_of(&consumer).expect("alice has groups");
        assert_eq!(groups.field().unwrap(), "admins, dev, ops");
        assert!(groups.any_of(&["x".into(), "dev".into()]));
        assert!(!groups.any_of(&["x".into()]));
        assert!(index.acl_of(&Uuid::from_u128(2)).is_none());
        let token = Groups::new(["a".to_string(), "b".into(), "a".into()]);
        assert_eq!(token.field().unwrap(), "a, b");
        assert!(Groups::new([]).field().is_none() && Groups::new([]).is_empty());
        let claims =
            serde_json::json!({"realm_access": {"groups": ["x", "y"]}, "grp": "a b", "none": []});
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let nested = Groups::from_claim(&claims, &path(&["realm_access", "groups"])).unwrap();
        assert_eq!(nested.field().unwrap(), "x, y");
        let spaced = Groups::from_claim(&claims, &path(&["grp"])).unwrap();
        assert_eq!(spaced.field().unwrap(), "a, b");
        assert!(Groups::from_claim(&claims, &path(&["none"])).is_none());
        assert!(Groups::from_claim(&claims, &[]).is_none());
    }
}
