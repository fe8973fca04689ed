//! The compose cluster on the Docker engine: the image built from the Dockerfile (with the locally made
//! base), three data planes enrolled with one token, and the faults containers make easy: the control
//! plane killed, a node restarted without it, a node cut off the cluster network, SIGTERM during a slow
//! request. Clients reach containers at their addresses on the compose networks, so no host port is
//! fixed. Where no Docker engine answers, the test says SKIPPED and why.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::docker::{engine_missing, run, Compose};
use tests::{client, eventually};

const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Cluster {
    compose: Compose,
    /// The control plane's container (its address changes when it restarts).
    cp: String,
    admin_token: String,
}

impl Cluster {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let Ok(ip) = self.compose.ip(&self.cp, "cluster") else {
            return (0, Value::Null);
        };
        let mut r = client()
            .request(method, format!("http://{ip}:8001{path}"))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(resp) => {
                let s = resp.status().as_u16();
                (s, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn nodes(&self) -> Vec<Value> {
        let (_, v) = self
            .admin(reqwest::Method::GET, "/clustering/data-planes", None)
            .await;
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `n` nodes are connected and run the latest config.
    async fn wait_all_in_sync(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let nodes = self.nodes().await;
            let ok = nodes.len() == n
                && nodes
                    .iter()
                    .all(|x| x["status"] == "connected" && x["sync_status"] == "in_sync");
            if ok {
                return nodes;
            }
            let summary: Vec<String> = nodes
                .iter()
                .map(|x| format!("{} {} {}", x["hostname"], x["status"], x["sync_status"]))
                .collect();
            assert!(
                Instant::now() < deadline,
                "{n} nodes connected and in sync not seen within {PATIENCE:?}; last: {summary:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn proxy(&self, container: &str) -> String {
        format!(
            "http://{}:8000",
            self.compose.ip(container, "edge").unwrap()
        )
    }
}

fn hostname(container: &str) -> String {
    run(
        "docker",
        &["inspect", "--format", "{{.Config.Hostname}}", container],
        &[],
        Duration::from_secs(20),
    )
    .unwrap()
}

async fn status_of(url: &str, bearer: Option<&str>) -> u16 {
    let mut r = client().get(url).timeout(Duration::from_secs(10));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
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
    run(
        "docker",
        &["network", "disconnect", &cluster_net, cut],
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    eventually(PATIENCE, "cut-off node shown disconnected", || async {
        let nodes = c.nodes().await;
        nodes
            .iter()
            .any(|n| n["hostname"] == cut_host.as_str() && n["status"] == "disconnected")
            .then_some(())
    })
    .await;
    let cut_proxy = format!("http://{}:8000", c.compose.ip(cut, "edge").unwrap());
    for _ in 0..50 {
        assert_eq!(
            status_of(&format!("{cut_proxy}/introspection"), Some(&token)).await,
            200
        );
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
