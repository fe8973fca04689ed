//! A Target's host must resolve when it is written, as an operator would expect from a typo'd name: the
//! Admin API looks it up (at most 2 s) before the write and answers 400 naming `target` when it does not.
//! It asks the name servers of `--dns-resolver` (the system's without it), as nodes given the same flag
//! do, and reads the hosts file.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use serde_json::Value;
use shared::dns::Nameservers;
use shared::Kind;

use super::ApiError;

/// How long a Target's name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The resolver Target names are checked with.
pub struct TargetResolver(TokioResolver);

impl TargetResolver {
    /// Asks `servers`, or the system's name servers without them (only the hosts file when the system
    /// has no DNS configuration).
    pub fn new(servers: Option<&Nameservers>) -> TargetResolver {
        TargetResolver(platform::dns::resolver(servers))
    }

    /// Checks that the `target` of a Target body resolves (IP addresses always do); other kinds pass.
    pub async fn check(&self, kind: Kind, body: &Value) -> Result<(), ApiError> {
        if kind != Kind::Target {
            return Ok(());
        }
        let Some(raw) = body.get("target").and_then(Value::as_str) else {
            return Ok(());
        };
        // A malformed target is the parser's to report, with its own message.
        let Ok(addr) = shared::upstream::TargetAddr::parse(raw) else {
            return Ok(());
        };
        if addr.ip.is_some() {
            return Ok(());
        }
        let host = &addr.host;
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, self.0.lookup_ip(addr.bare())).await;
        let why = match found {
            Ok(Ok(ips)) if ips.iter().next().is_some() => return Ok(()),
            Ok(Ok(_)) => "it has no address".to_string(),
            Ok(Err(e)) if e.is_no_records_found() => "it has no address".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()),
        };
        Err(ApiError::schema(shared::entity::field_error(
            "target",
            &format!("'{host}' does not resolve: {why}"),
        )))
    }
}
