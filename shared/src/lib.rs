//! Types both planes agree on, with no I/O: entities and their validation, plugin config schemas, the
//! configuration state and its consistency check, snapshot encoding and hashing, error codes, pairing tokens.

pub mod accept;
pub mod delta;
pub mod digest;
pub mod dns;
pub mod entity;
pub mod error;
pub mod http_syntax;
pub mod jwt;
pub mod keyword;
pub mod pairing;
pub mod plugins;
pub mod protocol;
pub mod schema;
pub mod state;
pub mod tls;
pub mod upstream;

pub use digest::StateDigest;
pub use entity::{
    Acl, Consumer, ConsumerGroup, ConsumerGroupMember, ForeignKey, Kind, ParseCtx, Plugin,
    Resolver, Route, Service,
};
pub use error::{ErrorCode, StateError};
pub use schema::FieldErrors;
pub use state::{Change, ConfigState, Entity};
pub use tls::{CaCertificate, Certificate, Sni};

/// The software version of this build, reported by nodes and the control plane.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
