use serde_json::json;
use shared::upstream::{Target, Upstream};
use shared::{ConfigState, Entity, ParseCtx};
use uuid::Uuid;

use super::*;
use crate::runtime::dns_cache::{DnsCache, Recorded};

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
    let set = b.peers();
    let mut out = vec![0; set.peers.len()];
    for n in 0..picks {
        out[b.pick(&set, hash(n), &[]).unwrap()] += 1;
    }
    out
}

/// The peer `b` picks for `hash`, by address.
fn pick_address(b: &Balancer, hash: Option<u64>) -> String {
    let set = b.peers();
    let i = b.pick(&set, hash, &[]).unwrap();
    set.peers[i].key.address.clone()
}

#[test]
fn round_robin_follows_the_weights_and_skips_weight_zero() {
    let (s, u) = state(
        json!({"name": "rr"}),
        &[("a:1", 100), ("b:1", 100), ("c:1", 200), ("d:1", 0)],
    );
    let b = Balancer::build(&u, &s, &HealthRegistry::default(), &DnsCache::default()).unwrap();
    assert_eq!(b.peers().peers.len(), 3, "weight 0 is out of rotation");
    assert_eq!(counts(&b, 400, |_| None), vec![100, 100, 200]);
    // Spread out, not in runs: no peer is picked more than twice in a row.
    let set = b.peers();
    let seq: Vec<usize> = (0..8).map(|_| b.pick(&set, None, &[]).unwrap()).collect();
    assert!(
        seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{seq:?}"
    );
}

#[test]
fn unhealthy_and_tried_peers_are_skipped_and_none_left_is_none() {
    let (s, u) = state(json!({"name": "rr"}), &[("a:1", 1), ("b:1", 1)]);
    let registry = HealthRegistry::default();
    let b = Balancer::build(&u, &s, &registry, &DnsCache::default()).unwrap();
    let set = b.peers();
    assert_eq!(b.pick(&set, None, &[0]), Some(1));
    assert_eq!(b.pick(&set, None, &[0, 1]), None);
    let rules = (
        &u.healthchecks.passive.healthy,
        &u.healthchecks.passive.unhealthy,
    );
    let mut strict = u.healthchecks.passive.unhealthy.clone();
    strict.tcp_failures = 2;
    assert_eq!(
        set.peers[0]
            .health
            .report(Outcome::TcpFailure, (rules.0, &strict)),
        None
    );
    assert_eq!(
        set.peers[0]
            .health
            .report(Outcome::TcpFailure, (rules.0, &strict)),
        Some(false)
    );
    assert!((0..10).all(|_| b.pick(&set, None, &[]) == Some(1)));
    // Health lives in the registry: a rebuilt balancer (a new snapshot) keeps it.
    let rebuilt = Balancer::build(&u, &s, &registry, &DnsCache::default()).unwrap();
    assert!(!rebuilt.peers().peers[0].health.is_healthy());
    assert_eq!(registry.snapshot().iter().filter(|p| !p.healthy).count(), 1);
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
    let b3 = Balancer::build(&u, &s3, &HealthRegistry::default(), &DnsCache::default()).unwrap();
    let key = |n: usize| Some(hash_key(format!("client-{n}").as_bytes()));
    let before: Vec<String> = (0..3000).map(|n| pick_address(&b3, key(n))).collect();
    let again: Vec<String> = (0..3000).map(|n| pick_address(&b3, key(n))).collect();
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
    let b2 = Balancer::build(&u2, &s2, &HealthRegistry::default(), &DnsCache::default()).unwrap();
    for (n, was) in before.iter().enumerate() {
        let now = pick_address(&b2, key(n));
        if *was != "c:1" {
            assert_eq!(&now, was, "key {n} moved although its peer stayed");
        }
    }
}

#[test]
fn least_connections_prefers_the_peer_with_fewer_requests_in_flight() {
    let (s, u) = state(
        json!({"name": "lc", "algorithm": "least-connections"}),
        &[("a:1", 100), ("b:1", 100)],
    );
    let b = Balancer::build(&u, &s, &HealthRegistry::default(), &DnsCache::default()).unwrap();
    let set = b.peers();
    let start = |i: usize| InFlight::start(&set.peers[i].health);
    let busy = start(0);
    let _also = start(0);
    assert!((0..10).all(|_| b.pick(&set, None, &[]) == Some(1)));
    drop(busy);
    let _b1 = start(1);
    let _b2 = start(1);
    assert_eq!(
        b.pick(&set, None, &[]),
        Some(0),
        "now a has 1 in flight and b 2"
    );
}

#[test]
fn a_resolved_name_is_one_peer_per_address_with_the_targets_weight() {
    let (s, u) = state(
        json!({"name": "dns"}),
        &[("api.test:8080", 100), ("10.0.0.9:81", 100)],
    );
    let registry = HealthRegistry::default();
    let dns = DnsCache::default();
    let b = Balancer::build(&u, &s, &registry, &dns).unwrap();
    let addresses = |b: &Balancer| -> Vec<String> {
        b.peers()
            .peers
            .iter()
            .map(|p| p.key.address.clone())
            .collect()
    };
    assert_eq!(
        addresses(&b),
        ["10.0.0.9:81", "api.test:8080"],
        "unresolved, the name is its own peer"
    );
    assert_eq!(b.hostnames().collect::<Vec<_>>(), ["api.test"]);
    let ips = ["10.1.0.1", "10.1.0.2"]
        .map(|i| i.parse().unwrap())
        .to_vec();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    assert_eq!(dns.record("api.test", Ok((ips, until))), Recorded::Changed);
    assert!(b.refresh(&dns, &registry));
    assert!(!b.refresh(&dns, &registry), "nothing new the second time");
    assert_eq!(
        addresses(&b),
        ["10.0.0.9:81", "10.1.0.1:8080", "10.1.0.2:8080"]
    );
    assert!(b.peers().peers.iter().all(|p| p.weight == 100));
    assert_eq!(counts(&b, 300, |_| None), vec![100, 100, 100]);
    // Health is per address; an address the name no longer has is forgotten.
    let set = b.peers();
    let rules = (
        &u.healthchecks.passive.healthy,
        &u.healthchecks.passive.unhealthy,
    );
    let mut strict = rules.1.clone();
    strict.tcp_failures = 1;
    set.peers[1]
        .health
        .report(Outcome::TcpFailure, (rules.0, &strict));
    let ips = vec!["10.1.0.1".parse().unwrap()];
    dns.record("api.test", Ok((ips, until)));
    b.refresh(&dns, &registry);
    assert_eq!(addresses(&b), ["10.0.0.9:81", "10.1.0.1:8080"]);
    let known: Vec<(String, bool)> = registry
        .snapshot()
        .into_iter()
        .map(|r| (r.key.address, r.healthy))
        .collect();
    assert_eq!(
        known,
        [
            ("10.0.0.9:81".into(), true),
            ("10.1.0.1:8080".into(), false)
        ]
    );
    // A set taken before the refresh still answers for the requests that hold it.
    assert_eq!(set.peers.len(), 3);
}
