//! Kong 3.x consumer groups: `/consumer_groups` with Kong's membership endpoints from both sides and
//! their messages, the cascade when a Consumer or a group goes, the declarative round trip; on the node,
//! `acl`'s `include_consumer_groups`, `consumer_groups_claim` on `openid-connect` and
//! `oauth2-introspection`, and `rate-limiting` by consumer group, with membership changes synced.

use reqwest::Method;
use serde_json::{json, Value};
use tests::ControlPlane;

use super::acl::Introspected;
use super::openid_connect::{env_with, get, Env};
use super::rate_limiting::clear_of_minute_end;

async fn call(cp: &ControlPlane, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    cp.call(method, path, body).await.unwrap()
}

/// The usernames a list of Consumers holds, in order.
fn usernames(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_have_kong_s_endpoints_and_messages() {
    let cp = ControlPlane::start().await;
    for name in ["alice", "bob", "carol"] {
        cp.post("/consumers", json!({ "username": name })).await;
    }
    let gold = cp
        .post(
            "/consumer_groups",
            json!({"name": "gold", "tags": ["tier"]}),
        )
        .await;
    let gold_id = gold["id"].as_str().unwrap().to_string();
    let mut keys: Vec<&String> = gold.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "id", "name", "tags", "updated_at"]);
    cp.post("/consumer_groups", json!({"name": "silver"})).await;
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups",
        Some(json!({"name": "gold"})),
    )
    .await;
    assert_eq!(
        (s, v["name"].as_str()),
        (409, Some("unique constraint violation")),
        "{v}"
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups",
        Some(json!({"name": "a b"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["name"].is_string(), "{v}");
    let (s, v) = call(&cp, Method::POST, "/consumer_groups", Some(json!({}))).await;
    assert_eq!(
        (s, &v["fields"]["name"]),
        (400, &json!("required field missing"))
    );

    // Consumers join from the group's side (one name, or a list) and from the Consumer's side.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups/gold/consumers",
        Some(json!({"consumer": "alice"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (
            v["consumer_group"]["name"].as_str(),
            usernames(&v["consumers"])
        ),
        (Some("gold"), vec!["alice"])
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups/gold/consumers",
        Some(json!({"consumer": ["bob", "nobody"]})),
    )
    .await;
    assert_eq!(
        (s, v),
        (404, json!({"message": "Consumer 'nobody' not found"}))
    );
    assert_eq!(
        usernames(&cp.get("/consumer_groups/gold/consumers").await.unwrap()["consumers"]),
        ["alice"],
        "all or none: bob did not join"
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups/gold/consumers",
        Some(json!({"consumer": "alice"})),
    )
    .await;
    let conflict = format!("Consumer 'alice' already in group '{gold_id}'");
    assert_eq!((s, v), (409, json!({ "message": conflict })));
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumer_groups/gold/consumers",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, v), (400, json!({"message": "must provide consumer"})));
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumers/bob/consumer_groups",
        Some(json!({"group": ["gold", "silver"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (
            v["consumer"]["username"].as_str(),
            names(&v["consumer_groups"])
        ),
        (Some("bob"), vec!["gold", "silver"])
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumers/carol/consumer_groups",
        Some(json!({"group": "bronze"})),
    )
    .await;
    assert_eq!(
        (s, v),
        (404, json!({"message": "Group 'bronze' not found"}))
    );
    let (s, v) = call(
        &cp,
        Method::POST,
        "/consumers/bob/consumer_groups",
        Some(json!({"group": "gold"})),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            409,
            json!({"message": "Consumer 'bob' already in group 'gold'"})
        )
    );

    // Reads from both sides, and the group with its Consumers (Kong's shape).
    let view = cp.get("/consumer_groups/gold").await.unwrap();
    assert_eq!(view["consumer_group"]["id"], gold["id"]);
    assert_eq!(usernames(&view["consumers"]), ["alice", "bob"]);
    assert_eq!(
        names(&cp.get("/consumers/bob/consumer_groups").await.unwrap()["consumer_groups"]),
        ["gold", "silver"]
    );
    assert_eq!(
        cp.get("/consumer_groups/gold/consumers/bob").await.unwrap()["consumer"]["username"],
        "bob"
    );
    assert_eq!(
        cp.get(&format!("/consumers/alice/consumer_groups/{gold_id}"))
            .await
            .unwrap()["consumer_group"]["name"],
        "gold"
    );
    let (s, v) = call(
        &cp,
        Method::GET,
        "/consumer_groups/silver/consumers/alice",
        None,
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not found in Group"),
        "{v}"
    );
    assert_eq!(
        call(&cp, Method::GET, "/consumer_groups/bronze", None)
            .await
            .0,
        404
    );
    // Paging and tags as for every entity; memberships have no endpoint of their own.
    let page = cp.get("/consumer_groups?size=1").await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert!(page["offset"].is_string(), "{page}");
    assert_eq!(
        names(&cp.get("/consumer_groups?tags=tier").await.unwrap()["data"]),
        ["gold"]
    );
    assert_eq!(
        call(&cp, Method::GET, "/consumer_group_consumers", None)
            .await
            .0,
        404
    );
    assert!(cp
        .get("/schemas/consumer_groups")
        .await
        .unwrap()
        .to_string()
        .contains("name"));

    // Leaving: one membership from either side, every Consumer of a group, every group of a Consumer.
    let (s, _) = call(
        &cp,
        Method::DELETE,
        "/consumers/bob/consumer_groups/silver",
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = call(
        &cp,
        Method::DELETE,
        "/consumers/bob/consumer_groups/silver",
        None,
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, _) = call(
        &cp,
        Method::DELETE,
        "/consumer_groups/gold/consumers/alice",
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(&cp, Method::DELETE, "/consumer_groups/gold/consumers", None).await;
    assert_eq!(s, 204);
    assert_eq!(
        cp.get("/consumer_groups/gold/consumers").await.unwrap(),
        json!({"consumers": []})
    );
    let (s, v) = call(
        &cp,
        Method::DELETE,
        "/consumers/carol/consumer_groups",
        None,
    )
    .await;
    assert_eq!(
        (
            s,
            v["message"].as_str().map(|m| m.ends_with("not in group"))
        ),
        (404, Some(true))
    );

    // Memberships go with their Consumer or their group.
    cp.post(
        "/consumers/carol/consumer_groups",
        json!({"group": ["gold", "silver"]}),
    )
    .await;
    cp.post(
        "/consumer_groups/silver/consumers",
        json!({"consumer": "alice"}),
    )
    .await;
    call(&cp, Method::DELETE, "/consumers/carol", None).await;
    assert_eq!(
        cp.get("/consumer_groups/gold/consumers").await.unwrap(),
        json!({"consumers": []})
    );
    call(&cp, Method::DELETE, "/consumer_groups/silver", None).await;
    assert_eq!(
        cp.get("/consumers/alice/consumer_groups").await.unwrap(),
        json!({"consumer_groups": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_round_trip_through_the_declarative_config() {
    let cp = ControlPlane::start().await;
    let doc = json!({
        "_format_version": "3.0",
        "consumers": [{"username": "alice"}, {"username": "bob"}],
        "consumer_groups": [
            {"name": "gold", "tags": ["tier"], "consumers": [{"username": "alice"}, "bob"]},
            {"name": "silver"},
        ],
        "consumer_group_consumers": [{"consumer_group": "silver", "consumer": {"username": "bob"}}],
    });
    let (s, v) = call(&cp, Method::POST, "/config", Some(doc.clone())).await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let view = || async {
        (
            cp.get("/consumer_groups/gold").await.unwrap(),
            cp.get("/consumers/bob/consumer_groups").await.unwrap(),
        )
    };
    let before = view().await;
    assert_eq!(usernames(&before.0["consumers"]), ["alice", "bob"]);
    assert_eq!(names(&before.1["consumer_groups"]), ["gold", "silver"]);

    let exported = cp.get("/config?format=json").await.unwrap();
    let gold = exported["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "gold")
        .unwrap();
    assert_eq!(
        gold["consumers"],
        json!([{"username": "alice"}, {"username": "bob"}]),
        "{exported}"
    );
    // The export and the original document imported again keep every id.
    let (s, v) = call(&cp, Method::POST, "/config", Some(exported)).await;
    assert!(s == 200 || s == 201, "{s} {v}");
    assert_eq!(view().await, before);
    call(&cp, Method::POST, "/config", Some(doc)).await;
    assert_eq!(view().await, before);

    // A membership twice, or of a Consumer that is not there, is refused with its path.
    let twice = json!({"_format_version": "3.0", "consumers": [{"username": "carol"}],
        "consumer_groups": [{"name": "g", "consumers": ["carol", "carol"]}]});
    let (s, v) = call(&cp, Method::POST, "/config", Some(twice)).await;
    assert_eq!(s, 400, "{v}");
    let second = v["fields"]["consumer_groups"][0]["consumers"][1]
        .as_str()
        .unwrap_or_default();
    assert!(
        second.starts_with("uniqueness violation: 'consumer_group_consumers' entity with "),
        "{v}"
    );
    let orphan = json!({"_format_version": "3.0", "consumer_groups": [{"name": "g", "consumers": ["nobody"]}]});
    let (s, v) = call(&cp, Method::POST, "/config", Some(orphan)).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        !v["fields"]["consumer_groups"][0]["consumers"][0].is_null(),
        "{v}"
    );
}

/// Applies an Admin API write and waits until the node has it.
async fn write(e: &Env, method: Method, path: &str, body: Option<Value>) -> Value {
    let (s, v) = e.cp.call(method.clone(), path, body).await.unwrap();
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    e.dp.wait_version(e.cp.version().await).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_counts_consumer_groups_and_rate_limiting_counts_per_group() {
    let e = env_with(
        json!({"auth_methods": ["bearer"], "consumer_claim": ["sub"], "consumer_by": ["username"]}),
    )
    .await;
    for name in ["alice", "bob", "carol", "dave"] {
        e.cp.post("/consumers", json!({ "username": name })).await;
    }
    e.cp.post("/consumer_groups", json!({"name": "gold"})).await;
    e.cp.post(
        "/consumer_groups/gold/consumers",
        json!({"consumer": ["alice", "carol"]}),
    )
    .await;
    e.cp.post("/consumers/alice/acls", json!({"group": "staff"}))
        .await;
    let acl = write(
        &e,
        Method::POST,
        "/services/svc/plugins",
        Some(json!({"name": "acl", "config": {"allow": ["gold"]}})),
    )
    .await;
    let acl_path = format!("/plugins/{}", acl["id"].as_str().unwrap());
    let token = |who: &str| e.idp.issue(who, "app", "openid", json!({}));
    let (alice, bob, carol, dave) = (token("alice"), token("bob"), token("carol"), token("dave"));
    let status = |t: &String| {
        let t = t.clone();
        let dp = &e.dp;
        async move { get(dp, |r| r.bearer_auth(t)).await }
    };

    // Without include_consumer_groups a consumer group is not an ACL group.
    assert_eq!(status(&alice).await.0, 403);
    write(
        &e,
        Method::PATCH,
        &acl_path,
        Some(json!({"config": {"include_consumer_groups": true}})),
    )
    .await;
    let (s, _, body) = status(&alice).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["headers"]["x-consumer-groups"], "staff, gold",
        "ACL groups, then consumer groups"
    );
    let (s, _, body) = status(&carol).await;
    assert_eq!(
        (s, &body["headers"]["x-consumer-groups"]),
        (200, &json!("gold"))
    );
    assert_eq!(status(&bob).await.0, 403);
    // Joining and leaving reach the node.
    write(
        &e,
        Method::POST,
        "/consumers/bob/consumer_groups",
        Some(json!({"group": "gold"})),
    )
    .await;
    assert_eq!(status(&bob).await.0, 200);
    write(
        &e,
        Method::DELETE,
        "/consumer_groups/gold/consumers/bob",
        None,
    )
    .await;
    assert_eq!(status(&bob).await.0, 403);
    write(&e, Method::DELETE, &acl_path, None).await;

    // rate-limiting by consumer group: gold's members share one count; a Consumer in no group is
    // counted by address.
    let limit = json!({"name": "rate-limiting", "config": {"minute": 2, "limit_by": "consumer-group", "policy": "local"}});
    write(&e, Method::POST, "/services/svc/plugins", Some(limit)).await;
    clear_of_minute_end(std::time::Duration::from_secs(5)).await;
    let (s, h, _) = status(&alice).await;
    assert_eq!(
        (s, h["x-ratelimit-remaining-minute"].to_str().unwrap()),
        (200, "1")
    );
    let (s, h, _) = status(&carol).await;
    assert_eq!(
        (s, h["x-ratelimit-remaining-minute"].to_str().unwrap()),
        (200, "0")
    );
    let (s, _, body) = status(&alice).await;
    assert_eq!(
        (s, body),
        (429, json!({"message": "API rate limit exceeded"}))
    );
    let (s, h, _) = status(&dave).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-ratelimit-limit-minute"].to_str().unwrap(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_s_claim_names_the_request_s_consumer_groups() {
    let e = env_with(
        json!({"auth_methods": ["bearer"], "consumer_groups_claim": ["realm_access", "groups"]}),
    )
    .await;
    e.cp.post("/consumer_groups", json!({"name": "gold"})).await;
    let oidc = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    write(
        &e,
        Method::POST,
        "/services/svc/plugins",
        Some(
            json!({"name": "acl", "config": {"allow": ["gold"], "include_consumer_groups": true}}),
        ),
    )
    .await;
    let with = |groups: Value| {
        e.idp.issue(
            "dana",
            "app",
            "openid",
            json!({"realm_access": {"groups": groups}}),
        )
    };
    let call = |t: String| {
        let dp = &e.dp;
        async move { get(dp, |r| r.bearer_auth(t)).await }
    };

    // Only names of consumer groups count; the request has no Consumer.
    let (s, _, body) = call(with(json!(["gold", "unknown"]))).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-consumer-groups"], "gold");
    assert!(body["headers"]["x-consumer-username"].is_null(), "{body}");
    // A claim naming no consumer group is refused by openid-connect itself...
    let (s, _, body) = call(with(json!("unknown other"))).await;
    assert_eq!((s, body), (403, json!({"message": "Forbidden"})));
    // ...unless that is optional: then acl finds no group for a known credential.
    let optional = json!({"config": {"consumer_groups_optional": true}});
    write(
        &e,
        Method::PATCH,
        &format!("/plugins/{oidc}"),
        Some(optional),
    )
    .await;
    let (s, _, body) = call(with(json!(["unknown"]))).await;
    assert_eq!(
        (s, body),
        (403, json!({"message": "You cannot consume this service"}))
    );
    // A group made later is recognised once the node has it.
    write(
        &e,
        Method::POST,
        "/consumer_groups",
        Some(json!({"name": "unknown"})),
    )
    .await;
    write(
        &e,
        Method::PATCH,
        "/consumer_groups/unknown",
        Some(json!({"name": "later"})),
    )
    .await;
    assert_eq!(
        call(with(json!(["later"]))).await.0,
        403,
        "allowed is gold only"
    );
    assert_eq!(call(with(json!(["later", "gold"]))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_results_name_consumer_groups() {
    let e = Introspected::start(json!({"consumer_groups_claim": ["groups"]}), Value::Null).await;
    let cp = &e.cp;
    cp.post("/consumer_groups", json!({"name": "partners"}))
        .await;
    let acl =
        json!({"name": "acl", "config": {"allow": ["partners"], "include_consumer_groups": true}});
    cp.post("/services/svc/plugins", acl).await;
    e.dp.wait_version(cp.version().await).await;
    let exp = platform::unix_now() + 600;
    e.idp.add_token(
        "in",
        json!({"active": true, "exp": exp, "groups": ["partners"]}),
    );
    e.idp.add_token(
        "out",
        json!({"active": true, "exp": exp, "groups": "staff"}),
    );
    let (s, _, body) = e.call("in").await;
    assert_eq!(
        (s, &body["headers"]["x-consumer-groups"]),
        (200, &json!("partners")),
        "{body}"
    );
    let (s, challenge, body) = e.call("out").await;
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    assert!(challenge.unwrap().contains("error=\"insufficient_scope\""));
}
