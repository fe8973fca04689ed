//! Two control-plane processes on one throwaway PostgreSQL server, one killed with SIGKILL while a client
//! writes through it and traffic flows through nodes split across both: nothing proxied fails, its node
//! reconnects to the other control plane, and every write answered 2xx is there afterwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tests::postgres::Postgres;
use tests::process::{dp_version, post, start_cp_with, Cp, DpLaunch};
use tests::{client, eventually, get_json, try_json, EchoUpstream, PATIENCE};

async fn stream_address(status: &str) -> Option<String> {
    let st = try_json(&format!("{status}/status")).await?;
    (st["control_plane"]["connected"] == true)
        .then(|| st["control_plane"]["address"].as_str().map(String::from))
        .flatten()
}

async fn start(dir: &std::path::Path, name: &str, url: &str, key: &str) -> Cp {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    start_cp_with(
        &sub,
        "127.0.0.1:0",
        "cp.log",
        &[
            "--database-url",
            url,
            "--cluster-ca-encryption-key-file",
            key,
            "--database-poll-interval-ms",
            "1000",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_killed_mid_write_loses_no_answered_write_and_no_request() {
    let pg = Postgres::start();
    let url = pg.database("failover");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca-key");
    std::fs::write(&key, "c3".repeat(32)).unwrap();
    let key = key.to_str().unwrap().to_string();
    let mut a = start(dir.path(), "a", &url, &key).await;
    let b = start(dir.path(), "b", &url, &key).await;

    let up = EchoUpstream::start().await;
    post(
        &a.admin,
        "/services",
        json!({"name": "echo", "url": up.url}),
    )
    .await;
    post(&a.admin, "/services/echo/routes", json!({"paths": ["/"]})).await;
    // One node on each control plane (each lists the other as its second address).
    let mut nodes = Vec::new();
    for (first, second, name) in [(&a, &b, "dp-a"), (&b, &a, "dp-b")] {
        let token = post(
            &first.admin,
            "/clustering/pairing-tokens",
            json!({"ttl": 600}),
        )
        .await;
        let addresses = format!("{},{}", first.cluster, second.cluster);
        let dp = DpLaunch {
            data_dir: dir.path().join(name),
            control_plane: &addresses,
            token: token["token"].as_str(),
            log: dir.path().join(format!("{name}.log")),
            wrapper: Vec::new(),
        }
        .start()
        .await;
        nodes.push(dp);
    }
    let version = get_json(&format!("{}/status", a.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    for dp in &nodes {
        eventually(PATIENCE, "node in sync", || async {
            (dp_version(&dp.status).await >= version).then_some(())
        })
        .await;
    }
    assert_eq!(
        stream_address(&nodes[0].status).await.as_deref(),
        Some(a.cluster.as_str())
    );

    // Traffic through both nodes, and writes through A, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic: Vec<_> = nodes
        .iter()
        .map(|dp| {
            let (stop, served, failed, url) = (
                stop.clone(),
                served.clone(),
                failed.clone(),
                dp.proxy.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client().get(format!("{url}/")).send().await {
                        Ok(r) if r.status() == 200 => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, answered, admin) = (stop.clone(), answered.clone(), a.admin.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("writer-{i}");
                i += 1;
                let r = client()
                    .post(format!("{admin}/consumers"))
                    .json(&json!({"username": name}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => answered.lock().unwrap().push(name),
                    // Refused or cut off when A dies: not acknowledged, so not owed.
                    _ => tokio::task::yield_now().await,
                }
            }
        })
    };
    eventually(PATIENCE, "writes go through A", || async {
        (answered.lock().unwrap().len() >= 10).then_some(())
    })
    .await;

    a.proc.kill9();
    let killed = Instant::now();
    let moved = eventually(PATIENCE, "A's node reconnects to B", || async {
        let addr = stream_address(&nodes[0].status).await?;
        (addr == b.cluster).then_some(killed.elapsed())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    for t in traffic {
        t.await.unwrap();
    }
    println!(
        "node moved to B {} ms after A was killed; {} requests served, {} failed; {} writes answered 2xx",
        moved.as_millis(),
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        answered.lock().unwrap().len()
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no proxied request failed"
    );

    // Every write A answered 2xx is in the database, as B shows.
    let consumers = get_json(&format!("{}/consumers?size=1000", b.admin)).await;
    let names: Vec<&str> = consumers["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["username"].as_str())
        .collect();
    for name in answered.lock().unwrap().iter() {
        assert!(
            names.contains(&name.as_str()),
            "{name} was answered 201 but is gone"
        );
    }
    // And both nodes follow writes made on B.
    post(
        &b.admin,
        "/consumers",
        json!({"username": "after-failover"}),
    )
    .await;
    let version = get_json(&format!("{}/status", b.admin)).await["config_version"]
        .as_u64()
        .unwrap();
    for dp in &nodes {
        eventually(PATIENCE, "node follows B", || async {
            (dp_version(&dp.status).await >= version).then_some(())
        })
        .await;
    }
}
