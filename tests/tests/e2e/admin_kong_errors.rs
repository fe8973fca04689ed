//! The Admin API's errors against Kong's (its `kong/db/errors.lua` shapes and the cases of
//! `spec/02-integration/04-admin_api/`): element errors as arrays, `@entity` as an array, the count form
//! of a message, references (`missing primary key`, `foreign keys unresolved`, `foreign key violation`,
//! `@referenced_by`), unique and primary key violations with their key, paging and tag filter errors,
//! bodies that are not JSON, form values and unset collections.

use reqwest::Method;
use serde_json::{json, Value};
use tests::ControlPlane;

async fn call(cp: &ControlPlane, method: Method, path: &str, body: Value) -> (u16, Value) {
    cp.call(method, path, Some(body)).await.unwrap()
}

/// A request with a raw body and content type.
async fn raw(
    cp: &ControlPlane,
    method: Method,
    path: &str,
    ctype: &str,
    body: &str,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", cp.admin_url))
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_have_kongs_shapes() {
    let cp = ControlPlane::start().await;
    // A plugin's config that is not an object is named on the field itself.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/plugins",
        json!({"name": "acl", "config": "x"}),
    )
    .await;
    assert_eq!(
        (s, &v["fields"]),
        (400, &json!({"config": "expected a record"}))
    );
    // An element's error is an array entry, and the message names its position.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/routes",
        json!({"methods": ["GET"], "protocols": ["foo", "http"]}),
    )
    .await;
    assert_eq!(
        (s, &v["code"], &v["name"]),
        (400, &json!(2), &json!("schema violation"))
    );
    let why = v["fields"]["protocols"][0].as_str().expect("an array");
    assert!(why.starts_with("expected one of: "), "{v}");
    assert_eq!(
        v["message"],
        format!("schema violation (protocols.1: {why})")
    );
    // A later element: the earlier position is null.
    let (_, v) = call(
        &cp,
        Method::POST,
        "/routes",
        json!({"paths": ["/ok", "no-slash"]}),
    )
    .await;
    assert!(v["fields"]["paths"][0].is_null(), "{v}");
    assert!(v["fields"]["paths"][1].is_string(), "{v}");
    // Errors about the whole entity are an array under @entity, listed without a field name.
    let (s, v) = call(&cp, Method::POST, "/routes", json!({"name": "bare"})).await;
    assert_eq!(s, 400);
    let entity = v["fields"]["@entity"][0].as_str().expect("an array");
    assert_eq!(v["message"], format!("schema violation ({entity})"));
    // Several: counted.
    let (_, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"host": "example.test", "port": "x", "retries": -1}),
    )
    .await;
    let message = v["message"].as_str().unwrap();
    assert!(message.starts_with("2 schema violations (port: "), "{v}");
    assert!(message.contains("; retries: "), "{v}");
    // Kong's own case: a url that does not parse is checked as the fields it stands for.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"url": "invalid url"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "2 schema violations (host: required field missing; path: should start with: /)",
                "fields": {"host": "required field missing", "path": "should start with: /"},
            })
        )
    );
    let (_, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"url": "ftp://files.test/x"}),
    )
    .await;
    assert!(
        v["fields"]["protocol"]
            .as_str()
            .is_some_and(|m| m.starts_with("expected one of: ")),
        "{v}"
    );
    let (_, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"url": "http://bad_host!/x"}),
    )
    .await;
    assert!(v["fields"]["host"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_report_kongs_foreign_key_errors() {
    let cp = ControlPlane::start().await;
    // By a name that names nothing: foreign keys unresolved (13).
    let (s, v) = call(
        &cp,
        Method::POST,
        "/routes",
        json!({"methods": ["GET"], "service": {"name": "non-existing"}}),
    )
    .await;
    let why = "the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity";
    assert_eq!(
        (s, v),
        (
            400,
            json!({
                "code": 13,
                "name": "foreign keys unresolved",
                "message": format!("foreign key unresolved (service.name: {why})"),
                "fields": {"service": {"name": why}},
            })
        )
    );
    // A reference with no key at all: missing primary key.
    for service in [json!({"name": null}), json!({"protocol": "http"})] {
        let (s, v) = call(
            &cp,
            Method::POST,
            "/routes",
            json!({"methods": ["GET"], "service": service}),
        )
        .await;
        assert_eq!(
            (s, v),
            (
                400,
                json!({
                    "code": 2,
                    "name": "schema violation",
                    "message": "schema violation (service.id: missing primary key)",
                    "fields": {"service": {"id": "missing primary key"}},
                })
            )
        );
    }
    // By an id that names nothing: foreign key violation (4) with the key.
    let ghost = "6ec6b8ac-9ab3-4c1e-9a3a-3fd6f3f1c9b4";
    let (s, v) = call(
        &cp,
        Method::POST,
        "/routes",
        json!({"methods": ["GET"], "service": {"id": ghost}}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({
                "code": 4,
                "name": "foreign key violation",
                "message": format!("the foreign key '{{id=\"{ghost}\"}}' does not reference an existing 'services' entity."),
                "fields": {"service": {"id": ghost}},
            })
        )
    );
    // An id that is not a UUID.
    let (s, v) = call(
        &cp,
        Method::POST,
        "/routes",
        json!({"methods": ["GET"], "service": {"id": "nope"}}),
    )
    .await;
    assert_eq!(
        (s, &v["fields"]["service"]["id"]),
        (400, &json!("expected a valid UUID"))
    );
    // Deleting a Service that a Route uses: @referenced_by.
    cp.post("/services", json!({"name": "used", "host": "example.test"}))
        .await;
    cp.post(
        "/routes",
        json!({"paths": ["/u"], "service": {"name": "used"}}),
    )
    .await;
    let (s, v) = cp
        .call(Method::DELETE, "/services/used", None)
        .await
        .unwrap();
    assert_eq!(
        (s, v),
        (
            400,
            json!({
                "code": 4,
                "name": "foreign key violation",
                "message": "an existing 'routes' entity references this 'services' entity",
                "fields": {"@referenced_by": "routes"},
            })
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_and_primary_key_violations_carry_the_key() {
    let cp = ControlPlane::start().await;
    let first = cp
        .post(
            "/services",
            json!({"name": "billing", "host": "example.test"}),
        )
        .await;
    let (s, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"name": "billing", "host": "other.test"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            409,
            json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{name=\"billing\"}'",
                "fields": {"name": "billing"},
            })
        )
    );
    let id = first["id"].as_str().unwrap();
    let (s, v) = call(
        &cp,
        Method::POST,
        "/services",
        json!({"id": id, "host": "other.test"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({
                "code": 3,
                "name": "primary key violation",
                "message": format!("primary key violation on key '{{id=\"{id}\"}}'"),
                "fields": {"id": id},
            })
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_entity_declared_twice_is_named_at_its_position() {
    let cp = ControlPlane::start().await;
    let twice = json!({"_format_version": "3.0", "services": [
        {"name": "foo", "host": "example.com"},
        {"name": "foo", "host": "example.test"},
    ]});
    let (s, v) = call(&cp, Method::POST, "/config", twice).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["fields"]["services"],
        json!([
            null,
            "uniqueness violation: 'services' entity with name set to 'foo' already declared"
        ])
    );
    let id = "0855b320-0dd2-547d-891d-601e9b38647f";
    let same_id = json!({"_format_version": "3.0", "services": [
        {"id": id, "host": "example.com"},
        {"id": id, "host": "example.test"},
    ]});
    let (s, v) = call(&cp, Method::POST, "/config", same_id).await;
    assert_eq!(s, 400, "{v}");
    let expected = format!(
        "uniqueness violation: 'services' entity with primary key set to '{id}' already declared"
    );
    assert_eq!(v["fields"]["services"], json!([null, expected]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_tag_filters_refuse_bad_values_as_kong_does() {
    let cp = ControlPlane::start().await;
    for (i, tags) in [vec!["a"], vec!["b"], vec!["a", "b"]]
        .into_iter()
        .enumerate()
    {
        cp.post(
            "/consumers",
            json!({"username": format!("c{i}"), "tags": tags}),
        )
        .await;
    }
    let (s, v) = cp.call(Method::GET, "/routes?size=x", None).await.unwrap();
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 9, "name": "invalid size", "message": "size must be a number"})
        )
    );
    for size in ["0", "1001", "2.5"] {
        let (s, v) = cp
            .call(Method::GET, &format!("/consumers?size={size}"), None)
            .await
            .unwrap();
        assert_eq!(
            (s, &v["code"], &v["message"]),
            (
                400,
                &json!(9),
                &json!("size must be an integer between 1 and 1000")
            ),
            "size={size}"
        );
    }
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["username"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&cp.get("/consumers?tags=a,b").await.unwrap()), ["c2"]);
    assert_eq!(
        names(&cp.get("/consumers?tags=a/b").await.unwrap()),
        ["c0", "c1", "c2"]
    );
    for (filter, why) in [
        ("", "cannot be null"),
        ("a,b/c", "invalid filter syntax"),
        ("a,,b", "invalid filter syntax"),
        ("a,b,c,d,e,f", "cannot query more than 5 tags"),
        // Bytes that are not UTF-8.
        ("%FF", "invalid filter syntax"),
    ] {
        let (s, v) = cp
            .call(Method::GET, &format!("/consumers?tags={filter}"), None)
            .await
            .unwrap();
        assert_eq!(
            (s, v),
            (
                400,
                json!({
                    "code": 11,
                    "name": "invalid options",
                    "message": format!("invalid option (tags: {why})"),
                    "options": {"tags": why},
                })
            ),
            "tags={filter}"
        );
    }
    // A Unicode tag filters; a nested list ignores the filter, as Kong's does.
    cp.post("/consumers", json!({"username": "gorilla", "tags": ["🦍"]}))
        .await;
    assert_eq!(
        names(&cp.get("/consumers?tags=%F0%9F%A6%8D").await.unwrap()),
        ["gorilla"]
    );
    let plugin = json!({"name": "rate-limiting", "config": {"minute": 1}, "tags": ["a"]});
    cp.post("/consumers/c0/plugins", plugin).await;
    let nested = cp.get("/consumers/c0/plugins?tags=b").await.unwrap();
    assert_eq!(nested["data"].as_array().unwrap().len(), 1, "{nested}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_form_values_and_unset_collections_read_as_in_kong() {
    let cp = ControlPlane::start().await;
    // A JSON content type with a body that is not JSON, or no body at all: Kong's exact answer.
    for body in ["{", "", "  "] {
        let (s, v) = raw(&cp, Method::POST, "/services", "application/json", body).await;
        assert_eq!(
            (s, v),
            (400, json!({"message": "Cannot parse JSON body"})),
            "body {body:?}"
        );
    }
    // Multipart forms read as URL-encoded ones do (Kong's third body type): fields, `paths[]`, files.
    let boundary = "----portcullis-test-boundary";
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let body = part("username", "multi")
        + &part("custom_id", "m-1")
        + &part("tags[]", "a")
        + &part("tags[]", "b")
        + &format!("--{boundary}--\r\n");
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (s, v) = raw(&cp, Method::POST, "/consumers", &ctype, &body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (&v["username"], &v["tags"]),
        (&json!("multi"), &json!(["a", "b"]))
    );
    let (s, v) = raw(&cp, Method::POST, "/consumers", &ctype, "").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["fields"]["@entity"],
        json!(["at least one of these fields must be non-empty: 'custom_id', 'username'"])
    );
    let (s, _) = raw(&cp, Method::POST, "/consumers", "multipart/form-data", "x").await;
    assert_eq!(s, 400, "no boundary");
    let (s, _) = raw(
        &cp,
        Method::POST,
        "/consumers",
        "invalid",
        "{\"hello\": \"world\"}",
    )
    .await;
    assert_eq!(s, 415);
    // Unset collections are null.
    let route = cp
        .post("/routes", json!({"name": "r", "paths": ["/r"]}))
        .await;
    for field in ["hosts", "methods", "headers", "tags"] {
        assert_eq!(route[field], Value::Null, "{field}: {route}");
    }
    assert_eq!(route["paths"], json!(["/r"]));
    // A Service shows its TLS fields even while unset.
    let service = cp.post("/services", json!({"host": "example.test"})).await;
    for field in [
        "tls_verify",
        "tls_verify_depth",
        "client_certificate",
        "ca_certificates",
        "tags",
    ] {
        assert!(
            service.get(field).is_some_and(Value::is_null),
            "{field}: {service}"
        );
    }
    // An empty form value sets the field to null.
    let (s, v) = raw(
        &cp,
        Method::PATCH,
        "/routes/r",
        "application/x-www-form-urlencoded",
        "name=&hosts[]=example.test",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["name"], &v["hosts"]),
        (&Value::Null, &json!(["example.test"]))
    );
    // Kong's route fields for TLS server names and stream addresses read as null, may be sent empty, and
    // are refused with a reason when they would restrict the route.
    let id = v["id"].as_str().unwrap().to_string();
    for field in ["snis", "sources", "destinations"] {
        assert_eq!(v[field], Value::Null, "{field} in {v}");
    }
    let (s, v) = cp
        .call(
            Method::PATCH,
            &format!("/routes/{id}"),
            Some(json!({"snis": [], "sources": null})),
        )
        .await
        .unwrap();
    assert_eq!((s, &v["snis"]), (200, &Value::Null), "{v}");
    let (s, v) = cp
        .call(
            Method::PATCH,
            &format!("/routes/{id}"),
            Some(json!({"snis": ["api.example.test"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["snis"]
        .as_str()
        .unwrap()
        .starts_with("not supported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_lists_given_empty_read_back_empty_and_unset_ones_null() {
    let cp = ControlPlane::start().await;
    let route = cp
        .post(
            "/routes",
            json!({"name": "r", "paths": ["/r"], "methods": ["GET"]}),
        )
        .await;
    let path = format!("/routes/{}", route["id"].as_str().unwrap());
    // Kong's spec: a PATCH with empty arrays stores them empty (`{}` is Lua's spelling of one).
    let (s, v) = call(
        &cp,
        Method::PATCH,
        &path,
        json!({"methods": [], "paths": {}, "hosts": ["my-updated.tld"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["methods"], &v["paths"], &v["hosts"], &v["tags"]),
        (
            &json!([]),
            &json!([]),
            &json!(["my-updated.tld"]),
            &Value::Null
        ),
        "{v}"
    );
    assert!(v.get("given_empty").is_none(), "{v}");
    // Empty stays empty through a read and a PATCH of another field.
    assert_eq!(cp.get(&path).await.unwrap()["methods"], json!([]));
    let (_, v) = call(&cp, Method::PATCH, &path, json!({"tags": []})).await;
    assert_eq!(
        (&v["methods"], &v["paths"], &v["tags"]),
        (&json!([]), &json!([]), &json!([])),
        "{v}"
    );
    // Given a value again, then unset with null: null.
    let (_, v) = call(&cp, Method::PATCH, &path, json!({"methods": ["POST"]})).await;
    assert_eq!(v["methods"], json!(["POST"]), "{v}");
    let (_, v) = call(&cp, Method::PATCH, &path, json!({"methods": null})).await;
    assert_eq!(v["methods"], Value::Null, "{v}");
    // A PUT replaces the record with what it gives.
    let (s, v) = call(&cp, Method::PUT, &path, json!({"hosts": ["a.test"]})).await;
    assert_eq!(s, 200, "{v}");
    for field in ["methods", "paths", "tags"] {
        assert_eq!(v[field], Value::Null, "{field}: {v}");
    }
    // The declarative export keeps the difference.
    let (_, v) = call(&cp, Method::PATCH, &path, json!({"paths": []})).await;
    assert_eq!(v["paths"], json!([]), "{v}");
    let config = cp.get("/config?format=json").await.unwrap();
    assert_eq!(config["routes"][0]["paths"], json!([]), "{config}");
    assert!(config["routes"][0].get("methods").is_none(), "{config}");
    let text = config.to_string();
    assert!(!text.contains("given_empty"), "{text}");
}
