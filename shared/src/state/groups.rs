//! The write rules of consumer groups and their memberships: a group name is used once, a Consumer is in
//! a group once, and a membership goes with its Consumer or its group.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use uuid::Uuid;

use super::{Change, ConfigState, Entity};
use crate::entity::{Consumer, ConsumerGroupMember, Kind};
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

    /// The names of the consumer groups `consumer` is in, in [`ConfigState::groups_by_consumer`]'s order.
    pub fn groups_of(&self, consumer: &Uuid) -> Vec<String> {
        self.groups_by_consumer(Some(consumer))
            .remove(consumer)
            .unwrap_or_default()
    }

    /// Every Consumer's consumer-group names (only `only`'s when given), in one pass over the
    /// memberships: those it joined first first, and by name within a second (a membership's time is in
    /// seconds).
    pub fn groups_by_consumer(&self, only: Option<&Uuid>) -> HashMap<Uuid, Vec<String>> {
        let mut joined: Vec<(Uuid, i64, &str)> = self
            .consumer_group_consumers
            .values()
            .filter(|m| only.is_none_or(|c| m.consumer.id == *c))
            .filter_map(|m| {
                let group = self.consumer_groups.get(&m.consumer_group.id)?;
                Some((m.consumer.id, m.created_at, group.name.as_str()))
            })
            .collect();
        joined.sort();
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (consumer, _, name) in joined {
            out.entry(consumer).or_default().push(name.to_string());
        }
        out
    }

    /// The Consumers in `group`: those who joined first first, and by username (else id) within a second.
    pub fn members_of(&self, group: &Uuid) -> Vec<&Consumer> {
        let mut found: Vec<(i64, String, &Consumer)> = self
            .consumer_group_consumers
            .values()
            .filter(|m| m.consumer_group.id == *group)
            .filter_map(|m| {
                let c = self.consumers.get(&m.consumer.id)?;
                let name = c.username.clone().unwrap_or_else(|| c.id.to_string());
                Some((m.created_at, name, c))
            })
            .collect();
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        found.into_iter().map(|(_, _, c)| c).collect()
    }
}
