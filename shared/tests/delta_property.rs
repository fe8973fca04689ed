//! Property: for random sequences of Admin-API-like writes (create, update, delete of services, routes,
//! consumers and plugins, through the same `ConfigState::put`/`delete` the control plane uses), a state
//! kept by applying each version's changes, and one kept by applying several versions compacted into one
//! delta, equal the full state at every version, with the same content hash.

use proptest::prelude::*;
use serde_json::{json, Value};
use shared::delta::{compact, decode_changes, encode_changes};
use shared::{
    Change, ConfigState, Consumer, Entity, Kind, ParseCtx, Plugin, Route, Service, StateDigest,
};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Put {
        kind: u8,
        slot: u8,
        variant: u8,
        target: u8,
    },
    Delete {
        kind: u8,
        slot: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, 0u8..6, any::<u8>(), 0u8..6).prop_map(|(kind, slot, variant, target)| Op::Put {
            kind,
            slot,
            variant,
            target
        }),
        1 => (0u8..4, 0u8..6).prop_map(|(kind, slot)| Op::Delete { kind, slot }),
    ]
}

fn id(kind: u8, slot: u8) -> Uuid {
    Uuid::from_u128(((kind as u128) << 8) | slot as u128 | 1 << 64)
}

const KINDS: [Kind; 4] = [Kind::Service, Kind::Route, Kind::Consumer, Kind::Plugin];

/// The entity an op describes, parsed as the Admin API would; `None` when the input is refused.
fn entity(state: &ConfigState, kind: u8, slot: u8, variant: u8, target: u8) -> Option<Entity> {
    let ctx = ParseCtx {
        id: id(kind, slot),
        now: variant as i64,
        created_at: None,
        resolver: state,
    };
    let v: Value = match kind {
        0 => {
            json!({"name": format!("s{slot}"), "url": format!("http://up{variant}.test:{}", 8000 + variant as u16)})
        }
        1 => {
            json!({"name": format!("r{slot}-{}", variant % 2), "paths": [format!("/p{variant}")], "service": {"id": id(0, target)}, "strip_path": variant.is_multiple_of(3)})
        }
        2 => json!({"username": format!("u{slot}"), "custom_id": format!("c{variant}")}),
        _ => {
            let mut p = json!({"name": "oauth2-introspection", "config": {"introspection_url": format!("http://idp.test/i{variant}"), "authorization_value": "Basic eA=="}});
            match variant % 4 {
                0 => p["route"] = json!({"id": id(1, target)}),
                1 => p["service"] = json!({"id": id(0, target)}),
                2 => p["config"]["anonymous"] = json!(id(2, target).to_string()),
                _ => {}
            }
            p
        }
    };
    Some(match kind {
        0 => Entity::Service(Service::parse(&v, &ctx).ok()?),
        1 => Entity::Route(Route::parse(&v, &ctx).ok()?),
        2 => Entity::Consumer(Consumer::parse(&v, &ctx).ok()?),
        _ => Entity::Plugin(Plugin::parse(&v, &ctx).ok()?),
    })
}

/// Runs the op on `state` as the control plane would; the changes of the version it makes, if any.
fn run(state: &mut ConfigState, op: &Op) -> Option<Vec<Change>> {
    let mut next = state.clone();
    let changes = match *op {
        Op::Put {
            kind,
            slot,
            variant,
            target,
        } => {
            let e = entity(&next, kind, slot, variant, target)?;
            next.put(e).ok()?
        }
        Op::Delete { kind, slot } => next.delete(KINDS[kind as usize], &id(kind, slot)).ok()?,
    };
    *state = next;
    Some(changes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn deltas_rebuild_the_full_state(ops in prop::collection::vec(op(), 1..60), every in 1usize..5) {
        let mut full = ConfigState::default();
        let mut node = ConfigState::default();
        let mut node_digest = StateDigest::of(&node);
        let mut batched = ConfigState::default();
        let mut batched_digest = StateDigest::of(&batched);
        let mut pending: Vec<Change> = Vec::new();
        let mut versions = 0;
        for op in &ops {
            let Some(changes) = run(&mut full, op) else { continue };
            versions += 1;
            // One version at a time, through the wire encoding.
            let wire = decode_changes(&encode_changes(&changes)).unwrap();
            prop_assert_eq!(&wire, &changes);
            node.apply_changes(&wire).map_err(TestCaseError::fail)?;
            node_digest.apply(&wire);
            prop_assert_eq!(&node, &full);
            prop_assert_eq!(node_digest.hex(), StateDigest::of(&full).hex());
            // Several versions compacted into one delta.
            pending.extend(changes);
            if versions % every == 0 {
                let delta = compact(std::mem::take(&mut pending));
                batched.apply_changes(&delta).map_err(TestCaseError::fail)?;
                batched_digest.apply(&delta);
                prop_assert_eq!(&batched, &full);
                prop_assert_eq!(batched_digest.hex(), StateDigest::of(&full).hex());
            }
        }
        prop_assert!(full.check().is_ok());
    }
}

#[test]
fn a_changed_entity_changes_the_hash() {
    let put = |variant| Op::Put {
        kind: 0,
        slot: 1,
        variant,
        target: 0,
    };
    let mut state = ConfigState::default();
    let before = StateDigest::of(&state).hex();
    let changes = run(&mut state, &put(1)).unwrap();
    let mut d = StateDigest::of(&ConfigState::default());
    d.apply(&changes);
    assert_ne!(d.hex(), before);
    let again = run(&mut state, &put(2)).unwrap();
    let mut d2 = d.clone();
    d2.apply(&again);
    assert_ne!(d2.hex(), d.hex());
    assert_eq!(d2.hex(), StateDigest::of(&state).hex());
}
