//! The access phase: the plugins that apply to the request, in the registry's order (Kong's priorities:
//! CORS preflights, authentication, then authorization, then rate limiting). One may answer instead of
//! the upstream; its answer then gets what the plugins that ran before it add to every answer (a renewed
//! session cookie, CORS fields), as an upstream's answer would.

use std::sync::Arc;

use smallvec::SmallVec;

use super::context::RequestCtx;
use super::route::Routed;
use crate::plugins::{Exchange, Plugin, Refusal};
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
            let refusal = with_earlier_fields(refusal, ex, &ran);
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

/// `refusal` with the fields earlier plugins add to an answer: their answer fields, and what their
/// response-headers hooks add.
fn with_earlier_fields(refusal: Refusal, ex: &Exchange, ran: &Ran) -> Refusal {
    let mut refusal = ex
        .answer_fields
        .iter()
        .fold(refusal, |r, (n, v)| r.with_field(n.clone(), v.clone()));
    if ran.is_empty() {
        return refusal;
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = refusal.status();
    for p in ran {
        p.header_filter(ex, &mut parts);
    }
    let mut last = None;
    for (name, value) in parts.headers {
        // A name comes with its first value only; the rest follow under `None`.
        let name = match name {
            Some(n) => last.insert(n).clone(),
            None => match &last {
                Some(n) => n.clone(),
                None => continue,
            },
        };
        refusal = refusal.with_field(name, value);
    }
    refusal
}
