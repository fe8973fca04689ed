//! The runtime configuration: everything the request path needs, built from one snapshot off the request
//! path and swapped in atomically. Requests keep the `Arc` they started with.

use std::collections::HashMap;
use std::sync::Arc;

use shared::{ConfigState, Route, Service};
use uuid::Uuid;

use crate::plugins::{registry, BuildCtx, Plugin};
use crate::router::Router;

type ScopeKey = (&'static str, Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// A built configuration.
pub struct RuntimeConfig {
    pub version: u64,
    pub hash: String,
    pub state: Arc<ConfigState>,
    pub router: Router,
    pub routes: HashMap<Uuid, Arc<Route>>,
    pub services: HashMap<Uuid, Arc<Service>>,
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
            routes: state
                .routes
                .values()
                .map(|r| (r.id, Arc::new(r.clone())))
                .collect(),
            services: state
                .services
                .values()
                .map(|s| (s.id, Arc::new(s.clone())))
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
