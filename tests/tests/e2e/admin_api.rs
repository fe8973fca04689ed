//! The Admin API through real HTTP: every entity and verb, nested endpoints, paging, errors, redaction,
//! declarative config, authentication and the OpenAPI document.

use reqwest::Method;
use serde_json::{json, Value};
use tests::{client, ControlPlane, CpOptions};

#[tokio::test]
async fn services_crud_and_kong_defaults() {
    let cp = ControlPlane::start().await;
    let s = cp.post("/services", json!({"name": "example-service", "url": "http://httpbin.org/anything", "tags": ["demo"]})).await;
    assert_eq!(s["host"], "httpbin.org");
    assert_eq!(s["port"], 80);
    assert_eq!(s["protocol"], "http");
    assert_eq!(s["path"], "/anything");
    assert_eq!(s["retries"], 5);
    assert_eq!(s["connect_timeout"], 60000);
    assert!(s.get("url").is_none());
    let id = s["id"].as_str().unwrap().to_string();
    // GET by id and by name.
    assert_eq!(
        cp.get(&format!("/services/{id}")).await.unwrap()["name"],
        "example-service"
    );
    assert_eq!(
        cp.get("/services/example-service").await.unwrap()["id"],
        json!(id)
    );
    // PATCH keeps the rest; the url shorthand replaces all four parts.
    let (st, p) = cp
        .call(
            Method::PATCH,
            "/services/example-service",
            Some(json!({"retries": 2})),
        )
        .await
        .unwrap();
    assert_eq!(
        (st, p["retries"].clone(), p["host"].clone()),
        (200, json!(2), json!("httpbin.org"))
    );
    let (_, p) = cp
        .call(
            Method::PATCH,
            &format!("/services/{id}"),
            Some(json!({"url": "https://other:8443"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (p["protocol"].clone(), p["port"].clone(), p["path"].clone()),
        (json!("https"), json!(8443), Value::Null)
    );
    assert_eq!(p["created_at"], s["created_at"]);
    // PUT creates by name, then replaces.
    let (st, put) = cp
        .call(
            Method::PUT,
            "/services/by-put",
            Some(json!({"host": "a.example"})),
        )
        .await
        .unwrap();
    assert_eq!((st, put["name"].clone()), (200, json!("by-put")));
    let (_, put2) = cp
        .call(
            Method::PUT,
            "/services/by-put",
            Some(json!({"host": "b.example"})),
        )
        .await
        .unwrap();
    assert_eq!(put2["id"], put["id"]);
    assert_eq!(put2["host"], "b.example");
    // DELETE, then 404; deleting again is 204 as in Kong.
    let (st, _) = cp
        .call(Method::DELETE, "/services/by-put", None)
        .await
        .unwrap();
    assert_eq!(st, 204);
    let (st, body) = cp
        .call(Method::GET, "/services/by-put", None)
        .await
        .unwrap();
    assert_eq!((st, body), (404, json!({"message": "Not found"})));
    assert_eq!(
        cp.call(Method::DELETE, "/services/by-put", None)
            .await
            .unwrap()
            .0,
        204
    );
}

#[tokio::test]
async fn nested_endpoints_and_delete_rules() {
    let cp = ControlPlane::start().await;
    cp.post("/services", json!({"name": "svc", "url": "http://up"}))
        .await;
    let r = cp
        .post(
            "/services/svc/routes",
            json!({"name": "r1", "paths": ["/a"]}),
        )
        .await;
    assert_eq!(r["strip_path"], true);
    assert_eq!(r["preserve_host"], false);
    assert_eq!(r["protocols"], json!(["http", "https"]));
    assert_eq!(r["regex_priority"], 0);
    let routes = cp.get("/services/svc/routes").await.unwrap();
    assert_eq!(routes["data"].as_array().unwrap().len(), 1);
    cp.post("/consumers", json!({"username": "bob"})).await;
    let cfg = json!({"introspection_url": "http://idp/introspect", "authorization_value": "Basic c2VjcmV0"});
    cp.post(
        "/routes/r1/plugins",
        json!({"name": "oauth2-introspection", "config": cfg}),
    )
    .await;
    cp.post(
        "/consumers/bob/plugins",
        json!({"name": "oauth2-introspection", "config": cfg}),
    )
    .await;
    assert_eq!(
        cp.get("/routes/r1/plugins").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cp.get("/consumers/bob/plugins").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cp.get("/services/svc/plugins").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Same plugin on the same scope again: 409.
    let (st, body) = cp
        .call(
            Method::POST,
            "/routes/r1/plugins",
            Some(json!({"name": "oauth2-introspection", "config": cfg})),
        )
        .await
        .unwrap();
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["name"], "unique constraint violation");
    // A service still used by routes cannot go.
    let (st, body) = cp
        .call(Method::DELETE, "/services/svc", None)
        .await
        .unwrap();
    assert_eq!(st, 400);
    assert_eq!(body["name"], "foreign key violation");
    // Deleting the route removes its plugins.
    assert_eq!(
        cp.call(Method::DELETE, "/routes/r1", None).await.unwrap().0,
        204
    );
    assert_eq!(
        cp.get("/plugins").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cp.call(Method::DELETE, "/services/svc", None)
            .await
            .unwrap()
            .0,
        204
    );
    // Nested under a missing parent: 404.
    assert_eq!(
        cp.call(
            Method::POST,
            "/services/nope/routes",
            Some(json!({"paths": ["/x"]}))
        )
        .await
        .unwrap()
        .0,
        404
    );
    assert_eq!(
        cp.call(Method::GET, "/consumers/nope/plugins", None)
            .await
            .unwrap()
            .0,
        404
    );
}

#[tokio::test]
async fn paging_and_tag_filters() {
    let cp = ControlPlane::start().await;
    for i in 0..7 {
        let tags = if i % 2 == 0 {
            json!(["even", "all"])
        } else {
            json!(["odd", "all"])
        };
        cp.post(
            "/consumers",
            json!({"username": format!("user-{i}"), "tags": tags}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut next = Some("/consumers?size=3".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let page = cp.get(&path).await.unwrap();
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(
            data.iter()
                .map(|c| c["username"].as_str().unwrap().to_string()),
        );
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "every consumer exactly once across pages");
    assert_eq!(
        cp.get("/consumers?tags=even").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        cp.get("/consumers?tags=even,all").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        cp.get("/consumers?tags=even/odd").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        cp.call(Method::GET, "/consumers?size=0", None)
            .await
            .unwrap()
            .0,
        400
    );
    assert_eq!(
        cp.call(Method::GET, "/consumers?size=abc", None)
            .await
            .unwrap()
            .0,
        400
    );
    let (st, body) = cp
        .call(Method::GET, "/consumers?offset=garbage!", None)
        .await
        .unwrap();
    assert_eq!((st, body["name"].clone()), (400, json!("invalid offset")));
}

#[tokio::test]
async fn bad_input_is_rejected_with_field_errors() {
    let cp = ControlPlane::start().await;
    let c = client();
    let url = |p: &str| format!("{}{p}", cp.admin_url);
    // Malformed JSON.
    let r = c
        .post(url("/services"))
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("Cannot parse JSON"));
    // Not JSON or form.
    let r = c
        .post(url("/services"))
        .header("content-type", "text/plain")
        .body("host=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Oversized body.
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let r = c
        .post(url("/services"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Wrong types and unknown fields, all named.
    let (st, body) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"host": 5, "port": "x", "colour": "red", "retries": -1})),
        )
        .await
        .unwrap();
    assert_eq!(st, 400);
    assert_eq!(body["name"], "schema violation");
    assert_eq!(body["code"], 2);
    let f = &body["fields"];
    assert_eq!(f["host"], "expected a string");
    assert_eq!(f["port"], "expected an integer");
    assert_eq!(f["colour"], "unknown field");
    assert!(f["retries"].as_str().unwrap().contains("between"));
    // Invalid UUIDs in bodies and references to missing entities.
    let (st, body) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"id": "not-a-uuid", "host": "h"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (st, body["fields"]["id"].clone()),
        (400, json!("expected a valid UUID"))
    );
    let (st, body) = cp
        .call(
            Method::POST,
            "/routes",
            Some(
                json!({"paths": ["/x"], "service": {"id": "0b7b4a38-8f3c-4f4e-9e5e-0d7a6f6e6a11"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (st, body["name"].clone()),
        (400, json!("foreign key violation"))
    );
    // Duplicate names.
    cp.post("/services", json!({"name": "dup", "host": "h"}))
        .await;
    let (st, body) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"name": "dup", "host": "h"})),
        )
        .await
        .unwrap();
    assert_eq!((st, body["code"].clone()), (409, json!(5)));
    // Routes need something to match; plugin configs are checked by their schema.
    let (st, body) = cp
        .call(Method::POST, "/routes", Some(json!({"name": "empty"})))
        .await
        .unwrap();
    assert_eq!(st, 400);
    assert_eq!(
        body["fields"]["@entity"][0],
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
    );
    for (protocols, message) in [
        (
            json!(["http"]),
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'",
        ),
        (
            json!(["grpc"]),
            "must set one of 'hosts', 'headers', 'paths' when 'protocols' is 'grpc'",
        ),
        (
            json!(["grpc", "grpcs"]),
            "must set one of 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'grpcs'",
        ),
    ] {
        let (st, body) = cp
            .call(
                Method::POST,
                "/routes",
                Some(json!({ "protocols": protocols })),
            )
            .await
            .unwrap();
        assert_eq!((st, &body["fields"]["@entity"][0]), (400, &json!(message)));
    }
    let (st, body) = cp
        .call(
            Method::POST,
            "/plugins",
            Some(json!({"name": "oauth2-introspection", "config": {"ttl": "soon", "bogus": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st, 400);
    let cfg = &body["fields"]["config"];
    assert_eq!(cfg["introspection_url"], "required field missing");
    assert_eq!(cfg["ttl"], "expected an integer");
    assert_eq!(cfg["bogus"], "unknown field");
    let (st, body) = cp
        .call(Method::POST, "/plugins", Some(json!({"name": "key-auth"})))
        .await
        .unwrap();
    assert_eq!(st, 400);
    // Kong's words, on the entity's own `name`.
    assert_eq!(
        body["fields"]["name"],
        "plugin 'key-auth' not enabled; add it to the 'plugins' configuration property",
        "{body}"
    );
    // Wrong method and unknown path.
    assert_eq!(
        cp.call(Method::PATCH, "/services", None).await.unwrap().0,
        405
    );
    assert_eq!(
        cp.call(Method::GET, "/nothing-here", None).await.unwrap().0,
        404
    );
    // Form bodies work like Kong's.
    let r = c
        .post(url("/services"))
        .form(&[("name", "formsvc"), ("url", "http://up:81/p")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(url("/services/formsvc/routes"))
        .form(&[("paths[]", "/f1"), ("paths[]", "/f2"), ("methods", "GET")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["paths"],
        json!(["/f1", "/f2"])
    );
    // Nothing above changed the config except the successful writes.
    assert_eq!(
        cp.get("/services").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn secrets_are_redacted_and_kept_on_write_back() {
    let cp = ControlPlane::start().await;
    let p = cp
        .post("/plugins", json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://idp/i", "authorization_value": "Basic c3VwZXI6c2VjcmV0"}}))
        .await;
    assert_eq!(p["config"]["authorization_value"], "[redacted]");
    let id = p["id"].as_str().unwrap();
    let read = cp.get(&format!("/plugins/{id}")).await.unwrap();
    assert_eq!(read["config"]["authorization_value"], "[redacted]");
    // PUT back what was read: the stored secret stays.
    let (st, _) = cp
        .call(Method::PUT, &format!("/plugins/{id}"), Some(read.clone()))
        .await
        .unwrap();
    assert_eq!(st, 200);
    let export = cp.get("/config").await.unwrap().to_string();
    assert!(
        !export.contains("c3VwZXI6c2VjcmV0"),
        "export never shows secrets"
    );
    // A new plugin cannot be created with the placeholder as its secret.
    cp.post("/consumers", json!({"username": "c"})).await;
    let (st, body) = cp
        .call(Method::POST, "/consumers/c/plugins", Some(json!({"name": "oauth2-introspection", "config": {"introspection_url": "http://idp/x", "authorization_value": "[redacted]"}})))
        .await
        .unwrap();
    assert_eq!(st, 400, "{body}");
    assert!(body["fields"]["config"]["authorization_value"]
        .as_str()
        .unwrap()
        .contains("redaction placeholder"));
    let oidc = cp
        .post(
            "/plugins",
            json!({"name": "openid-connect", "config": {"issuer": "https://idp.example/realms/demo", "client_id": ["kong"], "client_secret": ["s3cr3t-value"], "client_auth": ["client_secret_post"]}}),
        )
        .await;
    assert_eq!(oidc["config"]["client_secret"], json!(["[redacted]"]));
}

#[tokio::test]
async fn declarative_config_round_trip_and_kong_how_to() {
    let cp = ControlPlane::start().await;
    // The document from Kong's introspection how-to.
    let yaml = include_str!("../../fixtures/kong-how-to.yaml");
    let r = client()
        .post(format!("{}/config", cp.admin_url))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loaded: Value = r.json().await.unwrap();
    // Kong's answer: each collection keyed by id.
    let only = |collection: &str| -> Value {
        let items = loaded[collection].as_object().unwrap();
        assert_eq!(items.len(), 1, "{collection}: {loaded}");
        let (id, entity) = items.iter().next().unwrap();
        assert_eq!(&entity["id"], id);
        entity.clone()
    };
    assert_eq!(only("routes")["service"]["id"], only("services")["id"]);
    assert_eq!(
        only("plugins")["config"]["auth_methods"],
        json!(["introspection", "password"])
    );
    let v1 = cp.version().await;
    // Export → import is a round trip, secrets included (kept by id).
    let exported = cp.get("/config?format=json").await.unwrap();
    assert_eq!(exported["_format_version"], "3.0");
    assert_eq!(exported["_transform"], false, "as Kong exports");
    let r = client()
        .post(format!("{}/config", cp.admin_url))
        .json(&exported)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(cp.get("/config?format=json").await.unwrap(), exported);
    // Kong's shape, the document as YAML text under `config`, goes back as it came.
    let kong = cp.get("/config").await.unwrap();
    assert!(kong["config"].as_str().unwrap().contains("_format_version"));
    let (st, loaded) = cp.call(Method::POST, "/config", Some(kong)).await.unwrap();
    assert_eq!(st, 201, "{loaded}");
    // Kong's answer: entities keyed by id.
    let service = &exported["services"][0];
    let id = service["id"].as_str().unwrap();
    assert_eq!(loaded["services"][id]["name"], service["name"]);
    assert_eq!(loaded["services"][id]["created_at"], service["created_at"]);
    assert_eq!(cp.get("/config?format=json").await.unwrap(), exported);
    assert!(cp.version().await > v1);
    // YAML export.
    let y = client()
        .get(format!("{}/config?format=yaml", cp.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        y.contains("_format_version: '3.0'") || y.contains("_format_version: \"3.0\""),
        "{y}"
    );
    // Every error is reported with its path, and nothing changes.
    let bad = json!({
        "_format_version": "3.0",
        "services": [{"name": "a", "host": "h", "routes": [{"paths": ["nope"]}]}, {"name": "b", "port": "x", "host": "h"}],
        "consumers": [{}],
        "plugins": [{"name": "oauth2-introspection", "config": {}}],
        "extra": 1
    });
    let (st, body) = cp.call(Method::POST, "/config", Some(bad)).await.unwrap();
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["name"], "invalid declarative configuration");
    let f = &body["fields"];
    assert!(f["services"][0]["routes"][0]["paths"][0].is_string(), "{f}");
    assert!(f["services"][1]["port"].is_string(), "{f}");
    assert!(f["consumers"][0]["@entity"][0].is_string(), "{f}");
    assert!(
        f["plugins"][0]["config"]["introspection_url"].is_string(),
        "{f}"
    );
    assert_eq!(f["extra"], "unknown field");
    assert_eq!(
        cp.get("/config?format=json").await.unwrap(),
        exported,
        "a rejected document changes nothing"
    );
    let (st, _) = cp
        .call(Method::POST, "/config", Some(json!({"services": []})))
        .await
        .unwrap();
    assert_eq!(st, 400, "_format_version is required");
}

#[tokio::test]
async fn admin_token_is_required_when_configured() {
    let token = "s3cret-admin-token-0123456789".to_string();
    let cp = ControlPlane::start_with(CpOptions {
        admin_token: Some(token.clone()),
        ..Default::default()
    })
    .await;
    let c = client();
    let r = c
        .get(format!("{}/services", cp.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(!body.contains(&token));
    let r = c
        .get(format!("{}/services", cp.admin_url))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/services", cp.admin_url))
        .header("kong-admin-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        cp.get("/").await.unwrap()["configuration"]["admin_token_required"],
        true
    );
    assert!(!cp.get("/").await.unwrap().to_string().contains(&token));
}

#[tokio::test]
async fn root_status_and_openapi() {
    let cp = ControlPlane::start().await;
    let root = cp.get("/").await.unwrap();
    assert_eq!(root["role"], "control_plane");
    assert!(root["plugins"]["available_on_server"]["oauth2-introspection"].is_object());
    let st = cp.get("/status").await.unwrap();
    assert_eq!(st["database"]["reachable"], true);
    assert_eq!(st["config_version"], 0);
    cp.post("/consumers", json!({"username": "x"})).await;
    assert_eq!(cp.get("/status").await.unwrap()["config_version"], 1);
    let doc = cp.get("/openapi.json").await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/services",
        "/services/{key}",
        "/services/{parent}/routes",
        "/consumers/{parent}/plugins",
        "/config",
        "/clustering/data-planes",
        "/clustering/pairing-tokens",
        "/cache/introspection/{key}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // The documented Service properties are exactly what the server accepts: each one is accepted, anything
    // else is rejected as an unknown field.
    let props = doc["components"]["schemas"]["Service"]["properties"]
        .as_object()
        .unwrap();
    let mut body = json!({"host": "h"});
    for (k, _) in props {
        if [
            "id",
            "created_at",
            "updated_at",
            "url",
            "host",
            "name",
            "path",
            "tls_verify",
            "tags",
        ]
        .contains(&k.as_str())
        {
            continue;
        }
        body[k.as_str()] = match k.as_str() {
            "protocol" => json!("http"),
            "enabled" => json!(true),
            "tls_verify_depth" => json!(2),
            "ca_certificates" => json!([]),
            "client_certificate" => Value::Null,
            _ => json!(1000),
        };
    }
    let (st, resp) = cp
        .call(Method::POST, "/services", Some(body))
        .await
        .unwrap();
    assert_eq!(st, 201, "{resp}");
}
