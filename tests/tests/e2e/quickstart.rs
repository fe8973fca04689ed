//! The README's quickstart, headless: the demo's start-up path on ephemeral ports, every printed step
//! executed and checked, then a second run on the same data dirs.

use demo::quickstart::{start, Auth, Options, Running};
use serde_json::Value;

fn options(dir: &std::path::Path, fresh: bool) -> Options {
    Options {
        data_dir: dir.to_path_buf(),
        fresh,
        admin_port: 0,
        console_port: 0,
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
            Auth::Admin(t) => req.header("kong-admin-token", t),
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
    assert!(banner.contains(&running.console_url) && banner.contains(&running.admin_token));
    run_steps(&running).await;
    let first_token = running.admin_token.clone();
    running.stop().await.unwrap();
    // Second run: the nodes come back from their stored identity (no pairing token is created).
    let running = start(&options(dir.path(), false)).await.unwrap();
    assert_eq!(running.admin_token, first_token, "the admin token is kept");
    let admin = |path: &str| {
        let url = format!("{}{path}", running.admin_url);
        let token = running.admin_token.clone();
        async move {
            let r = tests::client()
                .get(url)
                .header("kong-admin-token", token)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let unauthorized = tests::client()
        .get(format!("{}/clustering/data-planes", running.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    // The console the banner names answers with its sign-in page.
    let login = tests::client()
        .get(format!("{}/login", running.console_url))
        .send()
        .await
        .unwrap();
    assert!(login.text().await.unwrap().contains("Admin token"));
    let tokens = admin("/clustering/pairing-tokens").await;
    let nodes = admin("/clustering/data-planes").await;
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

/// The steps of a banner: (title, shell command), in order.
fn banner_steps(banner: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = banner.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let title = w[0].strip_prefix("# ")?.split_once(". ")?.1;
            Some((title.to_string(), w[1].to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_binary_prints_commands_that_work_in_a_shell() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    // The README's first command is `cargo run -p demo`: the same binary, on ephemeral ports.
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(tests::process::bin("demo"))
        .args(["--fresh", "--data-dir"])
        .arg(dir.path())
        .args([
            "--admin-port",
            "0",
            "--console-port",
            "0",
            "--cluster-port",
            "0",
            "--idp-port",
            "0",
        ])
        .args([
            "--upstream-port",
            "0",
            "--proxy-ports",
            "0,0",
            "--status-ports",
            "0,0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = tests::within(tests::PATIENCE, "the demo's banner", async {
        let mut banner = String::new();
        while let Some(line) = out.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C stops everything") {
                break;
            }
        }
        banner
    })
    .await;
    let steps = banner_steps(&banner);
    assert!(steps.len() >= 6, "{banner}");
    // Run the printed commands verbatim in one shell (the first one sets $TOKEN for the others), each
    // followed by the status curl saw; the title says when 401 is the expected answer.
    let mut script = String::from("set -u\n");
    for (i, (_, cmd)) in steps.iter().enumerate() {
        if cmd.starts_with("TOKEN=$(") {
            script.push_str(&format!("{cmd}\necho \"STEP{i} token ${{#TOKEN}}\"\n"));
        } else {
            script.push_str(&format!(
                "{cmd} -o /dev/null -w \"STEP{i} status %{{http_code}}\\n\"\n"
            ));
        }
    }
    let run = tests::within(
        tests::PATIENCE,
        "the printed commands",
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output(),
    )
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{script}\n{printed}");
    for (i, (title, cmd)) in steps.iter().enumerate() {
        let line = printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STEP{i} ")))
            .unwrap_or_else(|| panic!("step {i} printed nothing: {printed}"));
        if cmd.starts_with("TOKEN=$(") {
            let len: usize = line.trim_start_matches("token ").parse().unwrap();
            assert!(len > 20, "step {i} ({title}) got no token: {printed}");
        } else {
            let expected = if title.ends_with(": 401") {
                "401"
            } else {
                "200"
            };
            assert_eq!(
                line,
                format!("status {expected}"),
                "step {i} ({title}): {cmd}"
            );
        }
    }
    // Ctrl-C stops everything cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tests::within(tests::PATIENCE, "the demo to stop", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}
