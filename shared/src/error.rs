//! Error codes shared by the admin API (HTTP status) and the cluster protocol (gRPC code).

use serde_json::{json, Value};

use crate::entity::Kind;
use crate::schema::FieldErrors;

/// What went wrong with a change to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The input does not match the entity's schema; every offending field is named.
    #[error("schema violation ({0})")]
    Schema(FieldErrors),
    /// A reference by id names no entity, or the entity is still referenced by another (Kong's
    /// `foreign key violation`); `fields` names the reference (`{"service": {"id": …}}`) or the
    /// referencing kind (`{"@referenced_by": "routes"}`).
    #[error("{message}")]
    ForeignKey { message: String, fields: Value },
    /// A reference by name or username names no entity (Kong's `foreign keys unresolved`), at
    /// `field.name` or `field.username`.
    #[error("foreign keys unresolved ({0})")]
    Unresolved(FieldErrors),
    /// A unique field (name, username, plugin scope) is already taken; `fields` holds the taken key.
    #[error("{message}")]
    Unique { message: String, fields: Value },
    /// An entity with this id exists already (a create naming an id that is taken).
    #[error("primary key violation on key '{{id=\"{0}\"}}'")]
    PrimaryKey(uuid::Uuid),
    /// The addressed entity does not exist.
    #[error("not found")]
    NotFound,
}

impl StateError {
    /// A taken unique key, with Kong's message: `UNIQUE violation detected on '{name="a"}'`.
    pub fn unique(key: Value) -> StateError {
        StateError::Unique {
            message: format!("UNIQUE violation detected on '{}'", lua_table(&key)),
            fields: key,
        }
    }

    /// A reference by id in `field` to a `kind` entity that does not exist.
    pub fn missing_reference(field: &str, id: &uuid::Uuid, kind: Kind) -> StateError {
        let key = json!({ "id": id.to_string() });
        StateError::ForeignKey {
            message: format!(
                "the foreign key '{}' does not reference an existing '{}' entity.",
                lua_table(&key),
                kind.collection()
            ),
            fields: json!({ field: key }),
        }
    }

    /// A `parent` entity that cannot go because `child` entities reference it; `why` tells how, when
    /// Kong's sentence is not enough.
    pub fn referenced_by(child: &str, parent: Kind, why: Option<String>) -> StateError {
        StateError::ForeignKey {
            message: why.unwrap_or_else(|| {
                format!(
                    "an existing '{child}' entity references this '{}' entity",
                    parent.collection()
                )
            }),
            fields: json!({ "@referenced_by": child }),
        }
    }
}

/// A JSON value written as Kong writes keys in its messages (a Lua table: `{id="…",name=null}`, keys
/// sorted).
pub fn lua_table(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}={}", lua_table(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_table).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl From<FieldErrors> for StateError {
    fn from(e: FieldErrors) -> Self {
        StateError::Schema(e)
    }
}

/// One code per error class; maps to an HTTP status and a gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid input (HTTP 400, gRPC INVALID_ARGUMENT).
    InvalidInput,
    /// Missing entity (HTTP 404, gRPC NOT_FOUND).
    NotFound,
    /// Unique constraint (HTTP 409, gRPC ALREADY_EXISTS).
    Conflict,
    /// Missing or wrong credentials (HTTP 401, gRPC UNAUTHENTICATED).
    Unauthenticated,
    /// Authenticated but refused (HTTP 403, gRPC PERMISSION_DENIED).
    Forbidden,
    /// A dependency is down (HTTP 503, gRPC UNAVAILABLE).
    Unavailable,
    /// A bug or a failed disk (HTTP 500, gRPC INTERNAL).
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The numeric gRPC status code (as in `google.rpc.Code`).
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::InvalidInput => 3,
            ErrorCode::NotFound => 5,
            ErrorCode::Conflict => 6,
            ErrorCode::Forbidden => 7,
            ErrorCode::Unauthenticated => 16,
            ErrorCode::Unavailable => 14,
            ErrorCode::Internal => 13,
        }
    }
}

impl StateError {
    /// The error code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StateError::Schema(_)
            | StateError::ForeignKey { .. }
            | StateError::Unresolved(_)
            | StateError::PrimaryKey(_) => ErrorCode::InvalidInput,
            StateError::Unique { .. } => ErrorCode::Conflict,
            StateError::NotFound => ErrorCode::NotFound,
        }
    }

    /// Kong's error `name` for this error.
    pub fn kong_name(&self) -> &'static str {
        match self {
            StateError::Schema(_) => "schema violation",
            StateError::ForeignKey { .. } => "foreign key violation",
            StateError::Unresolved(_) => "foreign keys unresolved",
            StateError::PrimaryKey(_) => "primary key violation",
            StateError::Unique { .. } => "unique constraint violation",
            StateError::NotFound => "not found",
        }
    }
}

/// An error and its causes on one line ("error performing TLS handshake: invalid peer certificate: …"); a
/// cause whose text the line already ends with is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}
