//! The README's quickstart, headless: the demo's start-up path on ephemeral ports, every printed step
//! executed and checked, then a second run on the same data dirs.

use demo::quickstart::{start, Auth, Options, Running};
use serde_json::Value;

fn options(dir: &std::path::Path, fresh: bool) -> Options {
    Options {
        data_dir: dir.to_path_buf(),
        fresh,
        admin_port: 0,
        cluster_port: 0,
        proxy_ports: vec![0, 0],
        status_ports: vec![0, 0],
        idp_port: 0,
        upstream_port: 0,
    }
}

async fn run_steps(running: &Running) {
    let c = tests::client();
    let mut token = String::new();
    for (i, step) in running.steps.iter().enumerate() {
        let curl = step.curl();
        assert!(
            curl.starts_with("curl -s") || curl.starts_with("TOKEN=$(curl -s"),
            "{curl}"
        );
        let mut req = c.request(step.method.parse().unwrap(), &step.url);
        req = match &step.auth {
            Auth::None => req,
            Auth::Token => req.bearer_auth(&token),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
        };
        if !step.form.is_empty() {
            req = req.form(&step.form);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(
            status,
            step.expect,
            "step {} ({}): {body}",
            i + 1,
            step.title
        );
        if let Some(needle) = &step.expect_body {
            assert!(
                body.contains(needle.as_str()),
                "step {} ({}): '{needle}' not in {body}",
                i + 1,
                step.title
            );
        }
        if step.saves_token {
            let v: Value = serde_json::from_str(&body).unwrap();
            token = v["access_token"].as_str().unwrap().to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_steps_work_and_a_second_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&options(dir.path(), true)).await.unwrap();
    let banner = running.banner();
    assert!(banner.contains("--user alex:doe"), "{banner}");
    assert!(banner.contains("/clustering/data-planes"));
    run_steps(&running).await;
    running.stop().await.unwrap();
    // Second run: the nodes come back from their stored identity (no pairing token is created).
    let running = start(&options(dir.path(), false)).await.unwrap();
    let tokens: Value = tests::client()
        .get(format!("{}/clustering/pairing-tokens", running.admin_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes: Value = tests::client()
        .get(format!("{}/clustering/data-planes", running.admin_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        nodes["data"].as_array().unwrap().len(),
        2,
        "the same two nodes, not new ones: {nodes}"
    );
    assert!(
        tokens["data"].as_array().unwrap().is_empty(),
        "no new pairing token was needed"
    );
    run_steps(&running).await;
    running.stop().await.unwrap();
}
