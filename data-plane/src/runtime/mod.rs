//! The runtime configuration: everything the request path needs, built from one snapshot off the request
//! path and swapped in atomically. Requests keep the `Arc` they started with.

use std::collections::HashMap;
use std::sync::Arc;

use shared::protocol::{Protocol, ProtocolSet};
use shared::{Change, ConfigState, Kind, StateDigest};
use uuid::Uuid;

use crate::balancer::{Balancer, HealthRegistry};
use crate::cache::Caches;
use crate::dns::Dns;
use crate::metrics::Metrics;
use crate::plugins::{registry, BuildCtx, ConsumerIndex, IdpClients, Plugin};
use crate::router::Router;

mod entries;
use crate::tls::ServerCertificates;
pub use entries::{RouteEntry, Target};

type ScopeKey = (&'static str, Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// The maps a request looks into. Their keys are ids of the operator's entities, never a client's
/// input, so a fast hash serves (the default one costs several lookups' worth per request).
pub type EntityMap<K, V> =
    imbl::GenericHashMap<K, V, rustc_hash::FxBuildHasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A plugin instance and the protocols it runs on.
type Instance = (Arc<dyn Plugin>, ProtocolSet);

/// Node-wide resources plugin instances are built with.
#[derive(Clone)]
pub struct Resources {
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub clients: Arc<IdpClients>,
    /// Every Target's health, kept across snapshots.
    pub health: Arc<HealthRegistry>,
    /// What Target host names resolve to.
    pub dns: Arc<Dns>,
    /// Plugins this node runs.
    pub allowed: Vec<&'static str>,
}

/// The ids a change touched, by kind: each is rebuilt from the new state, or dropped if it is gone.
#[derive(Debug, Default)]
pub struct Touched {
    pub services: Vec<Uuid>,
    pub routes: Vec<Uuid>,
    pub consumers: Vec<Uuid>,
    pub plugins: Vec<Uuid>,
    /// Whether a Certificate, an SNI or a CA Certificate changed.
    pub tls: bool,
    /// Whether an Upstream or a Target changed.
    pub upstreams: bool,
}

impl Touched {
    /// The ids of `changes`.
    pub fn of(changes: &[Change]) -> Touched {
        let mut t = Touched::default();
        for c in changes {
            let (kind, id) = match c {
                Change::Put(e) => (e.kind(), e.id()),
                Change::Delete(k, id) => (*k, *id),
            };
            match kind {
                Kind::Service => t.services.push(id),
                Kind::Route => t.routes.push(id),
                Kind::Consumer => t.consumers.push(id),
                Kind::Plugin => t.plugins.push(id),
                Kind::Certificate | Kind::Sni | Kind::CaCertificate => t.tls = true,
                Kind::Upstream | Kind::Target => t.upstreams = true,
            }
        }
        t
    }

    /// Every entity of `state`: a build from nothing.
    pub fn all(state: &ConfigState) -> Touched {
        Touched {
            services: state.services.keys().copied().collect(),
            routes: state.routes.keys().copied().collect(),
            consumers: state.consumers.keys().copied().collect(),
            plugins: state.plugins.keys().copied().collect(),
            tls: true,
            upstreams: true,
        }
    }
}

/// A built configuration. Its maps are persistent, so the next version shares everything a change did
/// not touch.
#[derive(Default)]
pub struct RuntimeConfig {
    pub version: u64,
    /// The content hash ([`shared::StateDigest`]) of `state`.
    pub hash: String,
    pub state: Arc<ConfigState>,
    pub digest: StateDigest,
    pub router: Router,
    pub routes: EntityMap<Uuid, RouteEntry>,
    /// One per Service, by Service id.
    pub targets: EntityMap<Uuid, Arc<Target>>,
    consumers: Arc<ConsumerIndex>,
    plugins: EntityMap<ScopeKey, Instance>,
    /// Where each plugin entity's instance is, to take it out when the entity changes.
    plugin_scopes: EntityMap<Uuid, ScopeKey>,
    /// Plugins present in this config, in execution order.
    pub active_plugins: Vec<ActivePlugin>,
    /// The TLS listener's certificates by server name.
    pub tls: Arc<ServerCertificates>,
    /// One balancer per Upstream, by Upstream id.
    pub balancers: EntityMap<Uuid, Arc<Balancer>>,
}

impl RuntimeConfig {
    /// Builds everything of `state`. Any failure rejects the whole snapshot.
    pub fn build(
        version: u64,
        state: Arc<ConfigState>,
        digest: StateDigest,
        resources: &Resources,
    ) -> Result<RuntimeConfig, String> {
        let touched = Touched::all(&state);
        RuntimeConfig::default().updated(version, state, digest, &touched, resources)
    }

    /// The configuration for `state`, which differs from this one's state in the `touched` entities only:
    /// those are rebuilt (router entries of routes, targets of services, the Consumer index entries, the
    /// plugin instances; every plugin instance when a Consumer changed, since instances resolve their
    /// Consumers when built) and everything else is shared with this configuration.
    pub fn updated(
        &self,
        version: u64,
        state: Arc<ConfigState>,
        digest: StateDigest,
        touched: &Touched,
        resources: &Resources,
    ) -> Result<RuntimeConfig, String> {
        let removed: Vec<Uuid> = touched
            .routes
            .iter()
            .filter(|id| !state.routes.contains_key(id))
            .copied()
            .collect();
        let added = touched.routes.iter().filter_map(|id| state.routes.get(id));
        let router = self.router.updated(&removed, added)?;
        let mut routes = self.routes.clone();
        for id in &touched.routes {
            match state.routes.get(id) {
                Some(r) => routes.insert(*id, RouteEntry::new(r)),
                None => routes.remove(id),
            };
        }
        let balancers = if touched.upstreams {
            let mut built = EntityMap::default();
            for u in state.upstreams.values() {
                built.insert(
                    u.id,
                    Arc::new(Balancer::build(
                        u,
                        &state,
                        &resources.health,
                        &resources.dns.cache,
                    )?),
                );
            }
            let live: Vec<Uuid> = built.keys().copied().collect();
            resources.health.keep_upstreams(&live);
            built
        } else {
            self.balancers.clone()
        };
        // Upstream names, before and after, whose Services must pick up their new balancer.
        let balanced_hosts: std::collections::HashSet<&str> = if touched.upstreams {
            self.state
                .upstreams
                .values()
                .chain(state.upstreams.values())
                .map(|u| u.name.as_str())
                .collect()
        } else {
            Default::default()
        };
        // Upstreams by name (their names are lower case), for the Services whose host names one.
        let by_name: HashMap<&str, &Arc<Balancer>> = balancers
            .values()
            .map(|b| (b.upstream.name.as_str(), b))
            .collect();
        // Parsed once: served by the TLS listener and presented by Services as client certificates.
        let tls = if touched.tls {
            Arc::new(ServerCertificates::build(&state)?)
        } else {
            self.tls.clone()
        };
        let mut targets = self.targets.clone();
        // A changed certificate may be a Service's client certificate or trusted CA.
        let affected = state
            .services
            .values()
            .filter(|s| {
                (touched.tls && (s.client_certificate.is_some() || s.ca_certificates.is_some()))
                    || (!balanced_hosts.is_empty()
                        && balanced_hosts.contains(s.host.to_ascii_lowercase().as_str()))
            })
            .map(|s| s.id);
        for id in touched.services.iter().copied().chain(affected) {
            match state.services.get(&id) {
                Some(s) => targets.insert(id, Arc::new(Target::new(s, &state, &by_name, &tls)?)),
                None => targets.remove(&id),
            };
        }
        let consumers = if touched.consumers.is_empty() {
            self.consumers.clone()
        } else {
            Arc::new(
                self.consumers
                    .updated(&self.state, &state, &touched.consumers),
            )
        };
        let ctx = BuildCtx {
            state: state.clone(),
            consumers: consumers.clone(),
            caches: resources.caches.clone(),
            metrics: resources.metrics.clone(),
            clients: resources.clients.clone(),
        };
        let (mut plugins, mut plugin_scopes, rebuild): (_, _, Vec<Uuid>) =
            if touched.consumers.is_empty() {
                (
                    self.plugins.clone(),
                    self.plugin_scopes.clone(),
                    touched.plugins.clone(),
                )
            } else {
                let all = state.plugins.keys().copied().collect();
                (EntityMap::default(), EntityMap::default(), all)
            };
        for id in &rebuild {
            if let Some(key) = plugin_scopes.remove(id) {
                plugins.remove(&key);
            }
            let Some(p) = state.plugins.get(id).filter(|p| p.enabled) else {
                continue;
            };
            let (key, instance) = build_plugin(p, &ctx, &resources.allowed)?;
            plugins.insert(key, instance);
            plugin_scopes.insert(*id, key);
        }
        let mut active_plugins: Vec<ActivePlugin> = Vec::new();
        for &(name, r, s, c) in plugins.keys() {
            let bit = 1 << scope_rank(r.is_some(), s.is_some(), c.is_some());
            match active_plugins.iter_mut().find(|a| a.name == name) {
                Some(a) => a.scopes |= bit,
                None => active_plugins.push(ActivePlugin { name, scopes: bit }),
            }
        }
        active_plugins.sort_by_key(|a| registry().iter().position(|(r, _, _)| *r == a.name));

        Ok(RuntimeConfig {
            version,
            hash: digest.hex(),
            state,
            digest,
            router,
            routes,
            targets,
            consumers,
            plugins,
            plugin_scopes,
            active_plugins,
            tls,
            balancers,
        })
    }

    /// The configuration after a delta (`shared::delta` JSON) from `base` (version, hash) to `target`: refused
    /// unless this configuration is exactly the base, the changes decode and leave a consistent state, and
    /// that state hashes to the target's hash.
    pub fn with_delta(
        &self,
        base: (u64, &str),
        target: (u64, &str),
        changes: &[u8],
        resources: &Resources,
    ) -> Result<RuntimeConfig, String> {
        let ((base_version, base_hash), (version, hash)) = (base, target);
        if self.version != base_version || self.hash != base_hash {
            return Err(format!(
                "delta from version {base_version} ({base_hash}), but this node runs version {} ({})",
                self.version, self.hash
            ));
        }
        let changes = shared::delta::decode_changes(changes)?;
        let mut state = (*self.state).clone();
        state.apply_changes(&changes)?;
        let mut digest = self.digest.clone();
        digest.apply(&changes);
        let actual = digest.hex();
        if actual != hash {
            return Err(format!(
                "diverged: the config after the delta hashes to {actual}, the control plane's to {hash}"
            ));
        }
        self.updated(
            version,
            Arc::new(state),
            digest,
            &Touched::of(&changes),
            resources,
        )
    }

    /// The instance of `plugin` that applies to a request of `protocol`, with Kong's precedence (most
    /// specific scope first) among the instances whose `protocols` list it. Only the scopes that hold an
    /// instance of the plugin are looked up.
    pub fn plugin_for(
        &self,
        plugin: &ActivePlugin,
        protocol: Protocol,
        route: Uuid,
        service: Option<Uuid>,
        consumer: Option<Uuid>,
    ) -> Option<&Arc<dyn Plugin>> {
        SCOPES.iter().enumerate().find_map(|(rank, &(r, s, c))| {
            if plugin.scopes & (1 << rank) == 0 || c && consumer.is_none() || s && service.is_none()
            {
                return None;
            }
            let key = (
                plugin.name,
                r.then_some(route),
                s.then_some(service).flatten(),
                c.then_some(consumer).flatten(),
            );
            // An instance that does not list the request's protocol is as if absent: a less
            // specific one that does list it applies.
            self.plugins
                .get(&key)
                .filter(|(_, protocols)| protocols.contains(protocol))
                .map(|(instance, _)| instance)
        })
    }
}

/// A plugin present in a config and the scopes its instances are in.
#[derive(Debug, Clone, Copy)]
pub struct ActivePlugin {
    pub name: &'static str,
    /// One bit per entry of [`SCOPES`] that holds an instance of this plugin.
    scopes: u8,
}

/// The scopes a plugin instance can have (Route, Service, Consumer set or not), most specific first:
/// Kong's order of precedence.
const SCOPES: [(bool, bool, bool); 8] = [
    (true, true, true),
    (true, false, true),
    (false, true, true),
    (true, true, false),
    (false, false, true),
    (true, false, false),
    (false, true, false),
    (false, false, false),
];

/// The position of a scope in [`SCOPES`].
fn scope_rank(route: bool, service: bool, consumer: bool) -> usize {
    SCOPES
        .iter()
        .position(|&scope| scope == (route, service, consumer))
        .expect("every combination is listed")
}

/// One plugin instance and where it applies.
fn build_plugin(
    p: &shared::Plugin,
    ctx: &BuildCtx,
    allowed: &[&'static str],
) -> Result<(ScopeKey, Instance), String> {
    let Some((name, _, factory)) = registry().iter().find(|(n, _, _)| *n == p.name) else {
        return Err(format!(
            "plugin '{}' ({}) is not supported by this node",
            p.name, p.id
        ));
    };
    if !allowed.contains(name) {
        return Err(format!(
            "plugin '{}' ({}) is not enabled on this node",
            p.name, p.id
        ));
    }
    let instance = factory(p, ctx).map_err(|e| format!("plugin '{}' ({}): {e}", p.name, p.id))?;
    let key = (
        *name,
        p.route.map(|f| f.id),
        p.service.map(|f| f.id),
        p.consumer.map(|f| f.id),
    );
    Ok((key, (instance, ProtocolSet::of(&p.protocols))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::{Entity, ParseCtx, Route};

    fn resources() -> Resources {
        Resources {
            caches: Arc::new(Caches::new(100)),
            metrics: Arc::new(Metrics::default()),
            clients: Arc::new(IdpClients::new(None)),
            health: Arc::default(),
            dns: Arc::new(Dns::new(None)),
            allowed: registry().iter().map(|(n, _, _)| *n).collect(),
        }
    }

    fn route(state: &ConfigState, n: u128, path: &str) -> Change {
        let r = Route::parse(
            &json!({"paths": [path]}),
            &ParseCtx {
                id: Uuid::from_u128(n),
                now: 1,
                created_at: None,
                resolver: state,
            },
        )
        .unwrap();
        Change::Put(Entity::Route(r))
    }

    fn base() -> RuntimeConfig {
        let mut state = ConfigState::default();
        let c = route(&state, 1, "/a");
        state.apply_changes(&[c]).unwrap();
        let digest = StateDigest::of(&state);
        RuntimeConfig::build(3, Arc::new(state), digest, &resources()).unwrap()
    }

    /// The changes and the hash they lead to from `base()`.
    fn delta(cur: &RuntimeConfig, changes: &[Change]) -> (Vec<u8>, String) {
        let mut state = (*cur.state).clone();
        state.apply_changes(changes).unwrap();
        (
            shared::delta::encode_changes(changes),
            StateDigest::of(&state).hex(),
        )
    }

    #[test]
    fn a_delta_applies_on_its_exact_base_only() {
        let cur = base();
        let (changes, hash) = delta(&cur, &[route(&cur.state, 2, "/b")]);
        let next = cur
            .with_delta((3, &cur.hash), (4, &hash), &changes, &resources())
            .unwrap();
        assert_eq!((next.version, next.hash.as_str()), (4, hash.as_str()));
        assert_eq!(next.routes.len(), 2);
        assert_eq!(next.router.len(), 2);
        // Out of order: a delta from another version, or from this version with another hash.
        let err = next
            .with_delta((3, &cur.hash), (5, &hash), &changes, &resources())
            .err()
            .unwrap();
        assert!(err.contains("this node runs version 4"), "{err}");
        let err = cur
            .with_delta((3, "other"), (4, &hash), &changes, &resources())
            .err()
            .unwrap();
        assert!(err.contains("runs version 3"), "{err}");
    }

    #[test]
    fn a_corrupted_delta_is_refused() {
        let cur = base();
        let (changes, hash) = delta(&cur, &[route(&cur.state, 2, "/b")]);
        let apply = |bytes: &[u8], hash: &str| {
            cur.with_delta((3, &cur.hash), (4, hash), bytes, &resources())
                .err()
                .unwrap()
        };
        // Other content than the hash promises.
        let (other, _) = delta(&cur, &[route(&cur.state, 2, "/c")]);
        assert!(apply(&other, &hash).contains("diverged"));
        // Bytes that are not changes.
        assert!(apply(b"{not json", &hash).contains("not valid"));
        assert!(
            apply(br#"[{"op":"put","kind":"planets","entity":{}}]"#, &hash)
                .contains("unknown entity kind")
        );
        // A route that refers to a service the node does not have.
        let dangling = String::from_utf8(changes).unwrap().replace(
            "\"service\":null",
            "\"service\":{\"id\":\"00000000-0000-0000-0000-00000000000f\"}",
        );
        assert!(apply(dangling.as_bytes(), &hash).contains("does not reference"));
        // The base is untouched by every refusal.
        assert_eq!(cur.routes.len(), 1);
    }

    fn entity(state: &ConfigState, n: u128, v: serde_json::Value) -> Entity {
        let ctx = ParseCtx {
            id: Uuid::from_u128(n),
            now: 1,
            created_at: None,
            resolver: state,
        };
        match v.get("name").and_then(|n| n.as_str()) {
            Some("oauth2-introspection") => {
                Entity::Plugin(shared::Plugin::parse(&v, &ctx).unwrap())
            }
            _ if v.get("username").is_some() => {
                Entity::Consumer(shared::Consumer::parse(&v, &ctx).unwrap())
            }
            _ if v.get("url").is_some() => {
                Entity::Service(shared::Service::parse(&v, &ctx).unwrap())
            }
            _ => Entity::Route(Route::parse(&v, &ctx).unwrap()),
        }
    }

    #[test]
    fn the_most_specific_instance_applies_and_absent_scopes_are_not_looked_up() {
        let mut state = ConfigState::default();
        let id = Uuid::from_u128;
        let intro = |scope: serde_json::Value| {
            let mut p = json!({"name": "oauth2-introspection", "config": {
                "introspection_url": "http://127.0.0.1:9/introspect",
                "authorization_value": "Basic eDp5"}});
            p.as_object_mut()
                .unwrap()
                .extend(scope.as_object().unwrap().clone());
            p
        };
        let ids = json!({"id": id(1).to_string()});
        for (n, v) in [
            (1, json!({"url": "http://127.0.0.1:9"})),
            (2, json!({"paths": ["/a"], "service": ids})),
            (3, json!({"paths": ["/b"], "service": ids})),
            (4, json!({"username": "alex"})),
            (10, intro(json!({}))),
            (11, intro(json!({"route": {"id": id(2).to_string()}}))),
            (12, intro(json!({"consumer": {"id": id(4).to_string()}}))),
        ] {
            let e = entity(&state, n, v);
            state.apply_changes(&[Change::Put(e)]).unwrap();
        }
        let digest = StateDigest::of(&state);
        let rt = RuntimeConfig::build(1, Arc::new(state), digest, &resources()).unwrap();
        let [active] = rt.active_plugins.as_slice() else {
            panic!("one plugin: {:?}", rt.active_plugins);
        };
        // Route-only, Consumer-only and global instances: three scopes of eight.
        let expected = [
            (true, false, false),
            (false, false, true),
            (false, false, false),
        ]
        .iter()
        .map(|&(r, s, c)| 1u8 << scope_rank(r, s, c))
        .sum::<u8>();
        assert_eq!(active.scopes, expected);
        let instance = |r: Option<u128>, c: Option<u128>| {
            let key = (active.name, r.map(id), None, c.map(id));
            Arc::as_ptr(&rt.plugins.get(&key).unwrap().0) as *const ()
        };
        let applies = |route: u128, consumer: Option<u128>| {
            let p = rt
                .plugin_for(
                    active,
                    Protocol::Http,
                    id(route),
                    Some(id(1)),
                    consumer.map(id),
                )
                .unwrap();
            Arc::as_ptr(p) as *const ()
        };
        assert_eq!(applies(2, None), instance(Some(2), None));
        assert_eq!(applies(3, None), instance(None, None));
        assert_eq!(applies(3, Some(4)), instance(None, Some(4)));
        // A Consumer-only instance ranks above a Route-only one (Kong's order).
        assert_eq!(applies(2, Some(4)), instance(None, Some(4)));
    }
}
