//! The runtime configuration: everything the request path needs, built from one snapshot off the request
//! path and swapped in atomically. Requests keep the `Arc` they started with.

use std::collections::HashMap;
use std::sync::Arc;

use shared::{ConfigState, Route, Service};
use uuid::Uuid;

use crate::plugins::{registry, BuildCtx, Plugin};
use crate::router::Router;

type ScopeKey = (&'static str, Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// Where a Service's requests go, prepared once per snapshot.
pub struct Target {
    pub service: Arc<Service>,
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// `Host` sent upstream (unless the route preserves the client's).
    pub host_header: http::HeaderValue,
    /// The Service's name (or id) for metrics and logs.
    pub label: String,
}

impl Target {
    fn new(service: &Service) -> Result<Target, String> {
        let default_port = if service.protocol == "https" { 443 } else { 80 };
        let authority = if service.port == default_port {
            service.host.clone()
        } else {
            format!("{}:{}", service.host, service.port)
        };
        Ok(Target {
            service: Arc::new(service.clone()),
            scheme: service
                .protocol
                .parse()
                .map_err(|_| format!("service {}: bad protocol", service.id))?,
            authority: authority
                .parse()
                .map_err(|_| format!("service {}: bad host or port", service.id))?,
            host_header: http::HeaderValue::from_str(&authority)
                .map_err(|_| format!("service {}: bad host", service.id))?,
            label: service
                .name
                .clone()
                .unwrap_or_else(|| service.id.to_string()),
        })
    }
}

/// A built configuration.
pub struct RuntimeConfig {
    pub version: u64,
    pub hash: String,
    pub state: Arc<ConfigState>,
    pub router: Router,
    pub routes: HashMap<Uuid, Arc<Route>>,
    /// One per Service, by Service id.
    pub targets: HashMap<Uuid, Arc<Target>>,
    plugins: HashMap<ScopeKey, Arc<dyn Plugin>>,
    /// Plugin names present in this config, in execution order.
    pub active_plugins: Vec<&'static str>,
}

impl RuntimeConfig {
    /// Builds the router and one instance of every enabled plugin. Any failure rejects the whole snapshot.
    pub fn build(
        version: u64,
        hash: String,
        state: Arc<ConfigState>,
        ctx_of: impl FnOnce(Arc<ConfigState>) -> BuildCtx,
        allowed: &[String],
    ) -> Result<RuntimeConfig, String> {
        let router = Router::build(state.routes.values())?;
        let ctx = ctx_of(state.clone());
        let mut plugins = HashMap::new();
        let mut active = Vec::new();
        for p in state.plugins.values().filter(|p| p.enabled) {
            let Some((name, _, factory)) = registry().iter().find(|(n, _, _)| *n == p.name) else {
                return Err(format!(
                    "plugin '{}' ({}) is not supported by this node",
                    p.name, p.id
                ));
            };
            if !allowed.iter().any(|a| a == name) {
                return Err(format!(
                    "plugin '{}' ({}) is not enabled on this node",
                    p.name, p.id
                ));
            }
            let instance =
                factory(p, &ctx).map_err(|e| format!("plugin '{}' ({}): {e}", p.name, p.id))?;
            plugins.insert(
                (
                    *name,
                    p.route.map(|f| f.id),
                    p.service.map(|f| f.id),
                    p.consumer.map(|f| f.id),
                ),
                instance,
            );
            if !active.contains(name) {
                active.push(*name);
            }
        }
        active.sort_by_key(|n| registry().iter().position(|(r, _, _)| r == n));
        Ok(RuntimeConfig {
            version,
            hash,
            targets: state
                .services
                .values()
                .map(|s| Target::new(s).map(|t| (s.id, Arc::new(t))))
                .collect::<Result<_, _>>()?,
            routes: state
                .routes
                .values()
                .map(|r| (r.id, Arc::new(r.clone())))
                .collect(),
            state,
            router,
            plugins,
            active_plugins: active,
        })
    }

    /// The instance of plugin `name` that applies, with Kong's precedence (most specific scope first).
    pub fn plugin_for(
        &self,
        name: &'static str,
        route: Uuid,
        service: Option<Uuid>,
        consumer: Option<Uuid>,
    ) -> Option<&Arc<dyn Plugin>> {
        let r = Some(route);
        let candidates = [
            (r, service, consumer),
            (r, None, consumer),
            (None, service, consumer),
            (r, service, None),
            (None, None, consumer),
            (r, None, None),
            (None, service, None),
            (None, None, None),
        ];
        candidates.iter().find_map(|(r, s, c)| {
            if c.is_some() && consumer.is_none() || s.is_some() && service.is_none() {
                return None;
            }
            self.plugins.get(&(name, *r, *s, *c))
        })
    }
}
