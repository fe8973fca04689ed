//! Targets named by host name, against a DNS server run by the test: each address the name resolves to
//! is a peer of its own; the node asks again when the records' TTL runs out and moves to the new
//! addresses without failing a request; a name that stops resolving keeps its last addresses; a name the
//! node cannot resolve shows `DNS_ERROR`; and the Admin API checks Target names against the same
//! resolver.

use std::net::Ipv4Addr;

use reqwest::Method;
use serde_json::{json, Value};
use tests::dns::TestDns;
use tests::{
    client, eventually, get_json, ControlPlane, CpOptions, DataPlane, DpOptions, EchoUpstream,
    PATIENCE,
};
use tokio::net::TcpListener;

const LOOPBACKS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
];

/// Three upstreams on the same port of 127.0.0.1, .2 and .3, so that one Target name stands for any of
/// them depending on what it resolves to.
async fn three_on_one_port() -> (u16, Vec<EchoUpstream>) {
    for _ in 0..50 {
        let first = TcpListener::bind((LOOPBACKS[0], 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let (Ok(second), Ok(third)) = (
            TcpListener::bind((LOOPBACKS[1], port)).await,
            TcpListener::bind((LOOPBACKS[2], port)).await,
        ) else {
            continue;
        };
        let mut ups = Vec::new();
        for l in [first, second, third] {
            ups.push(EchoUpstream::start_on(l).await);
        }
        return (port, ups);
    }
    panic!("no port free on 127.0.0.1, .2 and .3 at once");
}

async fn node(cp: &ControlPlane, dns: &TestDns) -> DataPlane {
    DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        dns_resolver: Some(dns.addr),
        ..Default::default()
    })
    .await
}

/// An Upstream `api.internal` with the one Target `target`, a Service on it and the route `/api`.
async fn balanced_on(cp: &ControlPlane, target: &str) {
    cp.post("/upstreams", json!({"name": "api.internal"})).await;
    cp.post("/upstreams/api.internal/targets", json!({"target": target}))
        .await;
    cp.post("/services", json!({"name": "api", "host": "api.internal"}))
        .await;
    cp.post("/services/api/routes", json!({"paths": ["/api"]}))
        .await;
}

/// The addresses (`ip:port`) and health of the Upstream's first Target, as the node's status shows it.
async fn addresses(dp: &DataPlane) -> (String, Vec<String>) {
    let v = get_json(&format!("{}/upstreams/api.internal/health", dp.status_url)).await;
    let t = &v["data"][0];
    let mut list: Vec<String> = t["data"]["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| format!("{}:{}", x["ip"].as_str().unwrap_or(""), x["port"]))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    (t["health"].as_str().unwrap_or("").to_string(), list)
}

async fn wait_addresses(dp: &DataPlane, want: &[String]) {
    eventually(PATIENCE, "the node's peers to follow DNS", || async {
        let (_, got) = addresses(dp).await;
        (got == want).then_some(())
    })
    .await;
}

/// Sends `n` requests to `/api`, every one answered 200; how many each upstream served.
async fn requests(dp: &DataPlane, ups: &[EchoUpstream], n: usize) -> Vec<u64> {
    let counts = || -> Vec<u64> { ups.iter().map(EchoUpstream::requests).collect() };
    let before = counts();
    for _ in 0..n {
        get_api(dp).await;
    }
    counts().iter().zip(&before).map(|(a, b)| a - b).collect()
}

async fn get_api(dp: &DataPlane) {
    let resp = client()
        .get(format!("{}/api", dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "no request fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_name_is_balanced_over_its_addresses_and_follows_its_records() {
    let dns = TestDns::start(1).await;
    dns.set("api.test", &LOOPBACKS[..2]);
    let (port, ups) = three_on_one_port().await;
    let cp = ControlPlane::start_with(CpOptions {
        dns_resolver: Some(dns.addr),
        ..Default::default()
    })
    .await;
    let dp = node(&cp, &dns).await;
    balanced_on(&cp, &format!("api.test:{port}")).await;
    dp.wait_version(cp.version().await).await;
    let at =
        |ips: &[Ipv4Addr]| -> Vec<String> { ips.iter().map(|ip| format!("{ip}:{port}")).collect() };
    wait_addresses(&dp, &at(&LOOPBACKS[..2])).await;

    // One peer per address, each with the Target's weight: round-robin splits evenly.
    let served = requests(&dp, &ups, 40).await;
    assert_eq!(served, [20, 20, 0]);
    let (health, _) = addresses(&dp).await;
    assert_eq!(health, "HEALTHCHECKS_OFF");

    // New records: once the 1 s TTL is up the node asks again and moves over, failing no request.
    let asked = dns.queries("api.test");
    dns.set("api.test", &LOOPBACKS[2..]);
    eventually(PATIENCE, "a request to reach the new address", || async {
        get_api(&dp).await;
        (ups[2].requests() > 0).then_some(())
    })
    .await;
    assert!(dns.queries("api.test") > asked, "the name was asked again");
    wait_addresses(&dp, &at(&LOOPBACKS[2..])).await;
    let served = requests(&dp, &ups, 10).await;
    assert_eq!(served, [0, 0, 10]);

    // The name stops resolving: the node keeps serving its last address and keeps asking.
    dns.set("api.test", &[]);
    let asked = dns.queries("api.test");
    eventually(PATIENCE, "the node to ask twice more", || async {
        (dns.queries("api.test") >= asked + 2).then_some(())
    })
    .await;
    get_api(&dp).await;
    assert_eq!(addresses(&dp).await.1, at(&LOOPBACKS[2..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_names_are_checked_with_the_resolver_and_an_unresolved_name_shows_dns_error() {
    let cp_dns = TestDns::start(30).await;
    let node_dns = TestDns::start(30).await;
    cp_dns.set("ghost.test", &LOOPBACKS[..1]);
    let cp = ControlPlane::start_with(CpOptions {
        dns_resolver: Some(cp_dns.addr),
        ..Default::default()
    })
    .await;
    cp.post("/upstreams", json!({"name": "api.internal"})).await;
    let (status, body) = cp
        .call(
            Method::POST,
            "/upstreams/api.internal/targets",
            Some(json!({"target": "nowhere.test:80"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    let why = body["fields"]["target"].as_str().unwrap_or_default();
    assert!(why.contains("'nowhere.test' does not resolve"), "{body}");
    assert!(
        cp_dns.queries("nowhere.test") > 0,
        "asked the configured server"
    );

    // The control plane's resolver knows the name; the node's does not.
    cp.post(
        "/upstreams/api.internal/targets",
        json!({"target": "ghost.test:80"}),
    )
    .await;
    let dp = node(&cp, &node_dns).await;
    dp.wait_version(cp.version().await).await;
    eventually(PATIENCE, "the Target to show DNS_ERROR", || async {
        let v: Value = get_json(&format!("{}/upstreams/api.internal/health", dp.status_url)).await;
        (v["data"][0]["health"] == "DNS_ERROR").then_some(())
    })
    .await;
    assert!(node_dns.queries("ghost.test") > 0);
}
