//! Faults of the machine under the real binaries: a full disk, a read-only disk, and a node out of file
//! descriptors. The disk tests mount a small tmpfs; where the machine does not allow that they say
//! SKIPPED and why.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tests::mount::TmpMount;
use tests::process::{dp_version, post, start_cp, Cp, DpLaunch};
use tests::relay::Relay;
use tests::{client, eventually, get_json, metric, EchoUpstream, PATIENCE};

fn mount_or_skip(test: &str, kib: u64) -> Option<TmpMount> {
    match TmpMount::new(kib) {
        Ok(m) => Some(m),
        Err(why) => {
            eprintln!("SKIPPED: {test}: cannot mount a tmpfs to stand in for a disk ({why})");
            None
        }
    }
}

/// A control plane with a service `echo` and a route `/a` to `up`, and a pairing token.
async fn cluster(dir: &Path, up: &EchoUpstream) -> (Cp, String) {
    let cp = start_cp(dir, "127.0.0.1:0", "cp.log").await;
    post(
        &cp.admin,
        "/services",
        json!({"name": "echo", "url": up.url}),
    )
    .await;
    post(&cp.admin, "/services/echo/routes", json!({"paths": ["/a"]})).await;
    let token = post(&cp.admin, "/clustering/pairing-tokens", json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    (cp, token)
}

async fn cp_version(cp: &Cp) -> u64 {
    get_json(&format!("{}/status", cp.admin)).await["config_version"]
        .as_u64()
        .unwrap()
}

async fn wait_version(status: &str, version: u64) {
    eventually(PATIENCE, &format!("node at version {version}"), || async {
        (dp_version(status).await >= version).then_some(())
    })
    .await;
}

async fn status_code(url: &str) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

/// The node's `sync_status` and reason on the control plane, once it is `wanted`.
async fn wait_sync_status(cp: &Cp, wanted: &str) -> Value {
    eventually(PATIENCE, &format!("node {wanted}"), || async {
        let nodes = get_json(&format!("{}/clustering/data-planes", cp.admin)).await;
        nodes["data"]
            .as_array()?
            .iter()
            .find(|n| n["sync_status"] == wanted)
            .cloned()
    })
    .await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_disk_pairs_serves_and_reports_what_it_cannot_store() {
    let Some(disk) = mount_or_skip("full disk", 256) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let (cp, token) = cluster(dir.path(), &up).await;
    let filler = disk.fill();
    let dp = DpLaunch {
        data_dir: disk.path().join("dp"),
        control_plane: &cp.cluster,
        token: Some(&token),
        log: dir.path().join("dp.log"),
        wrapper: Vec::new(),
    }
    .start()
    .await;
    wait_version(&dp.status, cp_version(&cp).await).await;
    assert_eq!(status_code(&format!("{}/a", dp.proxy)).await, 200);
    let status = get_json(&format!("{}/status", dp.status)).await;
    assert_eq!(status["degraded"], true, "{status}");
    assert_eq!(status["lkg"]["persisted"], false);
    assert!(
        status["lkg"]["error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{status}"
    );
    assert_eq!(status["identity"]["persisted"], false);
    let metrics = client()
        .get(format!("{}/metrics", dp.status))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "portcullis_lkg_degraded", &[]), 1.0);
    assert!(metric(&metrics, "portcullis_lkg_write_errors_total", &[]) >= 1.0);
    let node = wait_sync_status(&cp, "applied_not_persisted").await;
    assert!(node["sync_status_reason"]
        .as_str()
        .unwrap()
        .starts_with("applied, not persisted"));

    // Room again: the next config is stored and the node is in sync.
    std::fs::remove_file(filler).unwrap();
    post(&cp.admin, "/services/echo/routes", json!({"paths": ["/b"]})).await;
    wait_sync_status(&cp, "in_sync").await;
    let status = get_json(&format!("{}/status", dp.status)).await;
    assert_eq!(status["lkg"]["persisted"], true, "{status}");
    assert_eq!(status_code(&format!("{}/b", dp.proxy)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_read_only_disk_starts_from_its_last_known_good_config() {
    let Some(disk) = mount_or_skip("read-only disk", 4096) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let (cp, token) = cluster(dir.path(), &up).await;
    let launch = |token: Option<&'static str>, log: &str| DpLaunch {
        data_dir: disk.path().join("dp"),
        control_plane: &cp.cluster,
        token,
        log: dir.path().join(log),
        wrapper: Vec::new(),
    };
    let token: &'static str = token.leak();
    let mut dp = launch(Some(token), "dp1.log").start().await;
    // The node serves a config before it has stored it; its ACK follows the store, so the control
    // plane's `in_sync` says the last-known-good files exist.
    wait_version(&dp.status, cp_version(&cp).await).await;
    wait_sync_status(&cp, "in_sync").await;
    // Everything the node stores is owner-only, and so is the control plane's data dir.
    let data = disk.path().join("dp");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("lkg")), 0o700);
    assert_eq!(mode(&data.join("lkg/snapshot")), 0o600);
    assert_eq!(mode(&data.join("identity/node.key")), 0o600);
    assert_eq!(mode(&dir.path().join("cp")), 0o700);

    dp.proc.signal("TERM");
    assert_eq!(dp.proc.wait_exit(PATIENCE).await, Some(0));
    disk.set_read_only(true);
    let dp = launch(None, "dp2.log").start().await;
    // It serves the stored config at once, then keeps what the control plane sends in memory.
    assert_eq!(status_code(&format!("{}/a", dp.proxy)).await, 200);
    post(&cp.admin, "/services/echo/routes", json!({"paths": ["/b"]})).await;
    wait_version(&dp.status, cp_version(&cp).await).await;
    assert_eq!(status_code(&format!("{}/b", dp.proxy)).await, 200);
    let node = wait_sync_status(&cp, "applied_not_persisted").await;
    assert!(node["sync_status_reason"]
        .as_str()
        .unwrap()
        .contains("Read-only file system"));
    disk.set_read_only(false);
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_out_of_file_descriptors_backs_off_and_keeps_serving_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let (cp, token) = cluster(dir.path(), &up).await;
    let dp = DpLaunch {
        data_dir: dir.path().join("dp"),
        control_plane: &cp.cluster,
        token: Some(&token),
        log: dir.path().join("dp.log"),
        wrapper: vec!["prlimit", "--nofile=96:96"],
    }
    .start()
    .await;
    wait_version(&dp.status, cp_version(&cp).await).await;
    // One kept-alive connection to the proxy and one to the status listener, opened beforehand.
    let kept = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let get = |url: String| {
        let kept = kept.clone();
        async move { kept.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get(format!("{}/a", dp.proxy)).await.unwrap(), 200);
    assert_eq!(get(format!("{}/status", dp.status)).await.unwrap(), 200);

    // Exhaust the node's descriptors with idle connections the kernel completes on its behalf.
    let proxy_addr = dp.proxy.trim_start_matches("http://").to_string();
    // The kernel completes connections up to the listen backlog beyond what the node can accept; once the
    // backlog is full too, a connection attempt goes unanswered, and that is enough.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let attempt = tokio::net::TcpStream::connect(&proxy_addr);
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(stream)) => idle.push(stream),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    assert!(idle.len() > 96, "only {} connections were made", idle.len());
    let metrics_url = format!("{}/metrics", dp.status);
    eventually(PATIENCE, "descriptor errors counted", || async {
        let text = kept
            .get(&metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let n = metric(
            &text,
            "portcullis_accept_errors_total",
            &[("listener", "proxy"), ("kind", "descriptors")],
        );
        (n > 0.0).then_some(())
    })
    .await;
    // Backing off, the accept loop costs little CPU (a spinning one takes a whole core).
    let before = cpu_seconds(dp.proc.pid());
    let window = Duration::from_secs(1);
    tokio::time::sleep(window).await;
    let used = cpu_seconds(dp.proc.pid()) - before;
    assert!(
        used < 0.3,
        "{used:.2} CPU seconds in {window:?} while out of descriptors"
    );
    // The connection opened beforehand is still served.
    assert_eq!(get(format!("{}/a", dp.proxy)).await.unwrap(), 200);

    // Descriptors freed: new connections are accepted again.
    drop(idle);
    eventually(PATIENCE, "new connections accepted", || async {
        let r = client().get(format!("{}/a", dp.proxy)).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_keeps_serving_and_catches_up_when_the_path_heals() {
    let dir = tempfile::tempdir().unwrap();
    let up = EchoUpstream::start().await;
    let (cp, token) = cluster(dir.path(), &up).await;
    let relay = Relay::start(cp.cluster.parse().unwrap()).await;
    let relay_addr = relay.addr.to_string();
    let dp = DpLaunch {
        data_dir: dir.path().join("dp"),
        control_plane: &relay_addr,
        token: Some(&token),
        log: dir.path().join("dp.log"),
        wrapper: Vec::new(),
    }
    .start()
    .await;
    wait_version(&dp.status, cp_version(&cp).await).await;
    wait_sync_status(&cp, "in_sync").await;

    relay.set_cut(true);
    // The control plane sees the node go silent (heartbeat timeout 1.5 s) ...
    eventually(PATIENCE, "node shown disconnected", || async {
        let nodes = get_json(&format!("{}/clustering/data-planes", cp.admin)).await;
        (nodes["data"][0]["status"] == "disconnected").then_some(())
    })
    .await;
    // ... while clients keep being served, and a write made now waits for the path.
    post(&cp.admin, "/services/echo/routes", json!({"paths": ["/b"]})).await;
    let during = cp_version(&cp).await;
    for _ in 0..200 {
        assert_eq!(status_code(&format!("{}/a", dp.proxy)).await, 200);
    }
    assert_eq!(status_code(&format!("{}/b", dp.proxy)).await, 404);
    assert!(dp_version(&dp.status).await < during);

    relay.set_cut(false);
    wait_version(&dp.status, during).await;
    assert_eq!(status_code(&format!("{}/b", dp.proxy)).await, 200);
    let node = wait_sync_status(&cp, "in_sync").await;
    assert_eq!(node["status"], "connected");
}

/// Peak resident memory of a process, from `/proc/<pid>/status`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_invalid_declarative_document_costs_memory_in_proportion_to_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let cp = start_cp(dir.path(), "127.0.0.1:0", "cp.log").await;
    let before = peak_rss_kib(cp.proc.pid());
    // 2 MiB of tiny invalid services: 260,000 entities, two errors each.
    let n = 2 * 1024 * 1024 / 8;
    let doc = format!(
        "{{\"_format_version\":\"3.0\",\"services\":[{}]}}",
        vec!["{\"x\":1}"; n].join(",")
    );
    let r = client()
        .post(format!("{}/config", cp.admin))
        .header("content-type", "application/json")
        .body(doc)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["omitted_errors"], 2 * n - 100);
    // A tree of the whole body and every error kept would take several hundred MiB here.
    let grown = peak_rss_kib(cp.proc.pid()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "peak RSS grew by {grown} KiB for a 2 MiB body"
    );
}
