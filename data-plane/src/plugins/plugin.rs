//! The trait every plugin implements: one hook per phase it may take part in.

use super::exchange::Exchange;
use super::refusal::Refusal;

/// A plugin instance: the phases it takes part in (see `crate::proxy::phases`). Every hook has a default
/// that does nothing; hooks run in the order of [`super::registry`] (Kong's priorities, highest first).
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// The access phase, before proxying: authenticate, authorize, limit. `Err` answers the request
    /// instead of the upstream.
    async fn access(&self, _ex: &mut Exchange) -> Result<(), Refusal> {
        Ok(())
    }
    /// The response-headers phase, on the upstream's response head.
    fn header_filter(&self, _ex: &Exchange, _resp: &mut http::response::Parts) {}
    /// The log phase, once the response head is ready.
    fn log(&self, _ex: &Exchange, _status: u16) {}
}
