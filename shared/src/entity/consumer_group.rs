//! Kong 3.x consumer groups (`/consumer_groups`) and their memberships: a group is named once in the
//! configuration; a Consumer belongs to a group through a [`ConsumerGroupMember`], which the Admin API
//! exposes only through `/consumer_groups/{g}/consumers` and `/consumers/{c}/consumer_groups` (Kong has
//! no endpoint of its own for it).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{finish, read_common, read_name, read_ref, ForeignKey, Kind, ParseCtx, References};
use crate::error::StateError;
use crate::schema::Fields;

/// A named set of Consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerGroup {
    pub id: Uuid,
    pub name: String,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ConsumerGroup {
    /// Parses and validates a consumer group: a `name` as Kong's entity names.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<ConsumerGroup, StateError> {
        let mut f = Fields::new(v, "")?;
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let name = read_name(&mut f);
        if name.is_none() {
            f.error("name", "required field missing");
        }
        let group = ConsumerGroup {
            id,
            name: name.unwrap_or_default(),
            tags,
            created_at,
            updated_at: ctx.now,
        };
        finish(f, References::new(), group)
    }
}

/// One Consumer's membership of one consumer group (a pair held once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerGroupMember {
    pub id: Uuid,
    pub consumer_group: ForeignKey,
    pub consumer: ForeignKey,
    pub created_at: i64,
}

impl ConsumerGroupMember {
    /// Parses a membership: both references are required and must name existing entities.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<ConsumerGroupMember, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        if !tags.is_empty() {
            f.error("tags", "unknown field");
        }
        let mut required = |f: &mut Fields<'_>, field: &str, kind: Kind| {
            let fk = read_ref(f, &mut refs, ctx, field, kind);
            if fk.is_none() && !f.has(field) {
                f.error(field, "required field missing");
            }
            fk.unwrap_or(ForeignKey { id: Uuid::nil() })
        };
        let consumer_group = required(&mut f, "consumer_group", Kind::ConsumerGroup);
        let consumer = required(&mut f, "consumer", Kind::Consumer);
        let member = ConsumerGroupMember {
            id,
            consumer_group,
            consumer,
            created_at,
        };
        finish(f, refs, member)
    }
}
