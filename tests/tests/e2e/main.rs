//! The end-to-end scenarios, one module per area, linked into one test binary so the suite builds and
//! links the workspace once. Each module's own documentation says what it covers. Run one area with a
//! name filter: `cargo test -p tests --test e2e proxy_tls::`.

mod acl;
mod admin_acls;
mod admin_api;
mod admin_kong;
mod admin_kong_errors;
mod admin_kong_schemas;
mod balancing;
mod browser_sessions_redis;
mod browser_sign_in;
mod cluster;
mod conformance;
mod consumer_groups;
mod containers;
mod cors;
mod deck_cli;
mod dns_targets;
mod downstream_h1;
mod failover;
mod faults;
mod grpc;
mod hostile_input;
mod idp_failures;
mod incremental_sync;
mod interop;
mod introspection;
mod kong_client;
mod openid_connect;
mod openid_connect_authorization;
mod openid_connect_userinfo;
mod operator_ca;
mod postgres_failover;
mod postgres_ha;
mod postgres_secrets;
mod process;
mod proxy;
mod proxy_tls;
mod quickstart;
mod rate_limiting;
mod real_browser;
mod upstream_h1;
mod upstream_mtls;
mod upstream_tls;
mod websocket;
mod websocket_frames;
