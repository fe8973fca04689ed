//! `GET /config`: the configuration as a decK-style document, secrets redacted.

use serde_json::{json, Value};
use shared::{ConfigState, Entity};
use uuid::Uuid;

/// Strips what an export does not need: `updated_at` (an import sets it), nulls and the given parent
/// reference. `created_at` stays, as in Kong's export, and an import keeps it.
fn clean(mut v: Value, drop: &[&str]) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, val| !val.is_null() && k != "updated_at" && !drop.contains(&k.as_str()));
    }
    v
}

/// The configuration as a decK-style document, secrets redacted.
pub fn export_doc(state: &ConfigState) -> Value {
    let plugin_json =
        |p: &shared::Plugin, drop: &[&str]| clean(Entity::Plugin(p.clone()).to_public_json(), drop);
    let scopes = |p: &shared::Plugin| {
        [p.service.is_some(), p.route.is_some(), p.consumer.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
    };
    let services: Vec<Value> = state
        .services
        .values()
        .map(|s| {
            let mut v = clean(Entity::Service(s.clone()).to_public_json(), &[]);
            let routes: Vec<Value> = state
                .routes
                .values()
                .filter(|r| r.service.map(|f| f.id) == Some(s.id))
                .map(|r| {
                    let mut rv = clean(Entity::Route(r.clone()).to_public_json(), &["service"]);
                    let plugins: Vec<Value> = state
                        .plugins
                        .values()
                        .filter(|p| scopes(p) == 1 && p.route.map(|f| f.id) == Some(r.id))
                        .map(|p| plugin_json(p, &["route"]))
                        .collect();
                    if !plugins.is_empty() {
                        rv["plugins"] = Value::Array(plugins);
                    }
                    rv
                })
                .collect();
            let plugins: Vec<Value> = state
                .plugins
                .values()
                .filter(|p| scopes(p) == 1 && p.service.map(|f| f.id) == Some(s.id))
                .map(|p| plugin_json(p, &["service"]))
                .collect();
            if !routes.is_empty() {
                v["routes"] = Value::Array(routes);
            }
            if !plugins.is_empty() {
                v["plugins"] = Value::Array(plugins);
            }
            v
        })
        .collect();
    let consumers: Vec<Value> = state
        .consumers
        .values()
        .map(|c| {
            let mut v = clean(Entity::Consumer(c.clone()).to_public_json(), &[]);
            let plugins: Vec<Value> = state
                .plugins
                .values()
                .filter(|p| scopes(p) == 1 && p.consumer.map(|f| f.id) == Some(c.id))
                .map(|p| plugin_json(p, &["consumer"]))
                .collect();
            if !plugins.is_empty() {
                v["plugins"] = Value::Array(plugins);
            }
            let acls: Vec<Value> = state
                .acls
                .values()
                .filter(|a| a.consumer.id == c.id)
                .map(|a| clean(Entity::Acl(a.clone()).to_public_json(), &["consumer"]))
                .collect();
            if !acls.is_empty() {
                v["acls"] = Value::Array(acls);
            }
            v
        })
        .collect();
    let routes: Vec<Value> = state
        .routes
        .values()
        .filter(|r| r.service.is_none())
        .map(|r| clean(Entity::Route(r.clone()).to_public_json(), &[]))
        .collect();
    let plugins: Vec<Value> = state
        .plugins
        .values()
        .filter(|p| scopes(p) != 1)
        .map(|p| plugin_json(p, &[]))
        .collect();
    let certificates: Vec<Value> = state
        .certificates
        .values()
        .map(|c| {
            let mut v = clean(Entity::Certificate(c.clone()).to_public_json(), &[]);
            let snis: Vec<Value> = state
                .snis
                .values()
                .filter(|s| s.certificate.id == c.id)
                .map(|s| clean(Entity::Sni(s.clone()).to_public_json(), &["certificate"]))
                .collect();
            if !snis.is_empty() {
                v["snis"] = Value::Array(snis);
            }
            v
        })
        .collect();
    // `_transform: false`, as Kong exports: nothing in the document is to be transformed (hashed) again.
    let mut doc = json!({ "_format_version": "3.0", "_transform": false, "services": services, "consumers": consumers, "plugins": plugins });
    if !certificates.is_empty() {
        doc["certificates"] = Value::Array(certificates);
    }
    let cas: Vec<Value> = state
        .ca_certificates
        .values()
        .map(|c| clean(Entity::CaCertificate(c.clone()).to_public_json(), &[]))
        .collect();
    if !cas.is_empty() {
        doc["ca_certificates"] = Value::Array(cas);
    }
    let upstreams: Vec<Value> = state
        .upstreams
        .values()
        .map(|u| {
            let mut v = clean(Entity::Upstream(u.clone()).to_public_json(), &[]);
            let targets: Vec<Value> = state
                .targets
                .values()
                .filter(|t| t.upstream.id == u.id)
                .map(|t| clean(Entity::Target(t.clone()).to_public_json(), &["upstream"]))
                .collect();
            if !targets.is_empty() {
                v["targets"] = Value::Array(targets);
            }
            v
        })
        .collect();
    let groups: Vec<Value> = state
        .consumer_groups
        .values()
        .map(|g| {
            let mut v = clean(Entity::ConsumerGroup(g.clone()).to_public_json(), &[]);
            // In the Admin API's order.
            let members: Vec<Value> = state
                .members_of(&g.id)
                .into_iter()
                .map(|c| match &c.username {
                    Some(name) => json!({ "username": name }),
                    None => json!({ "id": c.id }),
                })
                .collect();
            if !members.is_empty() {
                v["consumers"] = Value::Array(members);
            }
            v
        })
        .collect();
    if !groups.is_empty() {
        doc["consumer_groups"] = Value::Array(groups);
    }
    if !upstreams.is_empty() {
        doc["upstreams"] = Value::Array(upstreams);
    }
    // Route-scoped plugins of service-less routes stay with their route at top level.
    let mut routes = routes;
    for rv in routes.iter_mut() {
        let rid = rv["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let plugins: Vec<Value> = state
            .plugins
            .values()
            .filter(|p| scopes(p) == 1 && p.route.map(|f| f.id) == rid)
            .map(|p| plugin_json(p, &["route"]))
            .collect();
        if !plugins.is_empty() {
            rv["plugins"] = Value::Array(plugins);
        }
    }
    doc["routes"] = Value::Array(routes);
    doc
}
