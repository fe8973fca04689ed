//! The Admin API (axum), with Kong's REST conventions and error shapes.

mod certificates;
mod clustering;
mod consumer_groups;
pub mod cors;
pub mod declarative;
mod entities;
pub mod form;
mod info;
mod kong_schemas;
mod metrics;
mod nested;
mod oidc;
mod openapi;
mod paging;
pub mod server_stats;
pub mod targets;
mod upstream_health;

pub use form::{form_to_json, MAX_FORM_KEY_DEPTH};

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::StateError;
use tracing::warn;

use crate::cluster::Cluster;
use crate::core::{Core, WriteError};
use crate::store::StoreError;

/// Largest body accepted on entity endpoints.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AdminCtx {
    pub core: Arc<Core>,
    pub cluster: Arc<Cluster>,
    /// The admin token, when one is required.
    pub admin_token: Option<String>,
    /// Browser origins allowed to call the Admin API; none when unset.
    pub cors_origin: Option<cors::CorsOrigin>,
    /// Connections and requests of the Admin API server (`GET /status`).
    pub server_stats: Arc<server_stats::ServerStats>,
    /// How long the store's writes take (`GET /metrics`).
    pub store_times: Arc<crate::store::StoreTimes>,
    /// Non-secret settings reported by `GET /`.
    pub configuration: Value,
    /// Discovery documents of `openid-connect` issuers.
    pub issuers: oidc::Issuers,
    /// Largest body `POST /config` accepts.
    pub config_body_limit: usize,
    /// Checks that Target names resolve.
    pub targets: targets::TargetResolver,
}

/// Shared handler state.
pub type Ctx = State<Arc<AdminCtx>>;

/// An error answered as Kong does: status, `message`, `name`, `code` and field errors.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// An error with only a message.
    pub fn message(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "message": message.into() }),
        }
    }

    /// 400 with a plain message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::message(StatusCode::BAD_REQUEST, message)
    }

    /// 400 with one of Kong's error codes and its name (`9`, `invalid size`).
    pub fn kong(code: u8, name: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "code": code, "name": name, "message": message.into() }),
        }
    }

    /// Kong's `invalid options` error for one query option (`tags`): code 11, the option named under
    /// `options`.
    pub fn invalid_option(option: &str, why: &str) -> ApiError {
        let mut e = ApiError::kong(
            11,
            "invalid options",
            format!("invalid option ({option}: {why})"),
        );
        e.body["options"] = json!({ option: why });
        e
    }

    /// 404 as Kong answers it.
    pub fn not_found() -> ApiError {
        ApiError::message(StatusCode::NOT_FOUND, "Not found")
    }

    /// A Kong `schema violation` naming each field.
    pub fn schema(errors: shared::FieldErrors) -> ApiError {
        StateError::Schema(errors).into()
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let status =
            StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let (code, message, fields) = match &e {
            StateError::Schema(f) => (
                2,
                f.kong_message("schema violation", "schema violations"),
                Some(f.to_json()),
            ),
            StateError::PrimaryKey(id) => (3, e.to_string(), Some(json!({ "id": id }))),
            StateError::ForeignKey { message, fields } => {
                (4, message.clone(), Some(fields.clone()))
            }
            StateError::Unique { message, fields } => (5, message.clone(), Some(fields.clone())),
            StateError::NotFound => (6, "Not found".to_string(), None),
            StateError::Unresolved(f) => (
                13,
                f.kong_message("foreign key unresolved", "foreign keys unresolved"),
                Some(f.to_json()),
            ),
        };
        let mut body = json!({ "message": message, "name": e.kong_name(), "code": code });
        if let Some(fields) = fields {
            body["fields"] = fields;
        }
        ApiError { status, body }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        warn!(error = %e, "store failed; the request was not carried out");
        let status = match e {
            // Outages and contention pass: the client may retry.
            StoreError::Unavailable(_) | StoreError::Conflict { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            StoreError::Io(_) | StoreError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            body: json!({"message": format!("the request could not be carried out and nothing was changed: {e}"), "name": "database error", "code": 8}),
        }
    }
}

impl<E: Into<ApiError>> From<WriteError<E>> for ApiError {
    fn from(e: WriteError<E>) -> Self {
        match e {
            WriteError::Rejected(e) => e.into(),
            WriteError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Result type of handlers.
pub type ApiResult = Result<Response, ApiError>;

/// Builds the Admin API router. CORS wraps the whole router (a layer on the router itself would run per
/// route, after routing), so its `OPTIONS` answer can ask the router which methods a path serves.
pub fn router(ctx: Arc<AdminCtx>) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/openapi.json", get(openapi::document))
        .merge(info::routes())
        .merge(kong_schemas::routes())
        .merge(entities::routes())
        .merge(nested::routes())
        .merge(consumer_groups::routes())
        .merge(metrics::routes())
        .merge(declarative::routes())
        .merge(clustering::routes())
        .merge(oidc::routes())
        .merge(upstream_health::routes())
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::map_response(method_not_allowed))
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .with_state(ctx.clone());
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(ctx.clone(), cors::cors))
        .layer(middleware::from_fn_with_state(ctx, server_stats::count))
}

/// The router's 405 with Kong's JSON message (the router then names the path's methods in `Allow`).
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    ApiError::message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").into_response()
}

/// Whether two byte strings are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires the admin token (as `Authorization: Bearer` or `Kong-Admin-Token`) when one is configured.
async fn authenticate(State(ctx): Ctx, req: Request, next: Next) -> Response {
    // The `OPTIONS` answer's probe of a path's methods runs no handler.
    let probe = req.extensions().get::<cors::MethodProbe>().is_some();
    if let (Some(expected), false) = (&ctx.admin_token, probe) {
        let headers = req.headers();
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .or_else(|| {
                headers
                    .get("kong-admin-token")
                    .and_then(|v| v.to_str().ok())
            });
        let ok = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()));
        if !ok {
            warn!(path = %req.uri().path(), "admin request refused: missing or wrong admin token");
            return ApiError::message(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: send the admin token as 'Authorization: Bearer <token>' or 'Kong-Admin-Token'",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn status(State(ctx): Ctx) -> Json<Value> {
    let current = ctx.core.current();
    let latest = ctx.cluster.latest();
    let rejected = ctx.cluster.publish_status.borrow().rejected.clone();
    Json(json!({
        "database": { "reachable": ctx.core.store().healthy().await },
        // Kong's field: the hash of the configuration nodes are given.
        "configuration_hash": latest.as_ref().map(|s| s.hash.clone()),
        "config_version": current.version,
        "published": latest.as_ref().map(|s| json!({"version": s.version, "hash": s.hash, "routes": s.routes})),
        "publish_error": rejected.map(|(v, reason)| json!({"version": v, "reason": reason})),
        "entities": {
            "services": current.state.services.len(),
            "routes": current.state.routes.len(),
            "consumers": current.state.consumers.len(),
            "plugins": current.state.plugins.len(),
        },
        "data_planes": { "connected": ctx.cluster.nodes.connected() },
        // Kong's block about the Admin API server itself.
        "server": ctx.server_stats.to_json(),
    }))
}

/// Reads a request body of at most `limit` bytes (413 beyond) and tells its format from the content type
/// (415 for one the Admin API does not read); `None` for an empty body.
pub async fn read_bytes(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Option<(Bytes, BodyFormat)>, ApiError> {
    let too_large = || {
        ApiError::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    };
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(shared::http_syntax::media_type);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // An empty body is no body, except where it claims to be JSON: Kong cannot parse it.
        return match content_type.as_deref() {
            Some("application/json") => Err(ApiError::bad_request(CANNOT_PARSE_JSON)),
            _ => Ok(None),
        };
    }
    let format = match content_type.as_deref() {
        Some("application/json") => BodyFormat::Json,
        Some("application/x-www-form-urlencoded") => BodyFormat::Form,
        // Kong reads multipart forms as it reads URL-encoded ones; so does this, by turning one into the
        // other.
        Some("multipart/form-data") => {
            let bytes = multipart_as_urlencoded(headers, bytes).await?;
            return Ok(Some((bytes, BodyFormat::Form)));
        }
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            BodyFormat::Yaml
        }
        other => {
            return Err(ApiError::message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Unsupported Content-Type {}: send application/json, application/x-www-form-urlencoded or multipart/form-data",
                    other.map(|o| format!("'{o}'")).unwrap_or_else(|| "(none)".into())
                ),
            ))
        }
    };
    Ok(Some((bytes, format)))
}

/// The text fields of a `multipart/form-data` body, encoded as `application/x-www-form-urlencoded`.
async fn multipart_as_urlencoded(headers: &HeaderMap, bytes: Bytes) -> Result<Bytes, ApiError> {
    let unreadable =
        |e: multer::Error| ApiError::bad_request(format!("Cannot parse multipart body: {e}"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(unreadable)?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::new(body, boundary);
    let mut pairs: Vec<(String, String)> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        let value = field.bytes().await.map_err(unreadable)?;
        pairs.push((name.clone(), form::utf8(&name, value.to_vec())?));
    }
    serde_urlencoded::to_string(&pairs)
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(format!("Cannot parse multipart body: {e}")))
}

/// Kong's exact answer to a body that is not JSON though its content type says so.
pub const CANNOT_PARSE_JSON: &str = "Cannot parse JSON body";

/// Reads a request body as JSON, a form (Kong's `paths[]=/a`, `config.ttl=5`) or YAML, with clear
/// errors for anything else.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Option<(Value, BodyFormat)>, ApiError> {
    let Some((bytes, format)) = read_bytes(headers, body, limit).await? else {
        return Ok(None);
    };
    let value = match format {
        // Kong's exact answer, which clients match on.
        BodyFormat::Json => {
            serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request(CANNOT_PARSE_JSON))?
        }
        BodyFormat::Form => form_to_json(form::pairs(&bytes)?)?,
        BodyFormat::Yaml => serde_yaml::from_slice::<Value>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("Cannot parse YAML body: {e}")))?,
    };
    Ok(Some((value, format)))
}

/// How a body was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    Yaml,
}
