use serde_json::json;
use shared::upstream::{Target, Upstream};
use shared::{ConfigState, Entity, ParseCtx};
use uuid::Uuid;

use super::*;

fn ctx(id: u128, state: &ConfigState) -> ParseCtx<'_> {
    ParseCtx {
        id: Uuid::from_u128(id),
        now: 1,
        created_at: None,
        resolver: state,
    }
}

fn state(upstream: serde_json::Value, targets: &[(&str, u32)]) -> (ConfigState, Upstream) {
    let mut state = ConfigState::default();
    let u = Upstream::parse(&upstream, &ctx(1, &state)).unwrap();
    state.put(Entity::Upstream(u.clone())).unwrap();
    for (n, (t, w)) in targets.iter().enumerate() {
        let body = json!({"target": t, "weight": w, "upstream": {"id": u.id}});
        let target = Target::parse(&body, &ctx(10 + n as u128, &state)).unwrap();
        state.put(Entity::Target(target)).unwrap();
    }
    (state, u)
}

fn counts(b: &Balancer, picks: usize, hash: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
    let mut out = vec![0; b.peers.len()];
    for n in 0..picks {
        out[b.pick(hash(n), &[]).unwrap()] += 1;
    }
    out
}

#[test]
fn round_robin_follows_the_weights_and_skips_weight_zero() {
    let (s, u) = state(
        json!({"name": "rr"}),
        &[("a:1", 100), ("b:1", 100), ("c:1", 200), ("d:1", 0)],
    );
    let b = Balancer::build(&u, &s, &HealthRegistry::default()).unwrap();
    assert_eq!(b.peers.len(), 3, "weight 0 is out of rotation");
    assert_eq!(counts(&b, 400, |_| None), vec![100, 100, 200]);
    // Spread out, not in runs: no peer is picked more than twice in a row.
    let seq: Vec<usize> = (0..8).map(|_| b.pick(None, &[]).unwrap()).collect();
    assert!(
        seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{seq:?}"
    );
}

#[test]
fn unhealthy_and_tried_peers_are_skipped_and_none_left_is_none() {
    let (s, u) = state(json!({"name": "rr"}), &[("a:1", 1), ("b:1", 1)]);
    let registry = HealthRegistry::default();
    let b = Balancer::build(&u, &s, &registry).unwrap();
    assert_eq!(b.pick(None, &[0]), Some(1));
    assert_eq!(b.pick(None, &[0, 1]), None);
    let rules = (
        &u.healthchecks.passive.healthy,
        &u.healthchecks.passive.unhealthy,
    );
    let mut strict = u.healthchecks.passive.unhealthy.clone();
    strict.tcp_failures = 2;
    assert_eq!(
        b.peers[0]
            .health
            .report(Outcome::TcpFailure, (rules.0, &strict)),
        None
    );
    assert_eq!(
        b.peers[0]
            .health
            .report(Outcome::TcpFailure, (rules.0, &strict)),
        Some(false)
    );
    assert!((0..10).all(|_| b.pick(None, &[]) == Some(1)));
    // Health lives in the registry: a rebuilt balancer (a new snapshot) keeps it.
    let rebuilt = Balancer::build(&u, &s, &registry).unwrap();
    assert!(!rebuilt.peers[0].health.is_healthy());
    assert_eq!(registry.snapshot().iter().filter(|p| !p.2).count(), 1);
}

#[test]
fn health_flips_after_the_thresholds_and_a_success_resets_failures() {
    let h = PeerHealth::default();
    let healthy = shared::upstream::Healthy {
        interval: None,
        successes: 2,
        http_statuses: vec![200],
    };
    let unhealthy = shared::upstream::Unhealthy {
        interval: None,
        http_failures: 2,
        tcp_failures: 0,
        timeouts: 1,
        http_statuses: vec![500],
    };
    let rules = (&healthy, &unhealthy);
    assert_eq!(h.report(Outcome::Status(500), rules), None);
    assert_eq!(
        h.report(Outcome::Status(200), rules),
        None,
        "a success resets the failure count"
    );
    assert_eq!(h.report(Outcome::Status(500), rules), None);
    assert_eq!(
        h.report(Outcome::Status(404), rules),
        None,
        "in neither list: not counted"
    );
    assert_eq!(h.report(Outcome::Status(500), rules), Some(false));
    assert_eq!(
        h.report(Outcome::TcpFailure, rules),
        None,
        "tcp_failures 0 never flips"
    );
    assert_eq!(h.report(Outcome::Status(200), rules), None);
    assert_eq!(h.report(Outcome::Status(200), rules), Some(true));
    assert_eq!(h.report(Outcome::Timeout, rules), Some(false));
}

#[test]
fn consistent_hashing_is_stable_and_removing_a_peer_moves_only_its_keys() {
    let up = json!({"name": "ch", "algorithm": "consistent-hashing", "hash_on": "ip"});
    let (s3, u) = state(up.clone(), &[("a:1", 100), ("b:1", 100), ("c:1", 100)]);
    let b3 = Balancer::build(&u, &s3, &HealthRegistry::default()).unwrap();
    let key = |n: usize| Some(hash_key(format!("client-{n}").as_bytes()));
    let before: Vec<&str> = (0..3000)
        .map(|n| b3.peers[b3.pick(key(n), &[]).unwrap()].name.as_str())
        .collect();
    let again: Vec<&str> = (0..3000)
        .map(|n| b3.peers[b3.pick(key(n), &[]).unwrap()].name.as_str())
        .collect();
    assert_eq!(before, again);
    let share = |name: &str| before.iter().filter(|p| **p == name).count();
    for name in ["a:1", "b:1", "c:1"] {
        assert!(
            (700..=1300).contains(&share(name)),
            "{name}: {}",
            share(name)
        );
    }
    let (s2, u2) = state(up, &[("a:1", 100), ("b:1", 100), ("c:1", 0)]);
    let b2 = Balancer::build(&u2, &s2, &HealthRegistry::default()).unwrap();
    for (n, was) in before.iter().enumerate() {
        let now = b2.peers[b2.pick(key(n), &[]).unwrap()].name.as_str();
        if *was != "c:1" {
            assert_eq!(now, *was, "key {n} moved although its peer stayed");
        }
    }
}

#[test]
fn least_connections_prefers_the_peer_with_fewer_requests_in_flight() {
    let (s, u) = state(
        json!({"name": "lc", "algorithm": "least-connections"}),
        &[("a:1", 100), ("b:1", 100)],
    );
    let b = Balancer::build(&u, &s, &HealthRegistry::default()).unwrap();
    let busy = b.start(0);
    let _also = b.start(0);
    assert!((0..10).all(|_| b.pick(None, &[]) == Some(1)));
    drop(busy);
    let _b1 = b.start(1);
    let _b2 = b.start(1);
    assert_eq!(b.pick(None, &[]), Some(0), "now a has 1 in flight and b 2");
}
