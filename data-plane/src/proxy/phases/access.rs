//! The access phase: the plugins that apply to the request, in the registry's order (Kong's priorities:
//! authentication, then authorization, then rate limiting). One may answer instead of the upstream.

use std::sync::Arc;

use smallvec::SmallVec;

use super::context::RequestCtx;
use super::route::Routed;
use crate::plugins::{Exchange, Plugin};
use crate::proxy::error::ProxyError;

/// The plugins that ran, for the response phases (inline: a route rarely has more than four).
pub type Ran = SmallVec<[Arc<dyn Plugin>; 4]>;

/// Runs each applicable plugin's access hook; the first refusal ends the request.
pub async fn access(
    cx: &RequestCtx<'_>,
    routed: &Routed<'_>,
    ex: &mut Exchange,
) -> Result<Ran, ProxyError> {
    let rt = cx.rt;
    let protocol = routed.entry.protocol(cx.conn.scheme);
    let (route, service) = (routed.entry.route.id, routed.service.service.id);
    let mut ran = Ran::new();
    for plugin in &rt.active_plugins {
        let consumer = ex.consumer.as_ref().map(|c| c.id);
        let Some(p) = rt.plugin_for(plugin, protocol, route, Some(service), consumer) else {
            continue;
        };
        if let Err(refusal) = p.access(ex).await {
            cx.node
                .metrics
                .plugin_refusals
                .add(&[("plugin", plugin.name), ("reason", refusal.reason())], 1);
            return Err(ProxyError::Plugin {
                plugin: plugin.name,
                refusal,
            });
        }
        ran.push(p.clone());
    }
    Ok(ran)
}
