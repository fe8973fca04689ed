//! What both planes do with the machine they run on, in one place: the wall clock, log output,
//! owner-only files, the DNS stub resolver, and OpenID Connect discovery with its failure cache.
//! `shared` stays free of all of it (no I/O, no clock); this crate is where the I/O both planes share
//! lives.

pub mod clock;
pub mod dns;
pub mod files;
pub mod logging;
pub mod oidc_discovery;

pub use clock::{unix_ms, unix_now};
pub use logging::{init_logging, LogFormat, LogOutput};
