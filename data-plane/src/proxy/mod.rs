//! The proxy: route, run plugins, forward upstream with pooled connections, stream bodies both ways, and
//! answer errors the way Kong does.
//!
//! - [`listen`]: the accept loop and connection handling; [`handle`]: one request, its request id and
//!   metrics; [`ctx`]: what a request may touch ([`ProxyCtx`]) and the connection it came on.
//! - `h1_server`: plain HTTP/1.x client connections served in their own task, handed to the hyper
//!   server at the first request with a body, an upgrade or an HTTP/2 preface.
//! - [`phases`]: the request's life as named phases (route, rewrite, access, upstream request, response
//!   headers, log) over one context.
//! - [`forward`]: upstream path and the headers forwarded upstream; [`stamp`]: the fields every response
//!   gets.
//! - `send`: the upstream exchange, direct or balanced over an Upstream's Targets.
//! - `h1`: bodiless requests to plain-HTTP upstreams, exchanged in the request's own task.
//! - [`upgrade`]: WebSocket and other protocol upgrades, tunnelled once the upstream switches.
//! - [`upstream`]: pooled upstream clients; `connector`: connection retries.
//! - [`error`]: [`ProxyError`], everything the proxy answers itself.
//! - [`workers`]: thread-per-core serving (`--workers`).

mod connector;
pub mod ctx;
pub mod error;
mod error_format;
pub mod forward;
pub mod framing;
pub mod grpc;
mod h1;
mod h1_server;
pub mod handle;
mod header_maps;
pub mod listen;
pub mod parsers;
pub mod phases;
mod send;
pub mod stamp;
pub mod upgrade;
pub mod upstream;
pub mod workers;

pub use ctx::{Connection, ProxyCtx};
pub use error::{error, ProxyError};
pub use handle::handle;
pub use listen::{pause_after_accept_error, serve, ProxyListener};
pub use upstream::UpstreamClients;

pub use crate::runtime::Scheme;
