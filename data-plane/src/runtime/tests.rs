use super::*;
use serde_json::json;
use shared::{Entity, ParseCtx, Route};

fn resources() -> Resources {
    Resources {
        caches: Arc::new(Caches::new(100)),
        metrics: Arc::new(Metrics::default()),
        clients: Arc::new(IdpClients::new(None)),
        traffic: Arc::default(),
        revocations: Arc::default(),
        health: Arc::default(),
        addresses: Arc::default(),
        allowed: registry().iter().map(|r| r.name).collect(),
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
    assert_eq!(err.kind(), "out_of_order");
    assert!(
        err.to_string().contains("this node runs version 4"),
        "{err}"
    );
    let err = cur
        .with_delta((3, "other"), (4, &hash), &changes, &resources())
        .err()
        .unwrap();
    assert!(err.to_string().contains("runs version 3"), "{err}");
}

#[test]
fn a_corrupted_delta_is_refused() {
    let cur = base();
    let (changes, hash) = delta(&cur, &[route(&cur.state, 2, "/b")]);
    let apply = |bytes: &[u8], hash: &str| {
        cur.with_delta((3, &cur.hash), (4, hash), bytes, &resources())
            .err()
            .unwrap()
            .to_string()
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
        Some("oauth2-introspection") => Entity::Plugin(shared::Plugin::parse(&v, &ctx).unwrap()),
        _ if v.get("username").is_some() => {
            Entity::Consumer(shared::Consumer::parse(&v, &ctx).unwrap())
        }
        _ if v.get("url").is_some() => Entity::Service(shared::Service::parse(&v, &ctx).unwrap()),
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
