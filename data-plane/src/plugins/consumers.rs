//! The snapshot's Consumers as plugins look them up on the request path.

use std::sync::Arc;

use shared::plugins::openid_connect::ConsumerBy;
use shared::{ConfigState, Consumer};

/// The Consumer fields a plugin can look a Consumer up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerField {
    Username,
    CustomId,
    Id,
}

impl From<ConsumerBy> for ConsumerField {
    fn from(by: ConsumerBy) -> ConsumerField {
        match by {
            ConsumerBy::Username => ConsumerField::Username,
            ConsumerBy::CustomId => ConsumerField::CustomId,
            ConsumerBy::Id => ConsumerField::Id,
        }
    }
}

/// A snapshot's Consumers by username, `custom_id` and id, built once per snapshot so mapping a token to
/// its Consumer costs one hash lookup however many Consumers there are.
#[derive(Debug, Default, Clone)]
pub struct ConsumerIndex {
    by_username: imbl::HashMap<String, Arc<Consumer>>,
    by_custom_id: imbl::HashMap<String, Arc<Consumer>>,
    by_id: imbl::HashMap<String, Arc<Consumer>>,
}

impl ConsumerIndex {
    /// Indexes every Consumer of `state`.
    pub fn build(state: &ConfigState) -> ConsumerIndex {
        let ids: Vec<uuid::Uuid> = state.consumers.keys().copied().collect();
        ConsumerIndex::default().updated(&ConfigState::default(), state, &ids)
    }

    /// The index after the Consumers `ids` changed from `old` to `new` (added, replaced or removed); the
    /// entries of every other Consumer are shared with this index.
    pub fn updated(
        &self,
        old: &ConfigState,
        new: &ConfigState,
        ids: &[uuid::Uuid],
    ) -> ConsumerIndex {
        let mut index = self.clone();
        for id in ids {
            if let Some(c) = old.consumers.get(id) {
                let mine = |e: Option<&Arc<Consumer>>| e.is_some_and(|e| e.id == *id);
                if let Some(u) = &c.username {
                    if mine(index.by_username.get(u)) {
                        index.by_username.remove(u);
                    }
                }
                if let Some(cid) = &c.custom_id {
                    if mine(index.by_custom_id.get(cid)) {
                        index.by_custom_id.remove(cid);
                    }
                }
                index.by_id.remove(&id.to_string());
            }
            if let Some(c) = new.consumers.get(id) {
                // One copy per Consumer, shared by the three maps.
                let c = Arc::new(c.clone());
                if let Some(u) = &c.username {
                    index.by_username.insert(u.clone(), c.clone());
                }
                if let Some(cid) = &c.custom_id {
                    index.by_custom_id.insert(cid.clone(), c.clone());
                }
                index.by_id.insert(c.id.to_string(), c.clone());
            }
        }
        index
    }

    /// The Consumer whose `field` equals `value`.
    pub fn find(&self, field: ConsumerField, value: &str) -> Option<&Arc<Consumer>> {
        let map = match field {
            ConsumerField::Username => &self.by_username,
            ConsumerField::CustomId => &self.by_custom_id,
            ConsumerField::Id => &self.by_id,
        };
        map.get(value)
    }
}

/// Finds a Consumer by id or username.
pub fn find_consumer(state: &ConfigState, key: &str) -> Option<Consumer> {
    use shared::Resolver;
    let id = state.resolve(shared::Kind::Consumer, key)?;
    state.consumers.get(&id).cloned()
}

/// The Consumer a plugin's `anonymous` setting names, which must exist in the snapshot.
pub fn anonymous_consumer(
    state: &ConfigState,
    anonymous: &Option<String>,
) -> Result<Option<Arc<Consumer>>, String> {
    match anonymous {
        Some(a) => find_consumer(state, a)
            .map(|c| Some(Arc::new(c)))
            .ok_or_else(|| format!("anonymous consumer '{a}' does not exist")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_found_by_username_custom_id_and_id() {
        let mut state = ConfigState::default();
        for i in 0..1000u128 {
            let c = Consumer {
                id: uuid::Uuid::from_u128(i + 1),
                username: Some(format!("user-{i}")),
                custom_id: (i % 2 == 0).then(|| format!("client-{i}")),
                tags: vec![],
                created_at: 0,
                updated_at: 0,
            };
            state.consumers.insert(c.id, c);
        }
        let index = ConsumerIndex::build(&state);
        assert_eq!(
            index
                .find(ConsumerField::Username, "user-999")
                .map(|c| c.id),
            Some(uuid::Uuid::from_u128(1000))
        );
        assert_eq!(
            index
                .find(ConsumerField::CustomId, "client-10")
                .map(|c| c.id),
            Some(uuid::Uuid::from_u128(11))
        );
        assert!(index.find(ConsumerField::CustomId, "client-11").is_none());
        let id = uuid::Uuid::from_u128(7).to_string();
        assert_eq!(
            index
                .find(ConsumerField::Id, &id)
                .and_then(|c| c.username.clone()),
            Some("user-6".to_string())
        );
        assert!(index.find(ConsumerField::Username, "nobody").is_none());
        // One shared copy per Consumer: a request that authenticates takes a reference, not a copy.
        let by_name = index.find(ConsumerField::Username, "user-10").unwrap();
        let by_id = index
            .find(ConsumerField::Id, &uuid::Uuid::from_u128(11).to_string())
            .unwrap();
        assert!(Arc::ptr_eq(by_name, by_id));
    }
}
