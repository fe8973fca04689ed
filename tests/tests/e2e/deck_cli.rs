//! `control-plane config` (decK's dump, diff, sync, validate) as a user runs it: the real binary
//! against a running control plane that requires an admin token. The round trip: dump → edit → diff
//! shows exactly the edit → sync → dump again equals the edited file; select tags leave other entities
//! alone; Kong's how-to decK file loads unchanged.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tests::process::bin;
use tests::{ControlPlane, CpOptions};

const TOKEN: &str = "deck-cli-admin-token-77c1";

/// Runs `control-plane config <args>`; exit status and standard output (standard error on failure).
fn config(cp: &ControlPlane, token_file: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("control-plane"))
        .arg("config")
        .args(["--admin-url", &cp.admin_url])
        .arg("--admin-token-file")
        .arg(token_file)
        .args(args)
        .output()
        .expect("run control-plane config");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(TOKEN), "the token is never printed: {text}");
    (out.status.code().unwrap_or(-1), text)
}

fn read_yaml(path: &Path) -> Value {
    serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A document without what the server assigns (ids, `created_at`) and without list order, for comparing
/// what two files configure.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "created_at"))
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        other => other.clone(),
    }
}

async fn start() -> (ControlPlane, tempfile::TempDir, std::path::PathBuf) {
    let cp = ControlPlane::start_with(CpOptions {
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    (cp, dir, token_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_edit_diff_sync_dump_is_a_round_trip() {
    let (cp, dir, token) = start().await;
    cp.post(
        "/services",
        json!({"name": "billing", "url": "http://billing.internal:8080"}),
    )
    .await;
    cp.post(
        "/services/billing/routes",
        json!({"name": "pay", "paths": ["/pay"]}),
    )
    .await;
    cp.post(
        "/services/billing/routes",
        json!({"name": "refund", "paths": ["/refund"]}),
    )
    .await;
    cp.post("/consumers", json!({"username": "alice"})).await;
    cp.post(
        "/services/billing/plugins",
        json!({"name": "oauth2-introspection", "config": {
            "introspection_url": "https://idp.example.test/introspect",
            "authorization_value": "Basic c2VjcmV0LXZhbHVl",
        }}),
    )
    .await;

    let dumped = dir.path().join("kong.yaml");
    let (status, out) = config(&cp, &token, &["dump", "-o", dumped.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    let mut doc = read_yaml(&dumped);
    assert_eq!(doc["_format_version"], "3.0");
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    // A secret is dumped redacted; validating offline says so without failing.
    let (status, out) = config(&cp, &token, &["validate", dumped.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("valid") && out.contains("note:"), "{out}");

    // The edit: another port, one Route fewer, one Consumer more.
    doc["services"][0]["port"] = json!(9090);
    let routes = doc["services"][0]["routes"].as_array_mut().unwrap();
    routes.retain(|r| r["name"] != "refund");
    doc["consumers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"username": "bob"}));
    let edited = dir.path().join("edited.yaml");
    std::fs::write(&edited, serde_yaml::to_string(&doc).unwrap()).unwrap();

    let (status, out) = config(
        &cp,
        &token,
        &["diff", edited.to_str().unwrap(), "--non-zero-exit-code"],
    );
    assert_eq!(status, 2, "changes make --non-zero-exit-code exit 2: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "deleting route refund",
            "updating service billing (port)",
            "creating consumer bob",
            "Summary:",
            "  Created: 1",
            "  Updated: 1",
            "  Deleted: 1",
        ],
        "{out}"
    );
    let before = cp.version().await;
    let (status, out) = config(&cp, &token, &["sync", edited.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(cp.version().await, before + 1, "one atomic replacement");
    // The stored secret was kept from the redacted file.
    let plugin = &cp.get("/plugins").await.unwrap()["data"][0];
    assert_eq!(plugin["config"]["authorization_value"], "[redacted]");

    let again = dir.path().join("again.yaml");
    let (status, out) = config(&cp, &token, &["dump", "-o", again.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(normalized(&read_yaml(&again)), normalized(&doc));
    let (status, out) = config(
        &cp,
        &token,
        &["diff", edited.to_str().unwrap(), "--non-zero-exit-code"],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Created: 0") && out.contains("Updated: 0") && out.contains("Deleted: 0"));
    let (status, _) = config(&cp, &token, &["sync", edited.to_str().unwrap()]);
    assert_eq!(status, 0);
    assert_eq!(
        cp.version().await,
        before + 1,
        "nothing to change, nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_each_error_and_select_tags_leave_other_entities_alone() {
    let (cp, dir, token) = start().await;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "_format_version: \"3.0\"\nservices:\n  - name: a\n    host: a.internal\n    port: x\n",
    )
    .unwrap();
    let (status, out) = config(&cp, &token, &["validate", bad.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("invalid") && out.contains("services.1.port"),
        "{out}"
    );
    // Online: each entity through the control plane's schemas, named by its kind and name…
    let (status, out) = config(
        &cp,
        &token,
        &["validate", "--online", bad.to_str().unwrap()],
    );
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("service a: schema violation (port: expected an integer)"),
        "{out}"
    );
    // …then the whole file as an import takes it: a Route naming a Service the file does not have.
    let dangling = dir.path().join("dangling.yaml");
    std::fs::write(
        &dangling,
        "_format_version: \"3.0\"\nroutes:\n  - name: r\n    paths: [/r]\n    service: {name: ghost}\n",
    )
    .unwrap();
    let (status, out) = config(
        &cp,
        &token,
        &["validate", "--online", dangling.to_str().unwrap()],
    );
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("ghost"), "{out}");

    // Kong's how-to file, unchanged.
    let how_to = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kong-how-to.yaml");
    let (status, out) = config(
        &cp,
        &token,
        &["validate", "--online", how_to.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{out}");
    let (status, out) = config(&cp, &token, &["sync", how_to.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        cp.get("/services/example-service").await.unwrap()["port"],
        80
    );

    // Team A manages one Service through its file; the how-to's entities are not its to touch.
    let team = dir.path().join("team-a.yaml");
    std::fs::write(
        &team,
        "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: team-a-svc\n    url: http://a.internal\n    routes:\n      - name: team-a-route\n        paths: [/a]\n",
    )
    .unwrap();
    let (status, out) = config(&cp, &token, &["diff", team.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("Created: 2") && out.contains("Deleted: 0"),
        "{out}"
    );
    let (status, out) = config(&cp, &token, &["sync", team.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    let svc = cp.get("/services/team-a-svc").await.unwrap();
    assert_eq!(svc["tags"], json!(["team-a"]));
    assert_eq!(
        cp.get("/services/example-service").await.unwrap()["name"],
        "example-service"
    );
    assert_eq!(cp.get("/consumers/alex").await.unwrap()["username"], "alex");
    // Dump by tag: only Team A's entities, flattened, with the tag recorded.
    let mine = dir.path().join("mine.json");
    let (status, out) = config(
        &cp,
        &token,
        &[
            "dump",
            "--select-tag",
            "team-a",
            "-o",
            mine.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 0, "{out}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&mine).unwrap()).unwrap();
    assert_eq!(doc["_info"]["select_tags"], json!(["team-a"]));
    assert_eq!(doc["services"].as_array().unwrap().len(), 1);
    assert_eq!(doc["routes"][0]["name"], "team-a-route");
    assert!(
        doc.get("consumers")
            .is_none_or(|c| c.as_array().unwrap().is_empty()),
        "{doc}"
    );
    // Without its Route, Team A's file deletes that Route only.
    std::fs::write(
        &team,
        "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: team-a-svc\n    url: http://a.internal\n",
    )
    .unwrap();
    let (status, out) = config(&cp, &token, &["sync", team.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out.lines().next(),
        Some("deleting route team-a-route"),
        "{out}"
    );
    assert_eq!(
        cp.get("/routes/example-route").await.unwrap()["name"],
        "example-route"
    );
    // A wrong token is refused with the control plane's answer, and nothing is printed of the token.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-admin-token-at-all").unwrap();
    let (status, out) = config(&cp, &wrong, &["dump", "-o", "-"]);
    assert_eq!(status, 1);
    assert!(out.contains("401"), "{out}");
}
