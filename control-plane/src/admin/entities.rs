//! CRUD on every entity kind, with nested endpoints, paging and tag filters (Certificates' extras are in
//! `certificates.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use shared::entity::merge_json;
use shared::schema::parsing_form;
use shared::{Change, ConfigState, Entity, FieldErrors, Kind, ParseCtx, Resolver, StateError};
use uuid::Uuid;

use super::certificates::{public_json, put_snis, redacted_keys, restore_keys, take_snis};
use super::{read_body, AdminCtx, ApiError, ApiResult, BodyFormat, Ctx, BODY_LIMIT};
use crate::cluster::unix_now;

/// The routes of this module.
pub fn routes() -> Router<Arc<AdminCtx>> {
    let mut r = Router::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.has_endpoints()) {
        let coll = format!("/{}", kind.collection());
        r = r
            .route(
                &coll,
                get(move |s: Ctx, q: RawQuery| list(s, kind, None, q))
                    .post(move |s: Ctx, h: HeaderMap, b: Body| create(s, kind, None, h, b)),
            )
            .route(
                &format!("{coll}/{{key}}"),
                get(move |s: Ctx, Path(k): Path<String>| read(s, kind, k))
                    .put(
                        move |s: Ctx, Path(k): Path<String>, h: HeaderMap, b: Body| {
                            upsert(s, kind, k, None, h, b)
                        },
                    )
                    .patch(
                        move |s: Ctx, Path(k): Path<String>, h: HeaderMap, b: Body| {
                            update(s, kind, k, h, b)
                        },
                    )
                    .delete(move |s: Ctx, Path(k): Path<String>| remove(s, kind, k)),
            );
    }
    // Nested collections: the parent is fixed by the path.
    for (parent, child) in super::nested::NESTED {
        let path = format!("/{}/{{parent}}/{}", parent.collection(), child.collection());
        r = r.route(
            &path,
            get(move |s: Ctx, Path(p): Path<String>, q: RawQuery| {
                list(s, child, Some((parent, p)), q)
            })
            .post(
                move |s: Ctx, Path(p): Path<String>, h: HeaderMap, b: Body| {
                    create(s, child, Some((parent, p)), h, b)
                },
            ),
        );
    }
    r
}

/// Points `body` at the parent a nested path names (404 when it does not exist).
fn scope_to(
    state: &ConfigState,
    body: &mut Value,
    parent: Option<&(Kind, String)>,
) -> Result<(), StateError> {
    if let Some((pk, key)) = parent {
        let p = find(state, *pk, key).ok_or(StateError::NotFound)?;
        body[pk.singular()] = json!({ "id": p.id() });
    }
    Ok(())
}

/// The field a path may name an entity of `kind` by; `None` for kinds only reachable by id.
fn name_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Consumer => Some("username"),
        Kind::Plugin => Some("instance_name"),
        // An ACL's group names it only within its Consumer (see `nested.rs`).
        Kind::Certificate
        | Kind::CaCertificate
        | Kind::Target
        | Kind::Acl
        | Kind::ConsumerGroupMember => None,
        Kind::Service | Kind::Route | Kind::Sni | Kind::Upstream | Kind::ConsumerGroup => {
            Some("name")
        }
    }
}

/// Finds an entity by id or by its unique name.
pub(super) fn find(state: &ConfigState, kind: Kind, key: &str) -> Option<Entity> {
    state.resolve(kind, key).and_then(|id| state.get(kind, &id))
}

/// Finds an entity by `key` as a path under `parent` names it: as [`find`], except that a Consumer's
/// ACL is also named by its group (`/consumers/{c}/acls/{group}`, Kong's endpoint key).
pub(super) fn find_under(
    state: &ConfigState,
    kind: Kind,
    key: &str,
    parent: Option<&(Kind, String)>,
) -> Option<Entity> {
    match (kind, parent) {
        (Kind::Acl, Some((Kind::Consumer, consumer))) if Uuid::parse_str(key).is_err() => {
            let consumer = state.resolve(Kind::Consumer, consumer)?;
            state
                .acls
                .values()
                .find(|a| a.consumer.id == consumer && a.group == key)
                .cloned()
                .map(Entity::Acl)
        }
        _ => find(state, kind, key),
    }
}

/// The field a path names an entity of `kind` by, under `parent`: [`name_field`], and an ACL's group
/// under its Consumer.
fn key_field(kind: Kind, parent: Option<&(Kind, String)>) -> Option<&'static str> {
    match (kind, parent) {
        (Kind::Acl, Some((Kind::Consumer, _))) => Some("group"),
        _ => name_field(kind),
    }
}

pub(super) fn belongs_to(e: &Entity, parent: Kind, parent_id: Uuid) -> bool {
    let fk = match (e, parent) {
        (Entity::Route(r), Kind::Service) => r.service,
        (Entity::Plugin(p), Kind::Service) => p.service,
        (Entity::Plugin(p), Kind::Route) => p.route,
        (Entity::Plugin(p), Kind::Consumer) => p.consumer,
        (Entity::Sni(s), Kind::Certificate) => Some(s.certificate),
        (Entity::Target(t), Kind::Upstream) => Some(t.upstream),
        (Entity::Acl(a), Kind::Consumer) => Some(a.consumer),
        _ => None,
    };
    fk.map(|f| f.id) == Some(parent_id)
}

/// A list's `size` parameter: an integer from 1 to 1000, 100 when left out; otherwise Kong's
/// `invalid size` error.
pub(super) fn page_size(size: Option<&str>) -> Result<usize, ApiError> {
    let Some(size) = size else {
        return Ok(100);
    };
    let Ok(n) = size.trim().parse::<f64>() else {
        return Err(ApiError::kong(9, "invalid size", "size must be a number"));
    };
    if n.fract() != 0.0 || !(1.0..=1000.0).contains(&n) {
        return Err(ApiError::kong(
            9,
            "invalid size",
            "size must be an integer between 1 and 1000",
        ));
    }
    Ok(n as usize)
}

/// A Kong tag filter: `a,b` (entities with every tag) or `a/b` (with any), at most 5 tags.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TagFilter {
    All(Vec<String>),
    Any(Vec<String>),
}

impl TagFilter {
    /// Reads `tags=`; Kong's `invalid options` error when it is empty, mixes `,` and `/`, has an empty
    /// tag or more than 5.
    pub(super) fn parse(filter: &str) -> Result<TagFilter, ApiError> {
        if filter.is_empty() {
            return Err(ApiError::invalid_option("tags", "cannot be null"));
        }
        let any = filter.contains('/');
        if any && filter.contains(',') {
            return Err(ApiError::invalid_option("tags", "invalid filter syntax"));
        }
        let separator = if any { '/' } else { ',' };
        // A trailing separator is allowed, as Kong's filter syntax allows it.
        let tags: Vec<String> = filter
            .strip_suffix(separator)
            .unwrap_or(filter)
            .split(separator)
            .map(str::to_string)
            .collect();
        if tags
            .iter()
            .any(|t| t.is_empty() || t.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_option("tags", "invalid filter syntax"));
        }
        if tags.len() > 5 {
            return Err(ApiError::invalid_option(
                "tags",
                "cannot query more than 5 tags",
            ));
        }
        Ok(if any {
            TagFilter::Any(tags)
        } else {
            TagFilter::All(tags)
        })
    }

    /// Whether an entity with `tags` passes the filter.
    pub(super) fn matches(&self, tags: &[String]) -> bool {
        let has = |t: &String| tags.contains(t);
        match self {
            TagFilter::All(wanted) => wanted.iter().all(has),
            TagFilter::Any(wanted) => wanted.iter().any(has),
        }
    }
}

/// Whether a `name` parameter of the raw query `q` decodes to bytes that are not UTF-8 (the parsed
/// query has them replaced, so this looks at the raw text).
fn undecodable(q: Option<&str>, name: &str) -> bool {
    q.into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == name)
        .any(|(_, v)| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
            std::str::from_utf8(&bytes).is_err()
        })
}

pub(super) fn parse_query(q: &Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    match q {
        None => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}"))),
    }
}

async fn list(
    State(ctx): Ctx,
    kind: Kind,
    parent: Option<(Kind, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = parse_query(&q)?;
    let get_param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let size = page_size(get_param("size").as_deref())?;
    let after = match get_param("offset") {
        None => None,
        Some(o) => Some(decode_offset(&o).ok_or_else(|| {
            ApiError { status: StatusCode::BAD_REQUEST, body: json!({"message": format!("'{o}' is not a valid offset"), "name": "invalid offset", "code": 7}) }
        })?),
    };
    if undecodable(q.as_deref(), "tags") {
        return Err(ApiError::invalid_option("tags", "invalid filter syntax"));
    }
    // A nested list ignores the filter, as Kong's does (its parent already narrows it).
    let tags = get_param("tags")
        .filter(|_| parent.is_none())
        .map(|t| TagFilter::parse(&t))
        .transpose()?;
    let current = ctx.core.current();
    let state = &current.state;
    // `GET /consumers?custom_id=…`: the one Consumer with that custom_id (Kong's lookup), unpaged.
    if let (Kind::Consumer, None, Some(custom_id)) = (kind, &parent, get_param("custom_id")) {
        if custom_id.is_empty() {
            return Err(ApiError::schema(shared::entity::field_error(
                "custom_id",
                "length must be at least 1",
            )));
        }
        let data: Vec<Value> = state
            .consumers
            .values()
            .filter(|c| c.custom_id.as_deref() == Some(custom_id.as_str()))
            .map(|c| public_json(state, &Entity::Consumer(c.clone())))
            .collect();
        return Ok(Json(json!({ "data": data, "next": null })).into_response());
    }
    let parent_id = match &parent {
        Some((pk, key)) => Some((
            *pk,
            find(state, *pk, key).ok_or_else(ApiError::not_found)?.id(),
        )),
        None => None,
    };
    let mut matching = state
        .list(kind)
        .into_iter()
        .filter(|e| parent_id.is_none_or(|(pk, pid)| belongs_to(e, pk, pid)))
        .filter(|e| tags.as_ref().is_none_or(|t| t.matches(e.tags())))
        .filter(|e| after.is_none_or(|a| e.id() > a));
    let page: Vec<Entity> = matching.by_ref().take(size).collect();
    let more = matching.next().is_some();
    let (next, offset) = match (more, page.last()) {
        (true, Some(last)) => {
            let off = encode_offset(last.id());
            let mut qs: Vec<(String, String)> =
                params.into_iter().filter(|(k, _)| k != "offset").collect();
            qs.push(("offset".into(), off.clone()));
            let path = match &parent {
                Some((pk, key)) => format!("/{}/{}/{}", pk.collection(), key, kind.collection()),
                None => format!("/{}", kind.collection()),
            };
            let query = serde_urlencoded::to_string(&qs).unwrap_or_default();
            (Value::String(format!("{path}?{query}")), Value::String(off))
        }
        _ => (Value::Null, Value::Null),
    };
    let data: Vec<Value> = page.iter().map(|e| public_json(state, e)).collect();
    Ok(Json(json!({ "data": data, "next": next, "offset": offset })).into_response())
}

fn encode_offset(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_offset(s: &str) -> Option<Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    Uuid::from_slice(&bytes).ok()
}

pub(super) async fn read(State(ctx): Ctx, kind: Kind, key: String) -> ApiResult {
    let current = ctx.core.current();
    let e = find(&current.state, kind, &key).ok_or_else(ApiError::not_found)?;
    if kind == Kind::ConsumerGroup {
        return Ok(Json(super::consumer_groups::group_view(&current.state, &e)).into_response());
    }
    Ok(Json(public_json(&current.state, &e)).into_response())
}

/// Parses `body` as an entity of `kind`.
pub fn parse_entity(kind: Kind, body: &Value, ctx: &ParseCtx<'_>) -> Result<Entity, StateError> {
    let unrestored = redacted_keys(body);
    if kind == Kind::Certificate && !unrestored.is_empty() {
        let mut errors = FieldErrors::new();
        for f in unrestored {
            errors.add(f, "holds the redaction placeholder and there is no stored key to keep; send the real key");
        }
        return Err(StateError::Schema(errors));
    }
    let e = Entity::parse(kind, body, ctx)?;
    if let Entity::Plugin(p) = &e {
        let still = shared::plugins::redacted_fields(&p.name, &p.config);
        if !still.is_empty() {
            let mut errors = FieldErrors::new();
            for f in still {
                errors.add(
                    format!("config.{f}"),
                    "holds the redaction placeholder and there is no stored secret to keep; send the real value",
                );
            }
            return Err(StateError::Schema(errors));
        }
    }
    Ok(e)
}

/// Parses `body` (a form body when `form`) as a new entity of `kind`, written at `now`: a new id unless
/// the body gives one.
pub(super) fn parse_new(
    state: &ConfigState,
    kind: Kind,
    body: &Value,
    form: bool,
    now: i64,
) -> Result<Entity, StateError> {
    let pctx = ParseCtx {
        id: Uuid::new_v4(),
        now,
        created_at: None,
        resolver: state,
    };
    parsing_form(form, || parse_entity(kind, body, &pctx))
}

/// Puts back secrets that the client echoed as redacted from the entity's stored config or keys, and
/// gives a plugin the secrets the control plane makes for it ([`fill_session_secret`]).
pub fn complete_secrets(body: &mut Value, existing: Option<&Entity>) {
    if let (Some(Entity::Plugin(old)), Some(cfg)) = (existing, body.get_mut("config")) {
        shared::plugins::restore_redacted(cfg, &old.config);
    }
    restore_keys(body, existing);
    fill_session_secret(body, existing);
}

/// An `openid-connect` plugin that signs people in needs a `session_secret`. When the operator gives
/// none, the plugin keeps the one it has, or gets a new one (256 random bits): it travels to every node
/// with the configuration, so a session made on one opens on all, and reads back redacted like any
/// secret.
fn fill_session_secret(body: &mut Value, existing: Option<&Entity>) {
    use shared::plugins::openid_connect;
    if body.get("name").and_then(Value::as_str) != Some(openid_connect::NAME) {
        return;
    }
    let Some(cfg) = body.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    let given = match cfg.get("session_secret") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if given || !openid_connect::signs_people_in(cfg) {
        return;
    }
    let kept = match existing {
        Some(Entity::Plugin(p)) => p
            .config
            .get("session_secret")
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .cloned(),
        _ => None,
    };
    let secret = kept.unwrap_or_else(|| {
        use base64::Engine;
        let made =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Value::Array(vec![Value::String(made)])
    });
    cfg.insert("session_secret".into(), secret);
}

/// The `snis` shorthand of a Certificate body, taken out of it (other kinds have none).
fn certificate_snis(kind: Kind, body: &mut Value) -> Result<Option<Vec<String>>, StateError> {
    if kind == Kind::Certificate {
        take_snis(body)
    } else {
        Ok(None)
    }
}

/// Writes a parsed entity and, for a Certificate written with the `snis` shorthand, its SNIs.
fn put_entity(
    state: &mut ConfigState,
    e: &Entity,
    snis: Option<&[String]>,
    now: i64,
) -> Result<Vec<Change>, StateError> {
    let mut changes = state.put(e.clone())?;
    if let Some(names) = snis {
        changes.extend(put_snis(state, e.id(), names, now)?);
    }
    Ok(changes)
}

/// The request body as an object, and whether it came as a form (whose values are all strings).
pub(super) async fn body_object(
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, bool), ApiError> {
    let (v, format) = read_body(headers, body, BODY_LIMIT)
        .await?
        .unwrap_or_else(|| (json!({}), BodyFormat::Json));
    if !v.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok((v, format == BodyFormat::Form))
}

async fn create(
    State(ctx): Ctx,
    kind: Kind,
    parent: Option<(Kind, String)>,
    h: HeaderMap,
    b: Body,
) -> ApiResult {
    let (request, form) = body_object(&h, b).await?;
    ctx.targets.check(kind, &request).await?;
    let (entity, _) = ctx
        .core
        .write(|state| {
            // Each attempt starts from the request as sent.
            let mut body = request.clone();
            scope_to(state, &mut body, parent.as_ref())?;
            complete_secrets(&mut body, None);
            let snis = certificate_snis(kind, &mut body)?;
            let now = unix_now();
            let e = parse_new(state, kind, &body, form, now)?;
            if state.get(kind, &e.id()).is_some() {
                return Err(StateError::PrimaryKey(e.id()));
            }
            let changes = put_entity(state, &e, snis.as_deref(), now)?;
            Ok::<_, StateError>((changes, e))
        })
        .await?;
    let shown = public_json(&ctx.core.current().state, &entity);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `PUT`: creates or replaces the entity `key` names; under `parent` (a nested path) the entity
/// belongs to that parent.
pub(super) async fn upsert(
    State(ctx): Ctx,
    kind: Kind,
    key: String,
    parent: Option<(Kind, String)>,
    h: HeaderMap,
    b: Body,
) -> ApiResult {
    let (request, form) = body_object(&h, b).await?;
    ctx.targets.check(kind, &request).await?;
    let (entity, _) = ctx
        .core
        .write(|state| {
            // Each attempt starts from the request as sent.
            let mut body = request.clone();
            scope_to(state, &mut body, parent.as_ref())?;
            let existing = find_under(state, kind, &key, parent.as_ref());
            // A path that names the entity (not an id) gives it that name, whether the entity exists
            // yet or not, as Kong's PUT by endpoint key does.
            if Uuid::parse_str(&key).is_err() {
                let Some(name_field) = key_field(kind, parent.as_ref()) else {
                    return Err(StateError::Schema(shared::entity::field_error(
                        "id",
                        "this entity has no name: the path must hold an id",
                    )));
                };
                body[name_field] = Value::String(key.clone());
            }
            let id = match (&existing, Uuid::parse_str(&key)) {
                (Some(e), _) => e.id(),
                (None, Ok(id)) => id,
                (None, Err(_)) => Uuid::new_v4(),
            };
            // The id comes from the path (or the entity the path names); a body may repeat it, not change it.
            if let Some(given) = body.get("id").filter(|v| !v.is_null()) {
                if given.as_str() != Some(id.to_string().as_str()) {
                    return Err(StateError::Schema(shared::entity::field_error(
                        "id",
                        "must be the id the path names, or left out",
                    )));
                }
            }
            if let Some(obj) = body.as_object_mut() {
                obj.insert("id".into(), Value::String(id.to_string()));
            }
            complete_secrets(&mut body, existing.as_ref());
            let snis = certificate_snis(kind, &mut body)?;
            let now = unix_now();
            let pctx = ParseCtx {
                id,
                now,
                created_at: existing.as_ref().map(Entity::created_at),
                resolver: state,
            };
            let e = parsing_form(form, || parse_entity(kind, &body, &pctx))?;
            let changes = put_entity(state, &e, snis.as_deref(), now)?;
            Ok::<_, StateError>((changes, e))
        })
        .await?;
    Ok(Json(public_json(&ctx.core.current().state, &entity)).into_response())
}

pub(super) async fn update(
    State(ctx): Ctx,
    kind: Kind,
    key: String,
    h: HeaderMap,
    b: Body,
) -> ApiResult {
    let (patch, form) = body_object(&h, b).await?;
    ctx.targets.check(kind, &patch).await?;
    let (entity, _) = ctx
        .core
        .write(|state| {
            let existing = find(state, kind, &key).ok_or(StateError::NotFound)?;
            if let Some(id) = patch.get("id").and_then(Value::as_str) {
                if id != existing.id().to_string() {
                    return Err(StateError::Schema(shared::entity::field_error(
                        "id",
                        "cannot be changed",
                    )));
                }
            }
            let mut body = existing.to_patch_base();
            if kind == Kind::Service && patch.get("url").is_some() {
                // The URL shorthand replaces all four parts, including a path it does not mention.
                if let Some(obj) = body.as_object_mut() {
                    for f in ["protocol", "host", "port", "path"] {
                        obj.remove(f);
                    }
                }
            }
            merge_json(&mut body, &patch);
            complete_secrets(&mut body, Some(&existing));
            let snis = certificate_snis(kind, &mut body)?;
            let now = unix_now();
            let pctx = ParseCtx {
                id: existing.id(),
                now,
                created_at: Some(existing.created_at()),
                resolver: state,
            };
            let e = parsing_form(form, || parse_entity(kind, &body, &pctx))?;
            let changes = put_entity(state, &e, snis.as_deref(), now)?;
            Ok::<_, StateError>((changes, e))
        })
        .await?;
    Ok(Json(public_json(&ctx.core.current().state, &entity)).into_response())
}

pub(super) async fn remove(State(ctx): Ctx, kind: Kind, key: String) -> ApiResult {
    ctx.core
        .write(|state| {
            // Kong answers 204 for an entity that is already gone.
            let Some(e) = find(state, kind, &key) else {
                return Ok((Vec::<Change>::new(), ()));
            };
            let changes = state.delete(kind, &e.id())?;
            Ok::<_, StateError>((changes, ()))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
