use serde_json::{json, Value};

use super::*;
use crate::entity::ParseCtx;
use crate::error::StateError;

fn ctx(state: &ConfigState, n: u128) -> ParseCtx<'_> {
    ParseCtx {
        id: Uuid::from_u128(n),
        now: 1,
        created_at: None,
        resolver: state,
    }
}

fn add(state: &mut ConfigState, kind: Kind, v: Value, n: u128) -> Result<Vec<Change>, StateError> {
    let e = Entity::parse(kind, &v, &ctx(state, n))?;
    state.put(e)
}

fn sample() -> ConfigState {
    let mut s = ConfigState::default();
    add(
        &mut s,
        Kind::Service,
        json!({"name": "svc", "url": "http://up"}),
        1,
    )
    .unwrap();
    add(
        &mut s,
        Kind::Route,
        json!({"name": "r", "paths": ["/"], "service": {"name": "svc"}}),
        2,
    )
    .unwrap();
    add(&mut s, Kind::Consumer, json!({"username": "anon"}), 3).unwrap();
    add(
        &mut s,
        Kind::Plugin,
        json!({"name": "oauth2-introspection", "service": "svc", "config": {"introspection_url": "http://idp/i", "authorization_value": "x", "anonymous": "anon"}}),
        4,
    )
    .unwrap();
    s
}

#[test]
fn unique_names_and_plugin_scopes() {
    let mut s = sample();
    let e = add(
        &mut s,
        Kind::Service,
        json!({"name": "svc", "url": "http://b"}),
        9,
    )
    .unwrap_err();
    assert!(matches!(e, StateError::Unique { .. }));
    let e = add(
        &mut s,
        Kind::Plugin,
        json!({"name": "oauth2-introspection", "service": "svc", "config": {"introspection_url": "http://idp/i", "authorization_value": "x"}}),
        10,
    )
    .unwrap_err();
    assert!(matches!(e, StateError::Unique { .. }), "{e:?}");
}

#[test]
fn delete_rules() {
    let mut s = sample();
    let svc = Uuid::from_u128(1);
    assert!(matches!(
        s.delete(Kind::Service, &svc),
        Err(StateError::ForeignKey { .. })
    ));
    assert!(matches!(
        s.delete(Kind::Consumer, &Uuid::from_u128(3)),
        Err(StateError::ForeignKey { .. })
    ));
    s.delete(Kind::Route, &Uuid::from_u128(2)).unwrap();
    let changes = s.delete(Kind::Service, &svc).unwrap();
    assert_eq!(changes.len(), 2, "the service's plugin goes with it");
    assert!(s.plugins.is_empty());
    assert!(matches!(
        s.delete(Kind::Service, &svc),
        Err(StateError::NotFound)
    ));
}

#[test]
fn encode_is_deterministic_and_checked() {
    let s = sample();
    let a = encode(&s);
    assert_eq!(a, encode(&s.clone()));
    let h = StateDigest::of(&s).hex();
    assert_eq!(decode(&a, &h).unwrap().0, s);
    assert!(decode(&a, "00").unwrap_err().contains("hash mismatch"));
    let mut broken = s.clone();
    broken.services.clear();
    let b = encode(&broken);
    assert!(decode(&b, &StateDigest::of(&broken).hex())
        .unwrap_err()
        .contains("does not exist"));
}

#[test]
fn a_consumer_holds_a_group_once_and_takes_its_acls_with_it() {
    let mut s = sample();
    add(&mut s, Kind::Consumer, json!({"username": "alice"}), 20).unwrap();
    add(
        &mut s,
        Kind::Acl,
        json!({"consumer": "alice", "group": "admins"}),
        21,
    )
    .unwrap();
    let e = add(
        &mut s,
        Kind::Acl,
        json!({"consumer": {"username": "alice"}, "group": "admins"}),
        22,
    )
    .unwrap_err();
    assert!(matches!(e, StateError::Unique { .. }), "{e:?}");
    add(
        &mut s,
        Kind::Acl,
        json!({"consumer": "anon", "group": "admins"}),
        23,
    )
    .unwrap();
    let e = add(&mut s, Kind::Acl, json!({"group": "x"}), 24).unwrap_err();
    assert!(e.to_string().contains("consumer"), "{e}");
    assert!(s.check().is_ok());
    let digest = crate::StateDigest::of(&s);
    let changes = s.delete(Kind::Consumer, &Uuid::from_u128(20)).unwrap();
    assert_eq!(
        changes,
        [
            Change::Delete(Kind::Consumer, Uuid::from_u128(20)),
            Change::Delete(Kind::Acl, Uuid::from_u128(21)),
        ]
    );
    assert_eq!(s.acls.len(), 1, "anon's ACL stays");
    let mut applied = digest;
    applied.apply(&changes);
    assert_eq!(applied.hex(), crate::StateDigest::of(&s).hex());
    // A state whose ACL names a missing Consumer is not consistent.
    let mut broken = s.clone();
    broken.consumers.remove(&Uuid::from_u128(3));
    assert!(broken
        .check()
        .unwrap_err()
        .iter()
        .any(|p| p.starts_with("acl ")));
}

#[test]
fn consumer_groups_hold_a_consumer_once_and_memberships_go_with_either_side() {
    let mut s = sample();
    add(&mut s, Kind::Consumer, json!({"username": "alice"}), 20).unwrap();
    add(&mut s, Kind::ConsumerGroup, json!({"name": "gold"}), 30).unwrap();
    add(&mut s, Kind::ConsumerGroup, json!({"name": "silver"}), 31).unwrap();
    let e = add(&mut s, Kind::ConsumerGroup, json!({"name": "gold"}), 32).unwrap_err();
    assert!(matches!(e, StateError::Unique { .. }), "{e:?}");
    let member = |g: &str, c: &str| json!({"consumer_group": g, "consumer": {"username": c}});
    add(
        &mut s,
        Kind::ConsumerGroupMember,
        member("gold", "alice"),
        40,
    )
    .unwrap();
    add(
        &mut s,
        Kind::ConsumerGroupMember,
        member("silver", "alice"),
        41,
    )
    .unwrap();
    add(
        &mut s,
        Kind::ConsumerGroupMember,
        member("gold", "anon"),
        42,
    )
    .unwrap();
    let e = add(
        &mut s,
        Kind::ConsumerGroupMember,
        member("gold", "alice"),
        43,
    )
    .unwrap_err();
    assert!(matches!(e, StateError::Unique { .. }), "{e:?}");
    let e = add(
        &mut s,
        Kind::ConsumerGroupMember,
        json!({"consumer": "alice"}),
        44,
    )
    .unwrap_err();
    assert!(e.to_string().contains("consumer_group"), "{e}");
    assert_eq!(s.groups_of(&Uuid::from_u128(20)), ["gold", "silver"]);
    assert!(s.check().is_ok());

    let digest = crate::StateDigest::of(&s);
    let changes = s.delete(Kind::Consumer, &Uuid::from_u128(20)).unwrap();
    assert_eq!(
        changes,
        [
            Change::Delete(Kind::Consumer, Uuid::from_u128(20)),
            Change::Delete(Kind::ConsumerGroupMember, Uuid::from_u128(40)),
            Change::Delete(Kind::ConsumerGroupMember, Uuid::from_u128(41)),
        ]
    );
    let mut applied = digest;
    applied.apply(&changes);
    assert_eq!(applied.hex(), crate::StateDigest::of(&s).hex());
    let changes = s.delete(Kind::ConsumerGroup, &Uuid::from_u128(30)).unwrap();
    assert_eq!(changes.len(), 2, "gold and anon's membership");
    assert!(s.consumer_group_consumers.is_empty());

    // A membership whose group is gone is not consistent.
    add(
        &mut s,
        Kind::ConsumerGroupMember,
        member("silver", "anon"),
        45,
    )
    .unwrap();
    let mut broken = s.clone();
    broken.consumer_groups.remove(&Uuid::from_u128(31));
    assert!(broken
        .check()
        .unwrap_err()
        .iter()
        .any(|p| p.starts_with("consumer group membership ")));
}
