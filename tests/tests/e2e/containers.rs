//! The compose cluster on the Docker engine: the image built from the Dockerfile (with the locally made
//! base), three data planes enrolled with one token, and the faults containers make easy: the control
//! plane killed, a node restarted without it, a node cut off the cluster network, SIGTERM during a slow
//! request. Clients reach containers at their addresses on the compose networks and, for the node cut
//! off, also at the host port Docker picked for it. Where no Docker engine answers, the test says
//! SKIPPED and why.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::docker::{engine_missing, hostname, run, status_of, Cluster, Compose, PATIENCE};
use tests::{client, eventually};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_cluster_scales_and_survives_its_faults() {
    if let Some(why) = engine_missing() {
        eprintln!("SKIPPED: containers: {why}; the container test did not run");
        return;
    }
    let started = Instant::now();
    let built = run(
        repo().join("scripts/docker-build.sh").to_str().unwrap(),
        &["debug"],
        &[],
        Duration::from_secs(900),
    )
    .expect("image built");
    eprintln!("containers: {}", built.lines().last().unwrap_or_default());

    let compose = Compose::new(&repo());
    compose
        .compose(
            &["up", "-d", "--scale", "data-plane=3"],
            Duration::from_secs(300),
        )
        .expect("compose up");
    let cp = compose.containers("control-plane").unwrap().remove(0);
    let admin_token = std::fs::read_to_string(repo().join("docker/secrets/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let c = Cluster {
        compose,
        cp,
        admin_token,
    };

    // Three nodes enrolled with one token, each with its own identity, all in sync.
    let nodes = c.wait_all_in_sync(3).await;
    for n in &nodes {
        assert_eq!(n["labels"]["enrolled-by"], "configure", "{n}");
    }
    let (_, tokens) = c
        .admin(reqwest::Method::GET, "/clustering/pairing-tokens", None)
        .await;
    assert_eq!(tokens["data"][0]["uses"], 3, "{tokens}");
    let dps = c.compose.containers("data-plane").unwrap();
    assert_eq!(dps.len(), 3);

    // A token from the demo identity provider is accepted through every node.
    let idp = c.compose.containers("idp").unwrap().remove(0);
    let idp_url = format!("http://{}:9080", c.compose.ip(&idp, "edge").unwrap());
    let grant: Value = client()
        .post(format!("{idp_url}/token"))
        .basic_auth("app", Some("app-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = grant["access_token"].as_str().unwrap().to_string();
    let proxies: Vec<String> = dps.iter().map(|d| c.proxy(d)).collect();
    for p in &proxies {
        assert_eq!(
            status_of(&format!("{p}/introspection"), Some(&token)).await,
            200,
            "{p}"
        );
        assert_eq!(
            status_of(&format!("{p}/introspection"), None).await,
            401,
            "{p}"
        );
    }

    // The control plane killed: a bounded stream of requests through the nodes has no failure.
    c.compose
        .compose(&["kill", "control-plane"], Duration::from_secs(60))
        .unwrap();
    let mut failures = 0;
    for i in 0..300 {
        let p = &proxies[i % proxies.len()];
        if status_of(&format!("{p}/introspection"), Some(&token)).await != 200 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 0,
        "requests failed while the control plane was down"
    );

    // A node restarted while the control plane is down serves its last-known-good config.
    run(
        "docker",
        &["restart", "-t", "10", &dps[0]],
        &[],
        Duration::from_secs(60),
    )
    .unwrap();
    let restarted = c.proxy(&dps[0]);
    eventually(PATIENCE, "restarted node serving", || async {
        (status_of(&format!("{restarted}/introspection"), Some(&token)).await == 200).then_some(())
    })
    .await;

    // The control plane back: every node in sync again.
    c.compose
        .compose(&["start", "control-plane"], Duration::from_secs(60))
        .unwrap();
    c.wait_all_in_sync(3).await;

    // One node cut off the cluster network: shown disconnected, still serving clients over `edge`, and
    // it gets the write made meanwhile once connected again.
    let cut = &dps[1];
    let cut_host = hostname(cut);
    let cluster_net = c.compose.network("cluster");
    // Clients reach it on its `edge` address and on the host port it publishes alike, before the cut,
    // at once after it, and for as long as it lasts.
    let cut_published = c.published(cut, 8000);
    assert_eq!(
        status_of(&format!("{cut_published}/introspection"), Some(&token)).await,
        200
    );
    run(
        "docker",
        &["network", "disconnect", &cluster_net, cut],
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(
        status_of(&format!("{cut_published}/introspection"), Some(&token)).await,
        200,
        "the published port answers at once after the cut"
    );
    eventually(PATIENCE, "cut-off node shown disconnected", || async {
        let nodes = c.nodes().await;
        nodes
            .iter()
            .any(|n| n["hostname"] == cut_host.as_str() && n["status"] == "disconnected")
            .then_some(())
    })
    .await;
    let cut_proxy = format!("http://{}:8000", c.compose.ip(cut, "edge").unwrap());
    for _ in 0..25 {
        for proxy in [&cut_proxy, &cut_published] {
            assert_eq!(
                status_of(&format!("{proxy}/introspection"), Some(&token)).await,
                200,
                "{proxy}"
            );
        }
    }
    let (s, _) = c
        .admin(
            reqwest::Method::POST,
            "/services/echo/routes",
            Some(json!({"name": "during-partition", "paths": ["/partitioned"]})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        status_of(&format!("{cut_proxy}/partitioned"), None).await,
        404
    );
    run(
        "docker",
        &["network", "connect", &cluster_net, cut],
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    eventually(
        PATIENCE,
        "the write reaches the reconnected node",
        || async {
            (status_of(&format!("{cut_proxy}/partitioned"), None).await == 200).then_some(())
        },
    )
    .await;
    c.wait_all_in_sync(3).await;

    // SIGTERM during a slow request: the request completes and the container exits 0.
    let last = &dps[2];
    let last_proxy = c.proxy(last);
    let status_url = format!("http://{}:8100/status", c.compose.ip(last, "edge").unwrap());
    let slow = tokio::spawn({
        let url = format!("{last_proxy}/echo/delay/3000");
        async move {
            client()
                .get(url)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    eventually(PATIENCE, "the slow request in flight", || async {
        let v: Value = client()
            .get(&status_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["connections"].as_u64()? >= 1).then_some(())
    })
    .await;
    run(
        "docker",
        &["kill", "--signal", "TERM", last],
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(slow.await.unwrap().expect("slow request answered"), 200);
    let code = run("docker", &["wait", last], &[], Duration::from_secs(60)).unwrap();
    assert_eq!(code, "0", "the data plane exits 0 after draining");

    eprintln!(
        "containers: the container test took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_cluster_on_postgres_fails_over_between_control_planes() {
    if let Some(why) = engine_missing() {
        eprintln!("SKIPPED: containers with PostgreSQL: {why}; the HA container test did not run");
        return;
    }
    let started = Instant::now();
    for (script, args) in [
        ("docker-build.sh", &["debug"][..]),
        ("docker-postgres.sh", &[][..]),
    ] {
        let out = run(
            repo().join("scripts").join(script).to_str().unwrap(),
            args,
            &[],
            Duration::from_secs(900),
        )
        .unwrap_or_else(|e| panic!("{script}: {e}"));
        eprintln!("containers: {}", out.lines().last().unwrap_or_default());
    }
    let compose = Compose::with_override(
        &repo(),
        "docker-compose.ha.yml",
        &[
            ("POSTGRES_IMAGE", "portcullis/postgres:local"),
            ("PORTCULLIS_ADMIN_B_PORTS", "8001"),
        ],
    );
    compose
        .compose(
            &["up", "-d", "--scale", "data-plane=2"],
            Duration::from_secs(300),
        )
        .expect("compose up");
    let a = compose.containers("control-plane").unwrap().remove(0);
    let b = compose.containers("control-plane-b").unwrap().remove(0);
    let admin_token = std::fs::read_to_string(repo().join("docker/secrets/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let mut c = Cluster {
        compose,
        cp: a.clone(),
        admin_token,
    };

    // Both control planes on the database, with one CA kept there; each lists both nodes.
    c.wait_all_in_sync(2).await;
    let (_, root_a) = c.admin(reqwest::Method::GET, "/", None).await;
    assert_eq!(root_a["configuration"]["database"], "postgres", "{root_a}");
    assert_eq!(root_a["configuration"]["cluster_ca"], "database");
    c.cp = b.clone();
    let (_, root_b) = c.admin(reqwest::Method::GET, "/", None).await;
    assert_eq!(
        root_a["configuration"]["ca_fingerprint"],
        root_b["configuration"]["ca_fingerprint"]
    );
    let b_name = root_b["configuration"]["control_plane_name"]
        .as_str()
        .unwrap()
        .to_string();
    c.wait_all_in_sync(2).await;

    // A write on B reaches every node.
    let proxies: Vec<String> = c
        .compose
        .containers("data-plane")
        .unwrap()
        .iter()
        .map(|d| c.proxy(d))
        .collect();
    let route = |name: &str| json!({"name": name, "paths": [format!("/{name}")]});
    let (s, body) = c
        .admin(
            reqwest::Method::POST,
            "/services/echo/routes",
            Some(route("via-b")),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    for p in &proxies {
        eventually(PATIENCE, "B's write served by every node", || async {
            (status_of(&format!("{p}/via-b"), None).await == 200).then_some(())
        })
        .await;
    }

    // Control plane A killed: traffic never fails, and every node ends up on B, in sync.
    c.compose
        .compose(&["kill", "control-plane"], Duration::from_secs(60))
        .unwrap();
    let mut failures = 0;
    for i in 0..300 {
        if status_of(&format!("{}/via-b", proxies[i % proxies.len()]), None).await != 200 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 0,
        "requests failed while control plane A was down"
    );
    eventually(PATIENCE, "every node connected to B", || async {
        let nodes = c.nodes().await;
        (nodes.len() == 2
            && nodes.iter().all(|n| {
                n["status"] == "connected"
                    && n["control_plane"] == b_name.as_str()
                    && n["sync_status"] == "in_sync"
            }))
        .then_some(())
    })
    .await;
    let (s, _) = c
        .admin(
            reqwest::Method::POST,
            "/services/echo/routes",
            Some(route("after-failover")),
        )
        .await;
    assert_eq!(s, 201);
    for p in &proxies {
        eventually(
            PATIENCE,
            "the write after failover served by every node",
            || async {
                (status_of(&format!("{p}/after-failover"), None).await == 200).then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "containers: the PostgreSQL container test took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
