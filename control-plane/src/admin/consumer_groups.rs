//! Kong's consumer-group membership endpoints: `/consumer_groups/{g}/consumers[/{c}]` and
//! `/consumers/{c}/consumer_groups[/{g}]` (GET, POST one name or a list, DELETE), with Kong's answers and
//! messages. The groups themselves are plain entities (`entities.rs`); `GET /consumer_groups/{g}` answers
//! the group with its Consumers, as Kong does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::{Change, ConfigState, ConsumerGroupMember, Entity, ForeignKey, Kind};
use uuid::Uuid;

use super::entities::{body_object, find};
use super::{AdminCtx, ApiError, ApiResult, Ctx};
use crate::cluster::unix_now;

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    Router::new()
        .route(
            "/consumer_groups/{group}/consumers",
            get(group_members)
                .post(|s: Ctx, Path(g): Path<String>, h: HeaderMap, b: Body| {
                    join(s, Side::Group, g, h, b)
                })
                .delete(empty_group),
        )
        .route(
            "/consumer_groups/{group}/consumers/{consumer}",
            get(|s: Ctx, Path((g, c)): Path<(String, String)>| async move {
                let (_, consumer) = member(&s.0, &g, &c)?;
                Ok::<_, ApiError>(Json(json!({ "consumer": consumer.to_public_json() })))
            })
            .delete(|s: Ctx, Path((g, c)): Path<(String, String)>| leave(s, g, c)),
        )
        .route(
            "/consumers/{consumer}/consumer_groups",
            get(consumer_groups)
                .post(|s: Ctx, Path(c): Path<String>, h: HeaderMap, b: Body| {
                    join(s, Side::Consumer, c, h, b)
                })
                .delete(leave_all),
        )
        .route(
            "/consumers/{consumer}/consumer_groups/{group}",
            get(|s: Ctx, Path((c, g)): Path<(String, String)>| async move {
                let (group, _) = member(&s.0, &g, &c)?;
                Ok::<_, ApiError>(Json(json!({ "consumer_group": group.to_public_json() })))
            })
            .delete(|s: Ctx, Path((c, g)): Path<(String, String)>| leave(s, g, c)),
        )
}

/// `GET /consumer_groups/{g}`: the group, and its Consumers when it has any (Kong's shape).
pub(super) fn group_view(state: &ConfigState, group: &Entity) -> Value {
    let mut view = json!({ "consumer_group": group.to_public_json() });
    let members = members_of(state, group.id());
    if !members.is_empty() {
        view["consumers"] = Value::Array(members.iter().map(Entity::to_public_json).collect());
    }
    view
}

fn group(state: &ConfigState, key: &str) -> Result<Entity, ApiError> {
    find(state, Kind::ConsumerGroup, key)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, format!("Group '{key}' not found")))
}

fn consumer(state: &ConfigState, key: &str) -> Result<Entity, ApiError> {
    find(state, Kind::Consumer, key).ok_or_else(|| {
        ApiError::message(StatusCode::NOT_FOUND, format!("Consumer '{key}' not found"))
    })
}

/// The memberships of the pair.
fn memberships(
    state: &ConfigState,
    group: Option<Uuid>,
    consumer: Option<Uuid>,
) -> Vec<&ConsumerGroupMember> {
    state
        .consumer_group_consumers
        .values()
        .filter(|m| group.is_none_or(|g| m.consumer_group.id == g))
        .filter(|m| consumer.is_none_or(|c| m.consumer.id == c))
        .collect()
}

/// The Consumers in group `id`, in [`ConfigState::members_of`]'s order.
fn members_of(state: &ConfigState, id: Uuid) -> Vec<Entity> {
    state
        .members_of(&id)
        .into_iter()
        .map(|c| Entity::Consumer(c.clone()))
        .collect()
}

/// The groups Consumer `id` is in, in the order of [`ConfigState::groups_of`].
fn groups_of(state: &ConfigState, id: Uuid) -> Vec<Entity> {
    state
        .groups_of(&id)
        .iter()
        .filter_map(|name| find(state, Kind::ConsumerGroup, name))
        .collect()
}

/// The group and Consumer the path names, when the Consumer is in the group (404 otherwise).
fn member(
    ctx: &AdminCtx,
    group_key: &str,
    consumer_key: &str,
) -> Result<(Entity, Entity), ApiError> {
    let current = ctx.core.current();
    let state = &current.state;
    let c = consumer(state, consumer_key)?;
    let g = group(state, group_key)?;
    if memberships(state, Some(g.id()), Some(c.id())).is_empty() {
        return Err(not_in_group(c.id(), g.id()));
    }
    Ok((g, c))
}

fn not_in_group(consumer: Uuid, group: Uuid) -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        format!("Consumer '{consumer}' not found in Group '{group}'"),
    )
}

/// The names a POST lists under `field`: one string or a list of strings (400 when there is none).
fn names(body: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let missing = || ApiError::bad_request(format!("must provide {field}"));
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_request(format!("{field}: expected strings"))),
        _ => Err(missing()),
    }
}

fn joined(group: Uuid, consumer: Uuid, now: i64) -> Entity {
    Entity::ConsumerGroupMember(ConsumerGroupMember {
        id: Uuid::new_v4(),
        consumer_group: ForeignKey { id: group },
        consumer: ForeignKey { id: consumer },
        created_at: now,
    })
}

async fn group_members(State(ctx): Ctx, Path(g): Path<String>) -> ApiResult {
    let current = ctx.core.current();
    let group = group(&current.state, &g)?;
    let consumers: Vec<Value> = members_of(&current.state, group.id())
        .iter()
        .map(Entity::to_public_json)
        .collect();
    Ok(Json(json!({ "consumers": consumers })).into_response())
}

/// `DELETE /consumer_groups/{g}/consumers`: every Consumer leaves the group.
async fn empty_group(State(ctx): Ctx, Path(g): Path<String>) -> ApiResult {
    ctx.core
        .write(|state| {
            let group = group(state, &g)?;
            let ids: Vec<Uuid> = memberships(state, Some(group.id()), None)
                .iter()
                .map(|m| m.id)
                .collect();
            if ids.is_empty() {
                return Err(ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("Group '{}' has no consumers", group.id()),
                ));
            }
            remove_all(state, ids)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn consumer_groups(State(ctx): Ctx, Path(c): Path<String>) -> ApiResult {
    let current = ctx.core.current();
    let consumer = consumer(&current.state, &c)?;
    let groups: Vec<Value> = groups_of(&current.state, consumer.id())
        .iter()
        .map(Entity::to_public_json)
        .collect();
    Ok(Json(json!({ "consumer_groups": groups })).into_response())
}

/// The side of a membership a path names; the body names the other.
#[derive(Clone, Copy)]
enum Side {
    Group,
    Consumer,
}

/// `POST /consumer_groups/{g}/consumers` with `consumer`, or `POST /consumers/{c}/consumer_groups` with
/// `group` (a name or id, or a list): each pair is made, all or none; a pair that exists is a 409.
async fn join(State(ctx): Ctx, side: Side, key: String, h: HeaderMap, b: Body) -> ApiResult {
    let (body, _) = body_object(&h, b).await?;
    let find_side = |state: &ConfigState, side: Side, key: &str| match side {
        Side::Group => group(state, key),
        Side::Consumer => consumer(state, key),
    };
    let other = match side {
        Side::Group => Side::Consumer,
        Side::Consumer => Side::Group,
    };
    let wanted = names(
        &body,
        match other {
            Side::Consumer => "consumer",
            Side::Group => "group",
        },
    )?;
    let (shown, _) = ctx
        .core
        .write(|state| {
            let named = find_side(state, side, &key)?;
            let now = unix_now();
            let mut changes: Vec<Change> = Vec::new();
            let mut added = Vec::new();
            for other_key in &wanted {
                let listed = find_side(state, other, other_key)?;
                let (g, c) = match side {
                    Side::Group => (&named, &listed),
                    Side::Consumer => (&listed, &named),
                };
                if !memberships(state, Some(g.id()), Some(c.id())).is_empty() {
                    let (who, group) = match side {
                        Side::Group => (other_key.as_str(), g.id().to_string()),
                        Side::Consumer => (key.as_str(), other_key.clone()),
                    };
                    let message = format!("Consumer '{who}' already in group '{group}'");
                    return Err(ApiError::message(StatusCode::CONFLICT, message));
                }
                changes.extend(state.put(joined(g.id(), c.id(), now))?);
                added.push(listed.to_public_json());
            }
            let shown = match side {
                Side::Group => {
                    json!({"consumer_group": named.to_public_json(), "consumers": added})
                }
                Side::Consumer => {
                    json!({"consumer_groups": added, "consumer": named.to_public_json()})
                }
            };
            Ok::<_, ApiError>((changes, shown))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `DELETE /consumers/{c}/consumer_groups`: the Consumer leaves every group.
async fn leave_all(State(ctx): Ctx, Path(c): Path<String>) -> ApiResult {
    ctx.core
        .write(|state| {
            let consumer = consumer(state, &c)?;
            let ids: Vec<Uuid> = memberships(state, None, Some(consumer.id()))
                .iter()
                .map(|m| m.id)
                .collect();
            if ids.is_empty() {
                return Err(ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("Consumer '{}' not in group", consumer.id()),
                ));
            }
            remove_all(state, ids)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /consumer_groups/{g}/consumers/{c}` and `/consumers/{c}/consumer_groups/{g}`.
async fn leave(State(ctx): Ctx, g: String, c: String) -> ApiResult {
    ctx.core
        .write(|state| {
            let consumer = consumer(state, &c)?;
            let group = group(state, &g)?;
            let ids: Vec<Uuid> = memberships(state, Some(group.id()), Some(consumer.id()))
                .iter()
                .map(|m| m.id)
                .collect();
            if ids.is_empty() {
                return Err(not_in_group(consumer.id(), group.id()));
            }
            remove_all(state, ids)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn remove_all(state: &mut ConfigState, ids: Vec<Uuid>) -> Result<(Vec<Change>, ()), ApiError> {
    let mut changes = Vec::new();
    for id in ids {
        changes.extend(state.delete(Kind::ConsumerGroupMember, &id)?);
    }
    Ok((changes, ()))
}
