//! The write rules of consumer groups and their memberships: a group name is used once, a Consumer is in
//! a group once, and a membership goes with its Consumer or its group.

use std::collections::HashSet;

use serde_json::json;
use uuid::Uuid;

use super::{Change, ConfigState, Entity};
use crate::entity::{ConsumerGroupMember, Kind};
use crate::error::StateError;

impl ConfigState {
    /// Kong's uniqueness violation for a group whose name is taken or a membership held already.
    pub(crate) fn check_group_unique(&self, e: &Entity) -> Result<(), StateError> {
        match e {
            Entity::ConsumerGroup(g)
                if self
                    .consumer_groups
                    .values()
                    .any(|o| o.id != g.id && o.name == g.name) =>
            {
                Err(StateError::unique(json!({"name": g.name})))
            }
            Entity::ConsumerGroupMember(m)
                if self.consumer_group_consumers.values().any(|o| {
                    o.id != m.id && o.consumer == m.consumer && o.consumer_group == m.consumer_group
                }) =>
            {
                Err(StateError::unique(json!({
                    "consumer_group": {"id": m.consumer_group.id.to_string()},
                    "consumer": {"id": m.consumer.id.to_string()},
                })))
            }
            _ => Ok(()),
        }
    }

    /// Kong's foreign key violation for a membership whose group or Consumer does not exist.
    pub(crate) fn check_member_refs(&self, m: &ConsumerGroupMember) -> Result<(), StateError> {
        if !self.consumer_groups.contains_key(&m.consumer_group.id) {
            return Err(StateError::missing_reference(
                "consumer_group",
                &m.consumer_group.id,
                Kind::ConsumerGroup,
            ));
        }
        if !self.consumers.contains_key(&m.consumer.id) {
            return Err(StateError::missing_reference(
                "consumer",
                &m.consumer.id,
                Kind::Consumer,
            ));
        }
        Ok(())
    }

    /// Removes the memberships `pick` chooses, returning their deletes.
    pub(crate) fn remove_memberships(
        &mut self,
        pick: impl Fn(&ConsumerGroupMember) -> bool,
    ) -> Vec<Change> {
        let ids: Vec<Uuid> = self
            .consumer_group_consumers
            .values()
            .filter(|m| pick(m))
            .map(|m| m.id)
            .collect();
        ids.into_iter()
            .map(|id| {
                self.consumer_group_consumers.remove(&id);
                Change::Delete(Kind::ConsumerGroupMember, id)
            })
            .collect()
    }

    /// The consistency problems of consumer groups and memberships.
    pub(crate) fn group_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for g in self.consumer_groups.values() {
            if !names.insert(g.name.as_str()) {
                problems.push(format!("consumer_groups: duplicate name '{}'", g.name));
            }
        }
        let mut pairs = HashSet::new();
        for m in self.consumer_group_consumers.values() {
            if let Err(e) = self.check_member_refs(m) {
                problems.push(format!("consumer group membership {}: {e}", m.id));
            }
            if !pairs.insert((m.consumer_group.id, m.consumer.id)) {
                problems.push(format!(
                    "consumer group membership {}: its consumer is in the group twice",
                    m.id
                ));
            }
        }
        problems
    }

    /// The names of the consumer groups `consumer` is in: those it joined first first, and by name
    /// within a second (a membership's time is in seconds).
    pub fn groups_of(&self, consumer: &Uuid) -> Vec<String> {
        let mut joined: Vec<(i64, &str)> = self
            .consumer_group_consumers
            .values()
            .filter(|m| m.consumer.id == *consumer)
            .filter_map(|m| {
                let group = self.consumer_groups.get(&m.consumer_group.id)?;
                Some((m.created_at, group.name.as_str()))
            })
            .collect();
        joined.sort();
        joined
            .into_iter()
            .map(|(_, name)| name.to_string())
            .collect()
    }
}
