//! Error codes shared by the admin API (HTTP status) and the cluster protocol (gRPC code).

use crate::schema::FieldErrors;

/// What went wrong with a change to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The input does not match the entity's schema; every offending field is named.
    #[error("schema violation ({0})")]
    Schema(FieldErrors),
    /// A reference names an entity that does not exist, or an entity is still referenced.
    #[error("{0}")]
    ForeignKey(String),
    /// A unique field (name, username, plugin scope) is already taken.
    #[error("{0}")]
    Unique(String),
    /// The addressed entity does not exist.
    #[error("not found")]
    NotFound,
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
            StateError::Schema(_) | StateError::ForeignKey(_) => ErrorCode::InvalidInput,
            StateError::Unique(_) => ErrorCode::Conflict,
            StateError::NotFound => ErrorCode::NotFound,
        }
    }

    /// Kong's error `name` for this error.
    pub fn kong_name(&self) -> &'static str {
        match self {
            StateError::Schema(_) => "schema violation",
            StateError::ForeignKey(_) => "foreign key violation",
            StateError::Unique(_) => "unique constraint violation",
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
