//! Kong's nested entity endpoints: one entity through its parent (`/services/{s}/routes/{r}`,
//! `/{services|routes|consumers}/{x}/plugins/{p}`, `/certificates/{c}/snis/{n}`,
//! `/upstreams/{u}/targets/{t}`, `/consumers/{c}/acls/{id or group}` — GET, PUT, PATCH, DELETE; 404 when
//! the entity is not the parent's) and a Route's Service (`/routes/{r}/service`: PUT on a Route without
//! one makes the Service and points the Route at it; DELETE is Kong's 405). Each resolves the path to the
//! entity's id and hands over to the plain entity handlers in `entities.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared::{Entity, ForeignKey, Kind, StateError};

use super::certificates::public_json;
use super::entities::{
    belongs_to, body_object, complete_secrets, find, find_under, parse_new, read, remove, update,
    upsert,
};
use super::{AdminCtx, ApiError, ApiResult, Ctx};
use crate::cluster::unix_now;

/// Parents and the children Kong nests under them.
pub const NESTED: [(Kind, Kind); 7] = [
    (Kind::Service, Kind::Route),
    (Kind::Service, Kind::Plugin),
    (Kind::Route, Kind::Plugin),
    (Kind::Consumer, Kind::Plugin),
    (Kind::Certificate, Kind::Sni),
    (Kind::Upstream, Kind::Target),
    (Kind::Consumer, Kind::Acl),
];

/// The id of `child` `key` when it belongs to `parent` `pkey`.
fn child_of(
    ctx: &AdminCtx,
    parent: (Kind, &str),
    child: Kind,
    key: &str,
) -> Result<String, ApiError> {
    let current = ctx.core.current();
    let state = &current.state;
    let p = find(state, parent.0, parent.1).ok_or_else(ApiError::not_found)?;
    let e = find_under(state, child, key, Some(&(parent.0, parent.1.to_string())))
        .ok_or_else(ApiError::not_found)?;
    if !belongs_to(&e, parent.0, p.id()) {
        return Err(ApiError::not_found());
    }
    Ok(e.id().to_string())
}

/// The id of the Service Route `key` points at.
fn service_of(ctx: &AdminCtx, key: &str) -> Result<String, ApiError> {
    route_service(ctx, key)?.ok_or_else(ApiError::not_found)
}

/// The Service Route `key` points at, if any; 404 when there is no such Route.
fn route_service(ctx: &AdminCtx, key: &str) -> Result<Option<String>, ApiError> {
    let current = ctx.core.current();
    match find(&current.state, Kind::Route, key) {
        Some(Entity::Route(r)) => Ok(r.service.map(|s| s.id.to_string())),
        _ => Err(ApiError::not_found()),
    }
}

/// `PUT /routes/{r}/service`: replaces the Route's Service, or, for a Route without one, makes a
/// Service from the body and points the Route at it, in one write.
async fn put_route_service(s: Ctx, key: String, h: HeaderMap, b: Body) -> ApiResult {
    if let Some(id) = route_service(&s.0, &key)? {
        return upsert(s, Kind::Service, id, None, h, b).await;
    }
    let State(ctx) = s;
    let (request, form) = body_object(&h, b).await?;
    let (service, _) = ctx
        .core
        .write(|state| {
            let Some(Entity::Route(mut route)) = find(state, Kind::Route, &key) else {
                return Err(StateError::NotFound);
            };
            let mut body = request.clone();
            complete_secrets(&mut body, None);
            let now = unix_now();
            let service = parse_new(state, Kind::Service, &body, form, now)?;
            let mut changes = state.put(service.clone())?;
            route.service = Some(ForeignKey { id: service.id() });
            route.updated_at = now;
            changes.extend(state.put(Entity::Route(route))?);
            Ok::<_, StateError>((changes, service))
        })
        .await?;
    Ok(Json(public_json(&ctx.core.current().state, &service)).into_response())
}

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    let mut r = Router::new();
    for (parent, child) in NESTED {
        let path = format!(
            "/{}/{{parent}}/{}/{{key}}",
            parent.collection(),
            child.collection()
        );
        r = r.route(
            &path,
            get(move |s: Ctx, Path((p, k)): Path<(String, String)>| async move {
                let id = child_of(&s.0, (parent, &p), child, &k)?;
                read(s, child, id).await
            })
            .put(
                move |s: Ctx, Path((p, k)): Path<(String, String)>, h: HeaderMap, b: Body| {
                    upsert(s, child, k, Some((parent, p)), h, b)
                },
            )
            .patch(
                move |s: Ctx, Path((p, k)): Path<(String, String)>, h: HeaderMap, b: Body| async move {
                    let id = child_of(&s.0, (parent, &p), child, &k)?;
                    update(s, child, id, h, b).await
                },
            )
            .delete(move |s: Ctx, Path((p, k)): Path<(String, String)>| async move {
                let id = child_of(&s.0, (parent, &p), child, &k)?;
                remove(s, child, id).await
            }),
        );
    }
    r.route(
        "/routes/{key}/service",
        get(|s: Ctx, Path(k): Path<String>| async move {
            let id = service_of(&s.0, &k)?;
            read(s, Kind::Service, id).await
        })
        .put(|s: Ctx, Path(k): Path<String>, h: HeaderMap, b: Body| put_route_service(s, k, h, b))
        .patch(
            |s: Ctx, Path(k): Path<String>, h: HeaderMap, b: Body| async move {
                let id = service_of(&s.0, &k)?;
                update(s, Kind::Service, id, h, b).await
            },
        )
        // A Route's Service is not deleted through the Route (Kong's answer), only looked up.
        .delete(|s: Ctx, Path(k): Path<String>| async move {
            route_service(&s.0, &k)?;
            Err::<axum::response::Response, _>(ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ))
        }),
    )
}
