//! Plugins: a trait with one hook per phase it may take part in (default: nothing), one factory per
//! plugin building each instance once per snapshot, and [`registry`] listing every plugin with Kong's
//! priority, in execution order.
//!
//! Adding a plugin: its config schema in `shared::plugins`, its file here implementing the phases it
//! needs, one entry in [`registry`], its tests.

mod acl;
mod claims;
mod consumers;
pub mod cookies;
mod cors;
pub mod credentials;
mod exchange;
pub mod groups;
pub mod idp;
mod idp_clients;
mod instance;
pub mod introspection_answer;
pub mod oauth2_introspection;
pub mod openid_connect;
mod plugin;
pub mod rate_limiting;
pub mod redis_clients;
mod refusal;
mod registry;
pub mod sealed;
pub mod session_revocations;
mod traffic_stores;

pub use claims::{claim_header, claim_header_value, claim_values, token_fingerprint};
pub use consumers::{anonymous_consumer, find_consumer, ConsumerField, ConsumerIndex};
pub use exchange::{Exchange, RequestId, BODY_INSPECT_LIMIT};
pub use idp_clients::IdpClients;
pub use instance::{BuildCtx, Events};
pub use plugin::Plugin;
pub use refusal::Refusal;
pub use registry::{registry, Factory, Registered};
pub use session_revocations::SessionRevocations;
pub use traffic_stores::TrafficStores;
