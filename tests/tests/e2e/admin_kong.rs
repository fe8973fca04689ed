//! The Admin API against Kong's documented behaviour, case by case (Kong's `spec/02-integration/04-admin_api/`
//! and its Admin API reference): PUT by name keeps the name from the path, a PUT by username updates the
//! one Consumer it names, and `GET /consumers?custom_id=` finds the one Consumer with that custom_id.

use reqwest::Method;
use serde_json::{json, Value};
use tests::ControlPlane;

async fn put(cp: &ControlPlane, path: &str, body: Value) -> Value {
    let (status, v) = cp.call(Method::PUT, path, Some(body)).await.unwrap();
    assert_eq!(status, 200, "PUT {path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_by_name_keeps_the_name_from_the_path() {
    let cp = ControlPlane::start().await;
    let first = put(
        &cp,
        "/services/billing",
        json!({"url": "http://a.internal:1"}),
    )
    .await;
    assert_eq!(first["name"], "billing");
    let second = put(
        &cp,
        "/services/billing",
        json!({"url": "http://b.internal:2"}),
    )
    .await;
    assert_eq!(second["name"], "billing", "{second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["host"], "b.internal");
    let route = put(&cp, "/routes/checkout", json!({"paths": ["/checkout"]})).await;
    let again = put(&cp, "/routes/checkout", json!({"paths": ["/pay"]})).await;
    assert_eq!(
        (&again["name"], &again["id"]),
        (&json!("checkout"), &route["id"])
    );
    // By id, the body decides the name, as Kong's PUT by primary key.
    let id = first["id"].as_str().unwrap();
    let by_id = put(
        &cp,
        &format!("/services/{id}"),
        json!({"url": "http://c.internal:3"}),
    )
    .await;
    assert_eq!(by_id["name"], Value::Null);
    let listed = cp.get("/services").await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_by_username_updates_the_same_consumer() {
    let cp = ControlPlane::start().await;
    let first = put(&cp, "/consumers/alice", json!({"custom_id": "c-1"})).await;
    assert_eq!(first["username"], "alice");
    let second = put(&cp, "/consumers/alice", json!({"custom_id": "c-2"})).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        (&second["username"], &second["custom_id"]),
        (&json!("alice"), &json!("c-2"))
    );
    let listed = cp.get("/consumers").await.unwrap();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_are_found_by_custom_id() {
    let cp = ControlPlane::start().await;
    cp.post(
        "/consumers",
        json!({"username": "alice", "custom_id": "c-1"}),
    )
    .await;
    let bob = cp
        .post("/consumers", json!({"username": "bob", "custom_id": "c-2"}))
        .await;
    let found = cp.get("/consumers?custom_id=c-2").await.unwrap();
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["id"], bob["id"]);
    assert_eq!(found["next"], Value::Null);
    let none = cp.get("/consumers?custom_id=nobody").await.unwrap();
    assert_eq!(none["data"], json!([]));
    let (status, body) = cp
        .call(Method::GET, "/consumers?custom_id=", None)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body["fields"]["custom_id"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_entities_are_reached_through_their_parent_only() {
    let cp = ControlPlane::start().await;
    cp.post(
        "/services",
        json!({"name": "orders", "url": "http://orders.internal:1"}),
    )
    .await;
    cp.post(
        "/services",
        json!({"name": "other", "url": "http://other.internal:1"}),
    )
    .await;
    let route = cp
        .post(
            "/services/orders/routes",
            json!({"name": "list", "paths": ["/orders"]}),
        )
        .await;
    // GET through the right parent, 404 through another.
    let got = cp.get("/services/orders/routes/list").await.unwrap();
    assert_eq!(got["id"], route["id"]);
    let (status, _) = cp
        .call(Method::GET, "/services/other/routes/list", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    // PATCH through the parent.
    let (status, patched) = cp
        .call(
            Method::PATCH,
            "/services/orders/routes/list",
            Some(json!({"paths": ["/o"]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["paths"], json!(["/o"]));
    let (status, _) = cp
        .call(
            Method::PATCH,
            "/services/other/routes/list",
            Some(json!({"paths": ["/x"]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    // PUT creates under the parent, by name.
    let made = put(
        &cp,
        "/services/other/routes/mine",
        json!({"paths": ["/mine"]}),
    )
    .await;
    assert_eq!(made["name"], "mine");
    let other = cp.get("/services/other").await.unwrap();
    assert_eq!(made["service"]["id"], other["id"]);
    // The Route's Service.
    let svc = cp.get("/routes/list/service").await.unwrap();
    assert_eq!(svc["name"], "orders");
    let (status, svc) = cp
        .call(
            Method::PATCH,
            "/routes/list/service",
            Some(json!({"retries": 2})),
        )
        .await
        .unwrap();
    assert_eq!((status, &svc["retries"]), (200, &json!(2)), "{svc}");
    let orphan = cp
        .post("/routes", json!({"name": "orphan", "paths": ["/orphan"]}))
        .await;
    let (status, _) = cp
        .call(
            Method::GET,
            &format!("/routes/{}/service", orphan["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 404, "a Route without a Service");
    // PUT gives a Route without a Service a new one, in one write; DELETE is not how a Service goes.
    let orphan_service = format!("/routes/{}/service", orphan["id"].as_str().unwrap());
    let (status, made) = cp
        .call(
            Method::PUT,
            &orphan_service,
            Some(json!({"url": "http://konghq.test:8080/v1"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, &made["host"], &made["port"]),
        (200, &json!("konghq.test"), &json!(8080)),
        "{made}"
    );
    let route = cp.get("/routes/orphan").await.unwrap();
    assert_eq!(route["service"]["id"], made["id"]);
    let (status, again) = cp
        .call(
            Method::PUT,
            &orphan_service,
            Some(json!({"host": "edited.test"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, &again["id"], &again["host"]),
        (200, &made["id"], &json!("edited.test"))
    );
    let (status, body) = cp
        .call(Method::DELETE, &orphan_service, None)
        .await
        .unwrap();
    assert_eq!(
        (status, body),
        (405, json!({"message": "Method not allowed"}))
    );
    assert_eq!(
        cp.get(&orphan_service).await.unwrap()["id"],
        made["id"],
        "still there"
    );
    let missing = format!("/routes/{}/service", uuid::Uuid::new_v4());
    for method in [Method::DELETE, Method::PUT] {
        let (status, _) = cp
            .call(method, &missing, Some(json!({"host": "x.test"})))
            .await
            .unwrap();
        assert_eq!(status, 404);
    }
    // Plugins under a Route; DELETE through the wrong parent is 404 and leaves it.
    let plugin = cp
        .post(
            "/routes/list/plugins",
            json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://idp.internal/introspect", "authorization_value": "Basic eDp5"}}),
        )
        .await;
    let pid = plugin["id"].as_str().unwrap();
    let (status, _) = cp
        .call(Method::DELETE, &format!("/routes/mine/plugins/{pid}"), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = cp
        .call(Method::DELETE, &format!("/routes/list/plugins/{pid}"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, _) = cp
        .call(Method::GET, &format!("/plugins/{pid}"), None)
        .await
        .unwrap();
    assert_eq!(status, 404, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_endpoints_describe_the_api_as_kong_tools_read_it() {
    let cp = ControlPlane::start().await;
    cp.post(
        "/services",
        json!({"name": "s1", "url": "http://a.internal:1", "tags": ["team-a", "prod"]}),
    )
    .await;
    cp.post(
        "/services/s1/routes",
        json!({"name": "r1", "paths": ["/a"], "tags": ["team-a"]}),
    )
    .await;
    cp.post(
        "/services/s1/plugins",
        json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://idp.internal/introspect", "authorization_value": "Basic eDp5"}}),
    )
    .await;

    let root = cp.get("/").await.unwrap();
    let version = root["version"].as_str().unwrap();
    assert_eq!(
        version.split('.').count(),
        3,
        "a semantic version: {version}"
    );
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{version}"
    );
    assert_eq!(root["edition"], "community");
    assert!(uuid::Uuid::parse_str(root["node_id"].as_str().unwrap()).is_ok());
    assert!(
        root["pids"]["master"].as_u64().is_some_and(|pid| pid > 0),
        "{root}"
    );
    assert!(root["pids"]["workers"].is_array());
    assert!(root["hostname"].is_string());
    assert!(root["plugins"]["available_on_server"]["openid-connect"].is_object());
    assert_eq!(
        root["plugins"]["enabled_in_cluster"],
        json!(["oauth2-introspection"])
    );
    assert!(root["configuration"].is_object());

    let enabled = cp.get("/plugins/enabled").await.unwrap();
    let names = enabled["enabled_plugins"].as_array().unwrap();
    assert!(
        names.contains(&json!("oauth2-introspection")) && names.contains(&json!("openid-connect"))
    );

    let endpoints = cp.get("/endpoints").await.unwrap();
    let list = endpoints["data"].as_array().unwrap();
    for path in [
        "/services/{key}",
        "/routes/{key}/service",
        "/tags/{tag}",
        "/config",
    ] {
        assert!(list.contains(&json!(path)), "{path} in {endpoints}");
    }

    let all = cp.get("/tags").await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
    let team = cp.get("/tags/team-a").await.unwrap();
    let kinds: Vec<&str> = team["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["entity_name"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["routes", "services"]);
    let first = cp.get("/tags?size=2").await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let rest = cp.get(next).await.unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let (status, _) = cp.call(Method::GET, "/tags?size=0", None).await.unwrap();
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_json_body_gets_kongs_exact_message() {
    let cp = ControlPlane::start().await;
    let resp = tests::client()
        .post(format!("{}/services", cp.admin_url))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": "Cannot parse JSON body"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_take_utf8_as_kong_s_and_status_has_kongs_fields() {
    let cp = ControlPlane::start().await;
    let made = cp
        .post(
            "/services",
            json!({"name": "café-über_1.0~x", "url": "http://a.internal:1"}),
        )
        .await;
    assert_eq!(made["name"], "café-über_1.0~x");
    let read = cp.get("/services/caf%C3%A9-%C3%BCber_1.0~x").await.unwrap();
    assert_eq!(read["id"], made["id"]);
    let (status, body) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"name": "two words", "url": "http://a.internal:1"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        body["fields"]["name"],
        "invalid value 'two words': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
    );
    let status = tests::eventually(
        tests::PATIENCE,
        "the configuration to be published",
        || async {
            let st = cp.get("/status").await.unwrap();
            st["configuration_hash"].is_string().then_some(st)
        },
    )
    .await;
    assert_eq!(status["database"]["reachable"], true);
    // Kong's `server` block: this test's client holds one connection and is being answered on it.
    let server = &status["server"];
    for field in [
        "connections_accepted",
        "connections_active",
        "connections_handled",
        "connections_reading",
        "connections_writing",
        "connections_waiting",
        "total_requests",
    ] {
        assert!(server[field].is_u64(), "{field}: {server}");
    }
    assert!(server["total_requests"].as_u64().unwrap() >= 4, "{server}");
    assert_eq!(
        server["connections_writing"], 1,
        "the /status request itself"
    );
    let active = server["connections_active"].as_u64().unwrap();
    assert!(active >= 1, "{server}");
    assert_eq!(
        server["connections_waiting"].as_u64().unwrap() + 1,
        active,
        "{server}"
    );
    let before = server["total_requests"].as_u64().unwrap();
    let after = cp.get("/status").await.unwrap()["server"]["total_requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 1);
}

/// `OPTIONS` and the CORS headers, against Kong's `23-cors_spec.lua`.
async fn options(cp: &ControlPlane, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = reqwest::Client::new().request(Method::OPTIONS, format!("{}{path}", cp.admin_url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_lists_each_paths_methods_and_cors_follows_the_configured_origin() {
    // With an admin token: a preflight carries none, and is still answered.
    let cp = ControlPlane::start_with(tests::CpOptions {
        admin_token: Some("cors-test-admin-token-0123".into()),
        cors_origin: Some("http://admin.api:9100/path/to/any/way".into()),
        ..Default::default()
    })
    .await;
    for (path, allow) in [
        ("/", "GET, HEAD, OPTIONS"),
        ("/routes", "GET, HEAD, OPTIONS, POST"),
        ("/routes/test", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
    ] {
        let r = options(&cp, path, &[]).await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(header(&r, "allow"), Some(allow), "{path}");
        assert_eq!(header(&r, "access-control-allow-methods"), Some(allow));
        assert_eq!(
            header(&r, "access-control-allow-headers"),
            Some("Content-Type")
        );
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("http://admin.api:9100")
        );
    }
    let r = options(
        &cp,
        "/",
        &[
            ("access-control-request-headers", "X-Header-1,X-Header-2"),
            ("origin", "http://example.com"),
        ],
    )
    .await;
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("X-Header-1,X-Header-2")
    );
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://admin.api:9100")
    );
    assert_eq!(options(&cp, "/non-existing", &[]).await.status(), 404);
    // The main request still needs the token; its answer carries the origin, not the preflight headers.
    let denied = reqwest::get(format!("{}/", cp.admin_url)).await.unwrap();
    assert_eq!(denied.status(), 401);
    let ok = reqwest::Client::new()
        .get(format!("{}/", cp.admin_url))
        .bearer_auth("cors-test-admin-token-0123")
        .header("access-control-request-method", "PATCH")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "access-control-allow-methods"), None);
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("http://admin.api:9100")
    );

    // `*`: Kong's default, the request's origin echoed, `*` without one.
    let any = ControlPlane::start_with(tests::CpOptions {
        cors_origin: Some("*".into()),
        ..Default::default()
    })
    .await;
    let r = options(&any, "/", &[("origin", "http://example.com")]).await;
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://example.com")
    );
    let r = options(&any, "/", &[]).await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    // Unset: OPTIONS is answered, but no origin is allowed.
    let none = ControlPlane::start().await;
    let r = options(&none, "/routes", &[("origin", "http://example.com")]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

/// `POST /config` with Kong's options: `check_hash=1` is 304 for the stored configuration,
/// `flatten_errors=1` lists errors entity by entity; and `dry_run=1` answers changes without storing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_config_options_answer_as_kong_does() {
    let cp = ControlPlane::start().await;
    let doc = json!({
        "_format_version": "3.0",
        "_transform": true,
        "services": [{"name": "a", "url": "http://a.internal", "routes": [{"name": "ra", "paths": ["/a"]}]}],
    });
    let (s, v) = cp
        .call(Method::POST, "/config?dry_run=1", Some(doc.clone()))
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["summary"],
        json!({"created": 2, "updated": 0, "deleted": 0})
    );
    assert_eq!(
        v["changes"][0],
        json!({"action": "create", "entity": "services", "id": v["changes"][0]["id"], "name": "a", "fields": []})
    );
    assert_eq!(cp.version().await, 0, "a dry run stores nothing");
    let (s, _) = cp
        .call(Method::POST, "/config?check_hash=1", Some(doc.clone()))
        .await
        .unwrap();
    assert_eq!(s, 201, "a new configuration is stored");
    let version = cp.version().await;
    let (s, v) = cp
        .call(Method::POST, "/config?check_hash=1", Some(doc.clone()))
        .await
        .unwrap();
    assert_eq!((s, v), (304, Value::Null), "the same configuration again");
    assert_eq!(cp.version().await, version);
    let mut bad = doc.clone();
    bad["_transform"] = json!("yes");
    bad["services"][0]["routes"][0]["paths"] = json!(["nope"]);
    bad["services"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "b", "host": "b.internal", "port": "x", "tags": ["t"]}));
    let (s, v) = cp
        .call(Method::POST, "/config?flatten_errors=1", Some(bad))
        .await
        .unwrap();
    assert_eq!((s, &v["code"]), (400, &json!(14)), "{v}");
    assert_eq!(v["fields"]["_transform"], "expected a boolean");
    let flat = v["flattened_errors"].as_array().unwrap();
    assert_eq!(flat.len(), 2, "{v}");
    assert_eq!(
        (&flat[0]["entity_type"], &flat[0]["entity_name"]),
        (&json!("route"), &json!("ra"))
    );
    assert_eq!(flat[0]["errors"][0]["field"], "paths.1");
    assert_eq!(flat[0]["errors"][0]["type"], "field");
    assert_eq!(
        (&flat[1]["entity_type"], &flat[1]["entity_tags"]),
        (&json!("service"), &json!(["t"]))
    );
    assert_eq!(
        flat[1]["errors"],
        json!([{"type": "field", "field": "port", "message": "expected an integer"}])
    );
    let (s, v) = cp
        .call(Method::POST, "/config?check_hash=maybe", Some(doc))
        .await
        .unwrap();
    assert_eq!((s, v["fields"]["check_hash"].is_string()), (400, true));
    // Kong's answers to a document that is not one, and to no document at all.
    let (s, v) = cp
        .call(
            Method::POST,
            "/config",
            Some(json!({"config": "bobby tables"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, &v["fields"]),
        (
            400,
            &json!({"error": "failed parsing declarative configuration: expected an object"})
        ),
        "{v}"
    );
    let (s, v) = cp.call(Method::POST, "/config", None).await.unwrap();
    assert_eq!(
        (s, v),
        (
            400,
            json!({"message": "expected a declarative configuration"})
        )
    );
}
