use serde_json::json;

use super::*;
use crate::entity::Resolver;
use crate::schema::FieldErrors;

struct OneUpstream(Uuid);
impl Resolver for OneUpstream {
    fn resolve(&self, kind: Kind, key: &str) -> Option<Uuid> {
        (kind == Kind::Upstream && (key == self.0.to_string() || key == "backend"))
            .then_some(self.0)
    }
}

fn ctx(r: &dyn Resolver) -> ParseCtx<'_> {
    ParseCtx {
        id: Uuid::from_u128(9),
        now: 1,
        created_at: None,
        resolver: r,
    }
}

fn errors<T: std::fmt::Debug>(r: Result<T, StateError>) -> FieldErrors {
    match r {
        Err(StateError::Schema(e)) => e,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn an_upstream_gets_kongs_defaults_and_reads_back_the_same() {
    let r = OneUpstream(Uuid::nil());
    let u = Upstream::parse(&json!({"name": "Backend.internal"}), &ctx(&r)).unwrap();
    assert_eq!(u.name, "backend.internal");
    assert_eq!(
        (u.algorithm, u.hash_on, u.slots),
        (Algorithm::RoundRobin, HashOn::None, 10_000)
    );
    assert_eq!(*u.healthchecks, Healthchecks::default());
    let shown = serde_json::to_value(&u).unwrap();
    assert_eq!(shown["algorithm"], "round-robin");
    assert_eq!(shown["healthchecks"]["active"]["healthy"]["interval"], 0.0);
    assert!(shown["healthchecks"]["passive"]["healthy"]
        .get("interval")
        .is_none());
    let again = Upstream::parse(&shown, &ctx(&r)).unwrap();
    assert_eq!(again, u, "a read-back upstream parses to itself");
}

#[test]
fn health_check_settings_are_merged_over_the_defaults_and_checked() {
    let r = OneUpstream(Uuid::nil());
    let u = Upstream::parse(
        &json!({"name": "b", "healthchecks": {"active": {"http_path": "/health", "healthy": {"interval": 0.5, "successes": 2}},
                                             "passive": {"unhealthy": {"tcp_failures": 3}}}}),
        &ctx(&r),
    )
    .unwrap();
    let h = &u.healthchecks;
    assert_eq!(h.active.headers, None);
    assert_eq!(
        (
            h.active.http_path.as_str(),
            h.active.healthy.interval,
            h.active.healthy.successes
        ),
        ("/health", Some(0.5), 2)
    );
    assert_eq!(
        h.active.healthy.http_statuses,
        vec![200, 302],
        "unset fields keep their default"
    );
    assert_eq!(h.passive.unhealthy.tcp_failures, 3);
    let e = errors(Upstream::parse(
        &json!({"name": "b", "healthchecks": {"active": {"timeout": -1, "unhealthy": {"http_statuses": [99], "bogus": 1}},
                                             "passive": {"healthy": {"interval": 1}}}}),
        &ctx(&r),
    ));
    assert!(e.contains("healthchecks.active.timeout"), "{e:?}");
    let u = Upstream::parse(
        &json!({"name": "b", "healthchecks": {"active": {"headers": {"X-Probe": "yes", "accept": ["a", "b"]}}}}),
        &ctx(&r),
    )
    .unwrap();
    let headers = u.healthchecks.active.headers.unwrap();
    assert_eq!(headers["x-probe"], vec!["yes"]);
    assert_eq!(headers["accept"], vec!["a", "b"]);
    let he = errors(Upstream::parse(
        &json!({"name": "b", "healthchecks": {"active": {"headers": {"bad name": "x", "ok": 1}}}}),
        &ctx(&r),
    ));
    assert!(
        he.contains("healthchecks.active.headers.bad name")
            && he.contains("healthchecks.active.headers.ok"),
        "{he:?}"
    );
    assert!(
        e.contains("healthchecks.active.unhealthy.http_statuses.1"),
        "{e:?}"
    );
    assert_eq!(e["healthchecks.active.unhealthy.bogus"], "unknown field");
    assert_eq!(e["healthchecks.passive.healthy.interval"], "unknown field");
}

#[test]
fn hashing_inputs_must_be_named() {
    let r = OneUpstream(Uuid::nil());
    let e = errors(Upstream::parse(
        &json!({"name": "b", "algorithm": "consistent-hashing", "hash_on": "header"}),
        &ctx(&r),
    ));
    assert_eq!(e["hash_on_header"], "required when 'hash_on' is 'header'");
    let e = errors(Upstream::parse(
        &json!({"name": "b", "hash_fallback": "ip"}),
        &ctx(&r),
    ));
    assert!(e.contains("hash_fallback"));
    let e = errors(Upstream::parse(
        &json!({"name": "bad name", "algorithm": "random"}),
        &ctx(&r),
    ));
    assert_eq!(e["name"], "invalid hostname");
    assert!(e["algorithm"].starts_with("expected one of: round-robin"));
    let u = Upstream::parse(&json!({"name": "b", "algorithm": "consistent-hashing", "hash_on": "header", "hash_on_header": "X-User"}), &ctx(&r)).unwrap();
    assert_eq!(u.hash_on_header.as_deref(), Some("x-user"));
}

#[test]
fn targets_are_host_and_port_with_a_weight_in_an_existing_upstream() {
    let up = Uuid::from_u128(1);
    let r = OneUpstream(up);
    let t = Target::parse(
        &json!({"target": "App-1.internal", "upstream": {"id": up}}),
        &ctx(&r),
    )
    .unwrap();
    assert_eq!((t.target.as_str(), t.weight), ("app-1.internal:8000", 100));
    let t = Target::parse(
        &json!({"target": "[::1]:9000", "weight": 0, "upstream": "backend"}),
        &ctx(&r),
    )
    .unwrap();
    assert_eq!((t.target.as_str(), t.weight), ("[::1]:9000", 0));
    for (bad, field, why) in [
        (
            json!({"target": "a:99999", "upstream": "backend"}),
            "target",
            "invalid port number",
        ),
        (
            json!({"target": "a b:80", "upstream": "backend"}),
            "target",
            "invalid target: expected host:port with a host name or IP address",
        ),
        (
            json!({"target": "a:80", "weight": 70000, "upstream": "backend"}),
            "weight",
            "value should be between 0 and 65535",
        ),
        (
            json!({"target": "a:80"}),
            "upstream",
            "required field missing",
        ),
    ] {
        let e = errors(Target::parse(&bad, &ctx(&r)));
        assert_eq!(e.get(field), Some(why), "{bad}: {e:?}");
    }
    let dangling = Target::parse(
        &json!({"target": "a:80", "upstream": {"id": Uuid::from_u128(2)}}),
        &ctx(&r),
    );
    assert!(matches!(dangling, Err(StateError::ForeignKey { .. })));
}

#[test]
fn target_addresses_split_into_host_port_and_ip() {
    let a = TargetAddr::parse("API.Internal").unwrap();
    assert_eq!(
        (a.host.as_str(), a.port, a.ip),
        ("api.internal", 8000, None)
    );
    assert_eq!(a.to_string(), "api.internal:8000");
    let v6 = TargetAddr::parse("[::1]:81").unwrap();
    assert_eq!((v6.bare(), v6.port), ("::1", 81));
    assert_eq!(v6.ip, Some("::1".parse().unwrap()));
    assert_eq!(v6.to_string(), "[::1]:81");
    assert_eq!(TargetAddr::parse("10.0.0.1:0"), Err("invalid port number"));
    assert!(TargetAddr::parse("*.x:1").is_err());
}
