//! Several control planes on one PostgreSQL server, each test with a throwaway server of its own: one
//! configuration with strictly increasing versions whichever control plane is written to, one cluster CA
//! kept sealed in the database, nodes that may pair with one control plane and connect to another,
//! enrollment tokens, revocations and cache purges that span control planes, and a database outage that
//! refuses writes with 503 while nodes keep serving.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::postgres::{Postgres, PASSWORD};
use tests::{
    client, eventually, metric, ControlPlane, CpOptions, DataPlane, DpOptions, EchoUpstream,
    PATIENCE,
};

async fn root(cp: &ControlPlane) -> Value {
    cp.get("/").await.expect("GET /")
}

async fn node_view(cp: &ControlPlane, id: &str) -> Value {
    cp.get(&format!("/clustering/data-planes/{id}"))
        .await
        .expect("node view")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_planes_on_postgres_share_configuration_nodes_and_the_cluster_ca() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = ControlPlane::pair_on_postgres(&url, keys.path()).await;

    // One CA, kept in the database; the database password shows nowhere.
    let (ra, rb) = (root(&a).await, root(&b).await);
    assert_eq!(ra["configuration"]["cluster_ca"], "database");
    assert_eq!(ra["configuration"]["database"], "postgres");
    assert_eq!(
        ra["configuration"]["ca_fingerprint"],
        rb["configuration"]["ca_fingerprint"]
    );
    assert!(!ra.to_string().contains(PASSWORD), "{ra}");
    let b_name = rb["configuration"]["control_plane_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(ra["configuration"]["control_plane_name"], b_name.as_str());

    // A write on A is visible on B; a node paired with A's token connects to B.
    let up = EchoUpstream::start().await;
    a.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    a.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    let token = a.pairing_token().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(token),
        control_plane: Some(b.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    let node_id = dp.node_id.clone().unwrap();
    dp.wait_version(a.version().await).await;
    let r = client()
        .get(format!("{}/", dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A lists the node as connected to B.
    eventually(PATIENCE, "A shows the node connected to B", || async {
        let v = node_view(&a, &node_id).await;
        (v["status"] == "connected" && v["control_plane"] == b_name.as_str()).then_some(())
    })
    .await;

    // Writes on both at once: every one is committed as a version of its own.
    let before = a.version().await;
    let writes = (0..20).map(|i| {
        let cp = if i % 2 == 0 { &a } else { &b };
        async move {
            let (status, body) = cp
                .call(
                    reqwest::Method::POST,
                    "/consumers",
                    Some(json!({"username": format!("user-{i}")})),
                )
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
        }
    });
    futures::future::join_all(writes).await;
    let after = eventually(
        PATIENCE,
        "both control planes at the same version",
        || async {
            let (va, vb) = (a.version().await, b.version().await);
            (va == vb).then_some(va)
        },
    )
    .await;
    assert_eq!(after, before + 20, "one version per write");
    for cp in [&a, &b] {
        let consumers = cp.get("/consumers?size=100").await.unwrap();
        assert_eq!(consumers["data"].as_array().unwrap().len(), 20);
    }

    // A write on A reaches the node held by B.
    let started = Instant::now();
    a.post("/consumers", json!({"username": "late"})).await;
    dp.wait_version(after + 1).await;
    println!(
        "write on A applied by a node connected to B after {} ms",
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_revocations_and_purges_span_control_planes() {
    let pg = Postgres::start();
    let url = pg.database("spanning");
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = ControlPlane::pair_on_postgres(&url, keys.path()).await;

    // One use, two nodes racing through different control planes: exactly one pairs.
    let token = a
        .post(
            "/clustering/pairing-tokens",
            json!({"ttl": 600, "max_uses": 1}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut racers = Vec::new();
    for cp in [&a, &b] {
        racers.push(
            DataPlane::spawn(DpOptions {
                pairing_token: Some(token.clone()),
                control_plane: Some(cp.cluster_addr.to_string()),
                ..Default::default()
            })
            .await,
        );
    }
    let mut refused = Vec::new();
    for n in &mut racers {
        if let Some(err) = n.exit_error(Duration::from_secs(5)).await {
            refused.push(err);
        }
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("already used"), "{refused:?}");
    drop(racers);

    // A node held by B: a purge on A reaches it, a revocation on A cuts it off.
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(b.pairing_token().await),
        control_plane: Some(b.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    let node_id = dp.node_id.clone().unwrap();
    eventually(PATIENCE, "node connected", || async {
        (dp.status().await.ok()?["control_plane"]["connected"] == true).then_some(())
    })
    .await;
    let (status, body) = a
        .call(reqwest::Method::DELETE, "/cache", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    eventually(PATIENCE, "the purge reaches the node on B", || async {
        let m = dp.metrics().await;
        (metric(&m, "portcullis_cache_purges_total", &[("cache", "*")]) >= 1.0).then_some(())
    })
    .await;

    let (status, _) = a
        .call(
            reqwest::Method::DELETE,
            &format!("/clustering/data-planes/{node_id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    eventually(PATIENCE, "B cuts the revoked node off", || async {
        let v = node_view(&b, &node_id).await;
        let st = dp.status().await.ok()?;
        (v["status"] == "revoked" && st["control_plane"]["connected"] == false).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_refuses_writes_keeps_nodes_serving_and_recovers() {
    let pg = Postgres::start();
    let url = pg.database("outage");
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = ControlPlane::pair_on_postgres(&url, keys.path()).await;
    let up = EchoUpstream::start().await;
    a.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    a.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(a.pairing_token().await),
        control_plane: Some(a.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    dp.wait_version(a.version().await).await;

    pg.stop_server();
    let (status, body) = a
        .call(
            reqwest::Method::POST,
            "/consumers",
            Some(json!({"username": "during-outage"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("database"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    // Reads of the last known state still work; the status says the database is gone.
    let (status, services) = b
        .call(reqwest::Method::GET, "/services", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(services["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        a.get("/status").await.unwrap()["database"]["reachable"],
        false
    );
    // The node keeps its stream and serves.
    for _ in 0..50 {
        let r = client()
            .get(format!("{}/", dp.proxy_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        dp.status().await.unwrap()["control_plane"]["connected"],
        true
    );

    pg.start_server();
    eventually(
        PATIENCE,
        "writes resume once the database is back",
        || async {
            let (status, _) = b
                .call(
                    reqwest::Method::POST,
                    "/consumers",
                    Some(json!({"username": "after-outage"})),
                )
                .await
                .ok()?;
            (status == 201).then_some(())
        },
    )
    .await;
    let v = b.version().await;
    eventually(PATIENCE, "A catches up with B's write", || async {
        (a.version().await == v).then_some(())
    })
    .await;
    // A writes again too, and its node follows.
    a.post("/consumers", json!({"username": "after-outage-on-a"}))
        .await;
    assert_eq!(a.version().await, v + 1);
    dp.wait_version(v + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_configuration_moves_into_postgres_with_ids_timestamps_and_nodes() {
    let up = EchoUpstream::start().await;
    let mut old = ControlPlane::start().await;
    let svc = old
        .post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    old.post("/services/echo/routes", json!({"paths": ["/"]}))
        .await;
    old.post("/consumers", json!({"username": "alice"})).await;
    let mut dp_old = DataPlane::start(&old).await;
    let node_id = dp_old.node_id.clone().unwrap();
    let version = old.version().await;
    dp_old.wait_version(version).await;
    // Stopped, not dropped: the node's data dir (identity, last-known-good) lives as long as `dp_old`.
    dp_old.stop().await;
    let data_dir = dp_old.data_dir.clone();
    old.stop().await;

    let pg = Postgres::start();
    let url = pg.database("moved");
    let args = control_plane::migrate::MigrateArgs {
        from_data_dir: old.data_dir.clone(),
        database: control_plane::DatabaseArgs {
            database_url: Some(url.parse().unwrap()),
            ..control_plane::Config::defaults().database
        },
        secrets_key_file: None,
    };
    let moved = control_plane::migrate::run(&args).await.unwrap();
    assert_eq!(moved.version, version);
    assert_eq!((moved.entities, moved.nodes), (3, 1));
    // A second run refuses: the database is no longer empty.
    let again = control_plane::migrate::run(&args).await.unwrap_err();
    assert!(again.to_string().contains("already holds"), "{again}");

    let pki = old.data_dir.join("pki");
    let cp = ControlPlane::start_with(CpOptions {
        database_url: Some(url),
        cluster_ca: Some((pki.join("cluster-ca.pem"), pki.join("cluster-ca.key"))),
        ..Default::default()
    })
    .await;
    assert_eq!(cp.version().await, version);
    let id = svc["id"].as_str().unwrap();
    assert_eq!(cp.get(&format!("/services/{id}")).await.unwrap(), svc);
    // The node comes back with its identity and is in sync at once.
    let dp = DataPlane::start_with(DpOptions {
        data_dir: Some(data_dir),
        control_plane: Some(cp.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    assert_eq!(dp.node_id.as_deref(), Some(node_id.as_str()));
    eventually(PATIENCE, "the moved node is in sync", || async {
        (node_view(&cp, &node_id).await["sync_status"] == "in_sync").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_can_be_reached_over_verified_tls_only() {
    let pg = Postgres::start();
    let url = pg.database("tls");
    let ca = pg.require_tls();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("ca-key");
    std::fs::write(&key_file, "1f".repeat(32)).unwrap();
    let base = control_plane::Config {
        data_dir: keys.path().join("cp"),
        database: control_plane::DatabaseArgs {
            database_url: Some(url.parse().unwrap()),
            database_connect_timeout_ms: 2000,
            ..control_plane::Config::defaults().database
        },
        cluster_ca_encryption_key_file: Some(key_file),
        ..control_plane::Config::defaults()
    };
    let start = |config: control_plane::Config| async move {
        let listeners = control_plane::Listeners {
            admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cluster: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            manager: None,
        };
        control_plane::run(config, listeners, std::future::pending()).await
    };
    // In clear: the server refuses, and the control plane says why without the password.
    let clear = tokio::time::timeout(PATIENCE, start(base.clone()))
        .await
        .expect("a refused database stops the start")
        .unwrap_err();
    let why = format!("{clear:#}");
    assert!(why.contains("PostgreSQL"), "{why}");
    assert!(!why.contains(PASSWORD), "{why}");
    // TLS with the public roots: the server's private CA is not trusted.
    let untrusted = tokio::time::timeout(
        PATIENCE,
        start(control_plane::Config {
            database: control_plane::DatabaseArgs {
                database_tls: control_plane::DatabaseTls::VerifyFull,
                ..base.database.clone()
            },
            ..base.clone()
        }),
    )
    .await
    .expect("an untrusted database stops the start")
    .unwrap_err();
    assert!(
        format!("{untrusted:#}")
            .to_lowercase()
            .contains("certificate"),
        "{untrusted:#}"
    );
    // TLS verified against the database's CA: the control plane runs and takes writes.
    let cp = ControlPlane::start_with(CpOptions {
        database_url: Some(url),
        ca_encryption_key_file: Some(keys.path().join("ca-key")),
        database_tls_ca_file: Some(ca),
        ..Default::default()
    })
    .await;
    cp.post("/consumers", json!({"username": "over-tls"})).await;
    assert_eq!(cp.version().await, 1);
}
