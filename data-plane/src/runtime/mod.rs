//! The runtime configuration: everything the request path needs, built from one snapshot off the request
//! path and swapped in atomically. Requests keep the `Arc` they started with.

use std::collections::HashMap;
use std::sync::Arc;

use shared::protocol::{Protocol, ProtocolSet};
use shared::{Change, ConfigState, Kind, StateDigest};
use uuid::Uuid;

use crate::cache::Caches;
use crate::metrics::Metrics;
use crate::plugins::groups::Memberships;
use crate::plugins::{registry, BuildCtx, ConsumerIndex, IdpClients, Plugin};
use crate::router::Router;

pub mod balancer;
mod certificates;
pub mod dns_cache;
mod entries;
mod error;
pub mod upstream_tls;

use balancer::{Balancer, HealthRegistry};
pub use certificates::ServerCertificates;
use dns_cache::DnsCache;
pub use entries::{PathHandling, RouteEntry, Scheme, ServiceEntry};
pub use error::BuildError;

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
    /// Rate-limiting counters and Redis connections, kept across snapshots.
    pub traffic: Arc<crate::plugins::TrafficStores>,
    /// Sessions identity providers ended, kept across snapshots.
    pub revocations: Arc<crate::plugins::SessionRevocations>,
    /// Every Target's health, kept across snapshots.
    pub health: Arc<HealthRegistry>,
    /// What Target host names resolve to.
    pub addresses: Arc<DnsCache>,
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
    /// Whether an ACL, a consumer group or a consumer group's membership changed.
    pub memberships: bool,
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
                Kind::Acl | Kind::ConsumerGroup | Kind::ConsumerGroupMember => t.memberships = true,
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
            memberships: true,
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
    pub services: EntityMap<Uuid, Arc<ServiceEntry>>,
    consumers: Arc<ConsumerIndex>,
    /// The Consumers' ACL groups and consumer groups.
    groups: Arc<Memberships>,
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
    ) -> Result<RuntimeConfig, BuildError> {
        let touched = Touched::all(&state);
        RuntimeConfig::default().updated(version, state, digest, &touched, resources)
    }

    /// The configuration for `state`, which differs from this one's state in the `touched` entities only:
    /// those are rebuilt (router entries of routes, entries of services, the Consumer index entries, the
    /// plugin instances; every plugin instance when a Consumer or an ACL changed, since instances resolve
    /// their Consumers and groups when built) and everything else is shared with this configuration.
    pub fn updated(
        &self,
        version: u64,
        state: Arc<ConfigState>,
        digest: StateDigest,
        touched: &Touched,
        resources: &Resources,
    ) -> Result<RuntimeConfig, BuildError> {
        let removed: Vec<Uuid> = touched
            .routes
            .iter()
            .filter(|id| !state.routes.contains_key(id))
            .copied()
            .collect();
        let added = touched.routes.iter().filter_map(|id| state.routes.get(id));
        let router = self
            .router
            .updated(&removed, added)
            .map_err(BuildError::unusable("route"))?;
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
                    Arc::new(
                        Balancer::build(u, &state, &resources.health, &resources.addresses)
                            .map_err(BuildError::unusable("target"))?,
                    ),
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
            Arc::new(
                ServerCertificates::build(&state).map_err(BuildError::unusable("certificate"))?,
            )
        } else {
            self.tls.clone()
        };
        let mut services = self.services.clone();
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
                Some(s) => services.insert(
                    id,
                    Arc::new(
                        ServiceEntry::new(s, &state, &by_name, &tls)
                            .map_err(BuildError::unusable("service"))?,
                    ),
                ),
                None => services.remove(&id),
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
        let groups = if touched.memberships {
            Arc::new(Memberships::build(&state))
        } else {
            self.groups.clone()
        };
        let ctx = BuildCtx {
            state: state.clone(),
            consumers: consumers.clone(),
            groups: groups.clone(),
            caches: resources.caches.clone(),
            metrics: resources.metrics.clone(),
            clients: resources.clients.clone(),
            traffic: resources.traffic.clone(),
            revocations: resources.revocations.clone(),
        };
        let (mut plugins, mut plugin_scopes, rebuild): (_, _, Vec<Uuid>) =
            if touched.consumers.is_empty() && !touched.memberships {
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
        active_plugins.sort_by_key(|a| registry().iter().position(|r| r.name == a.name));

        Ok(RuntimeConfig {
            version,
            hash: digest.hex(),
            state,
            digest,
            router,
            routes,
            services,
            consumers,
            groups,
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
    ) -> Result<RuntimeConfig, BuildError> {
        let ((base_version, base_hash), (version, hash)) = (base, target);
        if self.version != base_version || self.hash != base_hash {
            return Err(BuildError::OutOfOrder {
                base_version,
                base_hash: base_hash.to_string(),
                version: self.version,
                hash: self.hash.clone(),
            });
        }
        let changes = shared::delta::decode_changes(changes).map_err(BuildError::Undecodable)?;
        let mut state = (*self.state).clone();
        state
            .apply_changes(&changes)
            .map_err(BuildError::Undecodable)?;
        let mut digest = self.digest.clone();
        digest.apply(&changes);
        let actual = digest.hex();
        if actual != hash {
            return Err(BuildError::Diverged {
                actual,
                expected: hash.to_string(),
            });
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
) -> Result<(ScopeKey, Instance), BuildError> {
    let Some(registered) = registry().iter().find(|r| r.name == p.name) else {
        return Err(BuildError::PluginUnsupported {
            name: p.name.clone(),
            id: p.id,
        });
    };
    if !allowed.contains(&registered.name) {
        return Err(BuildError::PluginNotEnabled {
            name: p.name.clone(),
            id: p.id,
        });
    }
    let instance = (registered.build)(p, ctx).map_err(|reason| BuildError::PluginConfig {
        name: p.name.clone(),
        id: p.id,
        reason,
    })?;
    let key = (
        registered.name,
        p.route.map(|f| f.id),
        p.service.map(|f| f.id),
        p.consumer.map(|f| f.id),
    );
    Ok((key, (instance, ProtocolSet::of(&p.protocols))))
}

#[cfg(test)]
mod tests;
