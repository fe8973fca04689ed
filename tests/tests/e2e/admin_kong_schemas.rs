//! Kong's schema endpoints, case by case against Kong's `02-kong_routes_spec.lua`: `/schemas/{entity}`
//! for every entity, `/schemas/{entity}/validate`, `/schemas/plugins/{name}`,
//! `/schemas/plugins/validate` and `/plugins/schema/{name}`.

use reqwest::Method;
use serde_json::{json, Value};
use tests::pki::TestCa;
use tests::ControlPlane;

const COLLECTIONS: [&str; 9] = [
    "services",
    "routes",
    "consumers",
    "plugins",
    "certificates",
    "snis",
    "ca_certificates",
    "upstreams",
    "targets",
];

/// The description of `name` in a Kong `fields` list.
fn field<'a>(fields: &'a Value, name: &str) -> &'a Value {
    fields
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f.get(name))
        .unwrap_or_else(|| panic!("no field {name} in {fields}"))
}

async fn validate(cp: &ControlPlane, path: &str, body: Value) -> (u16, Value) {
    cp.call(Method::POST, path, Some(body)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entity_has_a_schema_with_types_defaults_and_checks() {
    let cp = ControlPlane::start().await;
    for name in COLLECTIONS {
        let s = cp.get(&format!("/schemas/{name}")).await.unwrap();
        assert!(
            s["fields"].is_array() && s["entity_checks"].is_array(),
            "{name}: {s}"
        );
        assert_eq!(s["name"], name);
        assert_eq!(
            field(&s["fields"], "id"),
            &json!({"type": "string", "uuid": true, "auto": true})
        );
        for f in s["fields"].as_array().unwrap() {
            let (fname, d) = f.as_object().unwrap().iter().next().unwrap();
            assert!(d["type"].is_string(), "{name}.{fname}: {d}");
            // Kong strips a foreign field's schema.
            assert!(d.get("schema").is_none(), "{name}.{fname}");
        }
    }
    let (s, v) = cp
        .call(Method::GET, "/schemas/not-present", None)
        .await
        .unwrap();
    assert_eq!(
        (s, v),
        (404, json!({"message": "No entity named 'not-present'"}))
    );

    let services = cp.get("/schemas/services").await.unwrap();
    let f = &services["fields"];
    assert_eq!(field(f, "port")["between"], json!([0, 65535]));
    assert_eq!(field(f, "port")["default"], 80);
    assert_eq!(field(f, "retries")["default"], 5);
    assert_eq!(field(f, "protocol")["default"], "http");
    assert!(field(f, "protocol")["one_of"]
        .as_array()
        .unwrap()
        .contains(&json!("https")));
    assert_eq!(field(f, "host")["required"], true);
    assert_eq!(field(f, "name")["unique"], true);
    assert_eq!(field(f, "connect_timeout")["default"], 60000);
    assert_eq!(
        field(f, "client_certificate"),
        &json!({"type": "foreign", "reference": "certificates"})
    );
    let routes = cp.get("/schemas/routes").await.unwrap();
    let f = &routes["fields"];
    assert_eq!(
        field(f, "service"),
        &json!({"type": "foreign", "reference": "services"})
    );
    assert_eq!(field(f, "protocols")["type"], "set");
    assert_eq!(field(f, "protocols")["default"], json!(["http", "https"]));
    assert_eq!(field(f, "strip_path")["default"], true);
    assert_eq!(field(f, "paths")["elements"]["type"], "string");
    assert_eq!(
        routes["entity_checks"],
        json!([{"at_least_one_of": ["methods", "hosts", "headers", "paths"]}])
    );
    // An unset collection has no default, as it reads back as null.
    assert!(field(f, "tags").get("default").is_none());
    let targets = cp.get("/schemas/targets").await.unwrap();
    assert_eq!(field(&targets["fields"], "weight")["default"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_answers_without_storing_and_without_looking_references_up() {
    let cp = ControlPlane::start().await;
    let (s, v) = validate(
        &cp,
        "/schemas/services/validate",
        json!({"host": "example.com"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (200, json!({"message": "schema validation successful"}))
    );
    let (s, v) = validate(
        &cp,
        "/schemas/services/validate",
        json!({"host": "example.com", "port": 70000}),
    )
    .await;
    assert_eq!((s, &v["name"]), (400, &json!("schema violation")), "{v}");
    assert!(v["fields"]["port"].is_string(), "{v}");
    // A Route naming a Service that does not exist (yet): the Route's own fields are valid.
    let (s, v) = validate(
        &cp,
        "/schemas/routes/validate",
        json!({"paths": ["/a"], "service": {"id": "6ec6b8ac-9ab3-4c1e-9a3a-3fd6f3f1c9b4"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = validate(&cp, "/schemas/nothing/validate", json!({})).await;
    assert_eq!(s, 404);
    // No body: the required fields are missing.
    let (s, v) = cp
        .call(Method::POST, "/schemas/upstreams/validate", None)
        .await
        .unwrap();
    assert_eq!(
        (s, &v["fields"]["name"]),
        (400, &json!("required field missing"))
    );
    // Certificates with the `snis` shorthand: each name is checked, an IP is refused.
    let ca = TestCa::new("schema test CA");
    let issued = ca.issue(&["a.example.test"]);
    let cert = json!({"cert": issued.cert, "key": issued.key});
    let mut with_snis = cert.clone();
    with_snis["snis"] = json!(["a", "b", "c"]);
    let (s, v) = validate(&cp, "/schemas/certificates/validate", with_snis).await;
    assert_eq!(s, 200, "{v}");
    let mut with_ip = cert;
    with_ip["snis"] = json!(["120.0.9.32:90"]);
    let (s, v) = validate(&cp, "/schemas/certificates/validate", with_ip).await;
    assert_eq!((s, &v["code"]), (400, &json!(2)), "{v}");
    let why = v["fields"]["snis"][0].as_str().expect("an array entry");
    assert_eq!(v["message"], format!("schema violation (snis.1: {why})"));
    // Nothing was stored.
    for name in COLLECTIONS {
        let listed = cp.get(&format!("/{name}")).await.unwrap();
        assert_eq!(listed["data"], json!([]), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_schemas_describe_the_config_the_parser_accepts() {
    let cp = ControlPlane::start().await;
    for name in ["oauth2-introspection", "openid-connect"] {
        let s = cp.get(&format!("/schemas/plugins/{name}")).await.unwrap();
        let config = field(&s["fields"], "config");
        assert_eq!(
            (&config["type"], &config["required"]),
            (&json!("record"), &json!(true))
        );
        assert!(config["fields"].as_array().unwrap().len() > 10, "{config}");
        assert_eq!(field(&s["fields"], "protocols")["type"], "set");
        let older = cp.get(&format!("/plugins/schema/{name}")).await.unwrap();
        assert_eq!(&older, config);
    }
    let s = cp
        .get("/schemas/plugins/oauth2-introspection")
        .await
        .unwrap();
    let config = &field(&s["fields"], "config")["fields"];
    assert_eq!(
        field(config, "introspection_url"),
        &json!({"type": "string", "required": true})
    );
    assert_eq!(field(config, "ttl")["default"], 30);
    assert_eq!(
        field(config, "consumer_by")["one_of"],
        json!(["username", "client_id"])
    );
    assert_eq!(field(config, "authorization_value")["encrypted"], true);
    let (s, v) = cp
        .call(Method::GET, "/schemas/plugins/not-present", None)
        .await
        .unwrap();
    assert_eq!(
        (s, v),
        (404, json!({"message": "No plugin named 'not-present'"}))
    );

    let good = json!({"name": "oauth2-introspection", "config": {
        "introspection_url": "https://idp.example.test/introspect",
        "authorization_value": "Basic eDp5",
        "ttl": 60,
    }});
    let (s, v) = validate(&cp, "/schemas/plugins/validate", good).await;
    assert_eq!(
        (s, v),
        (200, json!({"message": "schema validation successful"}))
    );
    let (s, v) = validate(
        &cp,
        "/schemas/plugins/validate",
        json!({"name": "oauth2-introspection", "config": {"keys": "foo"}}),
    )
    .await;
    assert_eq!((s, &v["name"]), (400, &json!("schema violation")), "{v}");
    assert_eq!(v["fields"]["config"]["keys"], "unknown field", "{v}");
    assert!(cp.get("/plugins").await.unwrap()["data"] == json!([]));
}
