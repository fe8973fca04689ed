//! A Target's host must resolve when it is written, as an operator would expect from a typo'd name: the
//! Admin API looks it up (at most 2 s) before the write and answers 400 naming `target` when it does not.

use std::time::Duration;

use serde_json::Value;
use shared::Kind;

use super::ApiError;

/// How long a Target's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that the `target` of a Target body resolves (IP addresses always do); other kinds pass.
pub async fn check_target_resolves(kind: Kind, body: &Value) -> Result<(), ApiError> {
    if kind != Kind::Target {
        return Ok(());
    }
    let Some(raw) = body.get("target").and_then(Value::as_str) else {
        return Ok(());
    };
    // A malformed target is the parser's to report, with its own message.
    let Ok((host, port)) = shared::upstream::split_target(raw) else {
        return Ok(());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
        .await
        .map(|r| r.map(|addrs| addrs.count()));
    let why = match found {
        Ok(Ok(0)) => "it has no address".to_string(),
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()),
    };
    Err(ApiError::schema(shared::entity::field_error(
        "target",
        &format!("'{host}' does not resolve: {why}"),
    )))
}
