//! Kong's ACL credential (`/acls`, `/consumers/{c}/acls`): one group a Consumer belongs to, which the
//! `acl` plugin allows or denies. A Consumer holds each group once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{finish, read_common, read_ref, ForeignKey, Kind, ParseCtx, References};
use crate::error::StateError;
use crate::schema::Fields;

/// A Consumer's membership of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acl {
    pub id: Uuid,
    pub consumer: ForeignKey,
    pub group: String,
    pub tags: Vec<String>,
    pub created_at: i64,
}

impl Acl {
    /// Parses and validates an ACL: a non-empty `group` and the Consumer it belongs to.
    pub fn parse(v: &Value, ctx: &ParseCtx<'_>) -> Result<Acl, StateError> {
        let mut f = Fields::new(v, "")?;
        let mut refs = References::new();
        let (id, tags, created_at) = read_common(&mut f, ctx);
        let group = f.string("group").unwrap_or_default();
        if f.has("group") && group.is_empty() {
            f.error("group", "length must be at least 1");
        }
        let consumer = read_ref(&mut f, &mut refs, ctx, "consumer", Kind::Consumer);
        if consumer.is_none() && !f.has("consumer") {
            f.error("consumer", "required field missing");
        }
        let acl = Acl {
            id,
            consumer: consumer.unwrap_or(ForeignKey { id: Uuid::nil() }),
            group,
            tags,
            created_at,
        };
        finish(f, refs, acl)
    }
}
