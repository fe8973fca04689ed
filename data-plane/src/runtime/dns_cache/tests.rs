use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn new_addresses_bump_the_generation_and_the_same_ones_do_not() {
    let cache = DnsCache::default();
    assert_eq!(cache.addresses("api.test"), None);
    let g0 = cache.generation();
    let two = vec![ip("10.0.0.2"), ip("10.0.0.1"), ip("10.0.0.2")];
    assert_eq!(
        cache.record("api.test", Ok((two, later(30)))),
        Recorded::Changed
    );
    assert_eq!(
        cache.addresses("api.test").unwrap().as_ref(),
        &[ip("10.0.0.1"), ip("10.0.0.2")],
        "sorted, duplicates dropped"
    );
    assert_eq!(cache.generation(), g0 + 1);
    let reordered = vec![ip("10.0.0.2"), ip("10.0.0.1")];
    assert_eq!(
        cache.record("api.test", Ok((reordered, later(30)))),
        Recorded::Same
    );
    assert_eq!(cache.generation(), g0 + 1);
    assert_eq!(
        cache.record("api.test", Ok((vec![ip("10.0.0.3")], later(30)))),
        Recorded::Changed
    );
    assert_eq!(cache.generation(), g0 + 2);
}

#[test]
fn a_failure_keeps_the_last_addresses_and_is_reported_once() {
    let cache = DnsCache::default();
    assert_eq!(
        cache.record("gone.test", Err("no answer".into())),
        Recorded::Failing
    );
    assert_eq!(cache.failure("gone.test").as_deref(), Some("no answer"));
    cache.record("api.test", Ok((vec![ip("10.0.0.1")], later(30))));
    let g = cache.generation();
    assert_eq!(
        cache.record("api.test", Err("timeout".into())),
        Recorded::Failing
    );
    assert_eq!(
        cache.record("api.test", Err("timeout".into())),
        Recorded::StillFailing
    );
    assert_eq!(
        cache.addresses("api.test").unwrap().as_ref(),
        &[ip("10.0.0.1")]
    );
    assert_eq!(cache.failure("api.test"), None, "it resolved before");
    assert_eq!(cache.generation(), g);
}

#[test]
fn names_are_due_when_new_or_when_their_ttl_ran_out_but_not_sooner_than_a_second() {
    let cache = DnsCache::default();
    let used: HashSet<String> = ["a.test", "b.test", "c.test"].map(String::from).into();
    let now = Instant::now();
    let mut due = cache.due(&used, now);
    due.sort();
    assert_eq!(due, ["a.test", "b.test", "c.test"]);
    cache.record("a.test", Ok((vec![ip("10.0.0.1")], later(30))));
    // A TTL of 0 is held for the one-second floor.
    cache.record("b.test", Ok((vec![ip("10.0.0.2")], Instant::now())));
    cache.record("c.test", Err("refused".into()));
    assert!(cache.due(&used, now).is_empty());
    let mut due = cache.due(&used, now + Duration::from_millis(1500));
    due.sort();
    assert_eq!(due, ["b.test", "c.test"]);
    cache.retain(&["a.test".to_string()].into());
    assert_eq!(cache.addresses("b.test"), None);
    assert!(cache.addresses("a.test").is_some());
}
