//! ACLs through the Admin API with Kong's shapes: `/acls` and `/consumers/{c}/acls/{id or group}`,
//! paging, tags, the group once per Consumer, references by username, the cascade when the Consumer goes,
//! and the declarative round trip with `acls` nested in their Consumers.

use reqwest::Method;
use serde_json::{json, Value};
use tests::ControlPlane;

async fn call(cp: &ControlPlane, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    cp.call(method, path, body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_have_kong_s_endpoints_paging_tags_and_uniqueness() {
    let cp = ControlPlane::start().await;
    let alice = cp.post("/consumers", json!({"username": "alice"})).await;
    cp.post("/consumers", json!({"username": "bob"})).await;
    let alice_id = alice["id"].as_str().unwrap().to_string();

    let made = cp
        .post(
            "/consumers/alice/acls",
            json!({"group": "admins", "tags": ["team-a"]}),
        )
        .await;
    let mut keys: Vec<&String> = made.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["consumer", "created_at", "group", "id", "tags"],
        "{made}"
    );
    assert_eq!(made["consumer"], json!({"id": alice_id}));
    let id = made["id"].as_str().unwrap().to_string();

    // A group once per Consumer; the same group for another Consumer is fine.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumers/alice/acls",
        Some(json!({"group": "admins"})),
    )
    .await;
    assert_eq!(
        (s, v["name"].as_str()),
        (409, Some("unique constraint violation")),
        "{v}"
    );
    let bob_admins = cp
        .post(
            "/acls",
            json!({"group": "admins", "consumer": {"username": "bob"}}),
        )
        .await;
    assert_ne!(bob_admins["id"], made["id"]);

    // Read by id or, under the Consumer, by group; not under another Consumer.
    assert_eq!(
        cp.get(&format!("/acls/{id}")).await.unwrap()["group"],
        "admins"
    );
    assert_eq!(
        cp.get("/consumers/alice/acls/admins").await.unwrap()["id"],
        made["id"]
    );
    assert_eq!(
        cp.get(&format!("/consumers/{alice_id}/acls/{id}"))
            .await
            .unwrap()["id"],
        made["id"]
    );
    assert_eq!(
        call(&cp, Method::GET, &format!("/consumers/bob/acls/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&cp, Method::GET, "/consumers/alice/acls/nobody", None)
            .await
            .0,
        404
    );

    // PUT by group creates the membership, then replaces it in place.
    let (s, put) = call(
        &cp,
        Method::PUT,
        "/consumers/alice/acls/ops",
        Some(json!({"tags": ["team-a"]})),
    )
    .await;
    assert_eq!((s, &put["group"]), (200, &json!("ops")), "{put}");
    let (_, again) = call(
        &cp,
        Method::PUT,
        "/consumers/alice/acls/ops",
        Some(json!({})),
    )
    .await;
    assert_eq!(again["id"], put["id"]);
    let (s, patched) = call(
        &cp,
        Method::PATCH,
        "/consumers/alice/acls/admins",
        Some(json!({"tags": ["team-b"]})),
    )
    .await;
    assert_eq!((s, &patched["tags"]), (200, &json!(["team-b"])));

    // Paging over every ACL, filtered by tag, and the Consumer's own list.
    for g in ["g1", "g2", "g3"] {
        cp.post("/consumers/bob/acls", json!({ "group": g })).await;
    }
    let mut seen = Vec::new();
    let mut page = cp.get("/acls?size=2").await.unwrap();
    loop {
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|a| a["id"].clone()));
        match page["next"].as_str() {
            Some(next) => page = cp.get(next).await.unwrap(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "every ACL once across pages");
    // The second PUT replaced ops's tags; the PATCH gave admins its own.
    assert_eq!(
        cp.get("/acls?tags=team-a").await.unwrap()["data"],
        json!([])
    );
    let tagged = cp.get("/acls?tags=team-b").await.unwrap();
    assert_eq!(tagged["data"].as_array().unwrap().len(), 1);
    assert_eq!(tagged["data"][0]["group"], "admins");
    let bobs = cp.get("/consumers/bob/acls").await.unwrap();
    assert_eq!(bobs["data"].as_array().unwrap().len(), 4);

    // Errors name the field.
    let (s, v) = call(&cp, Method::POST, "/acls", Some(json!({"group": "x"}))).await;
    assert_eq!(
        (s, &v["fields"]["consumer"]),
        (400, &json!("required field missing")),
        "{v}"
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumers/alice/acls",
        Some(json!({"group": ""})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["group"].is_string(), "{v}");
    let (s, _) = call(
        &cp,
        Method::POST,
        "/consumers/nobody/acls",
        Some(json!({"group": "x"})),
    )
    .await;
    assert_eq!(s, 404);

    // The Consumer takes its ACLs with it.
    assert_eq!(
        call(&cp, Method::DELETE, "/consumers/alice", None).await.0,
        204
    );
    assert_eq!(
        call(&cp, Method::GET, &format!("/acls/{id}"), None).await.0,
        404
    );
    assert_eq!(
        cp.get("/acls").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_round_trip_through_the_declarative_config() {
    let cp = ControlPlane::start().await;
    let doc = json!({
        "_format_version": "3.0",
        "consumers": [
            {"username": "alice", "acls": [{"group": "admins"}, {"group": "ops", "tags": ["t"]}]},
            {"username": "bob"},
        ],
        "acls": [{"consumer": "bob", "group": "interns"}],
    });
    let (s, v) = call(&cp, Method::POST, "/config", Some(doc.clone())).await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let before = cp.get("/acls").await.unwrap()["data"].clone();
    assert_eq!(before.as_array().unwrap().len(), 3);

    let exported = cp.get("/config?format=json").await.unwrap();
    let alice = exported["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["username"] == "alice")
        .unwrap();
    let mut groups: Vec<&str> = alice["acls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["group"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, ["admins", "ops"]);

    // The export imported again changes nothing: same ids, same memberships.
    let (s, v) = call(&cp, Method::POST, "/config", Some(exported)).await;
    assert!(s == 200 || s == 201, "{s} {v}");
    assert_eq!(cp.get("/acls").await.unwrap()["data"], before);
    // The original document without ids keeps the ids too (a membership's natural key).
    call(&cp, Method::POST, "/config", Some(doc)).await;
    assert_eq!(cp.get("/acls").await.unwrap()["data"], before);

    // A membership twice, or of a Consumer that is not there, is refused with its path.
    let twice = json!({"_format_version": "3.0", "consumers": [
        {"username": "carol", "acls": [{"group": "a"}, {"group": "a"}]},
    ]});
    let (s, v) = call(&cp, Method::POST, "/config", Some(twice)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("consumers"), "{v}");
    let orphan = json!({"_format_version": "3.0", "acls": [{"consumer": "nobody", "group": "a"}]});
    let (s, v) = call(&cp, Method::POST, "/config", Some(orphan)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("acls"), "{v}");
}
