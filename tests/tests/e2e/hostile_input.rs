//! Hostile Admin API input against the real control plane: nothing crashes it, nothing that could split a
//! header or a request line is stored, and huge invalid documents cost bounded work and memory.

use reqwest::Method;
use serde_json::{json, Value};
use tests::{client, ControlPlane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INTROSPECTION: &str = "oauth2-introspection";

async fn post_form(cp: &ControlPlane, path: &str, form: &[(String, String)]) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", cp.admin_url))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn alive(cp: &ControlPlane) {
    let (s, _) = cp.call(Method::GET, "/status", None).await.unwrap();
    assert_eq!(s, 200, "the control plane still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_dotted_field_names_are_refused_without_crashing() {
    let cp = ControlPlane::start().await;
    let dots = "a.".repeat(20_000) + "b";
    // A form key expands into nested fields: refused before it is expanded.
    let (s, body) = post_form(
        &cp,
        "/services",
        &[("name".into(), "s".into()), (dots.clone(), "x".into())],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("nested deeper"));
    alive(&cp).await;
    // A JSON field whose name is full of dots is an unknown field, rendered at a bounded depth.
    for path in ["/services", "/consumers", "/plugins"] {
        let (s, body) = cp
            .call(Method::POST, path, Some(json!({ dots.clone(): 1 })))
            .await
            .unwrap();
        assert_eq!(s, 400, "{path}: {body}");
    }
    let (s, _) = cp
        .call(
            Method::POST,
            "/config",
            Some(json!({"_format_version": "3.0", "services": [{ dots.clone(): 1 }]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    alive(&cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_path_injection_is_refused_with_the_field_named() {
    let cp = ControlPlane::start().await;
    cp.post(
        "/services",
        json!({"name": "svc", "url": "http://127.0.0.1:9/"}),
    )
    .await;
    let oauth = |cfg: Value| {
        let mut c = json!({"introspection_url": "http://idp/introspect", "authorization_value": "Basic eA=="});
        for (k, v) in cfg.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"name": INTROSPECTION, "config": c})
    };
    let oidc = |cfg: Value| {
        let mut c = json!({"issuer": "http://idp", "auth_methods": ["bearer"]});
        for (k, v) in cfg.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"name": "openid-connect", "config": c})
    };
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "/services",
            json!({"host": "x", "path": "/a\r\nX-Evil: 1"}),
            vec!["path"],
        ),
        (
            "/services",
            json!({"host": "x", "path": "/a b"}),
            vec!["path"],
        ),
        (
            "/services/svc/routes",
            json!({"headers": {"x-a": ["ok\r\nX-Evil: 1"]}}),
            vec!["headers", "x-a"],
        ),
        (
            "/services/svc/routes",
            json!({"headers": {"x a": ["ok"]}}),
            vec!["headers", "x a"],
        ),
        (
            "/services/svc/routes",
            json!({"paths": ["/a\nb"]}),
            vec!["paths", "1"],
        ),
        (
            "/plugins",
            oauth(json!({"authorization_value": "Basic eA==\r\nX-Evil: 1"})),
            vec!["config", "authorization_value"],
        ),
        (
            "/plugins",
            oauth(json!({"custom_introspection_headers": {"x-key": "a\nb"}})),
            vec!["config", "custom_introspection_headers", "x-key"],
        ),
        (
            "/plugins",
            oauth(json!({"custom_introspection_headers": {"x:key": "a"}})),
            vec!["config", "custom_introspection_headers", "x:key"],
        ),
        (
            "/plugins",
            oidc(
                json!({"introspection_headers_names": ["x\r\ny"], "introspection_headers_values": ["v"]}),
            ),
            vec!["config", "introspection_headers_names", "1"],
        ),
        (
            "/plugins",
            oidc(
                json!({"introspection_headers_names": ["x"], "introspection_headers_values": ["v\r\n"]}),
            ),
            vec!["config", "introspection_headers_values", "1"],
        ),
        (
            "/plugins",
            oidc(json!({"upstream_access_token_header": "authorization\r\n:bearer"})),
            vec!["config", "upstream_access_token_header"],
        ),
        (
            "/plugins",
            oidc(json!({"upstream_introspection_header": "x y"})),
            vec!["config", "upstream_introspection_header"],
        ),
        (
            "/plugins",
            oidc(json!({"upstream_headers_claims": ["sub"], "upstream_headers_names": ["x\n"]})),
            vec!["config", "upstream_headers_names", "1"],
        ),
    ];
    let before = cp.version().await;
    for (path, body, field) in cases {
        let (s, answer) = cp
            .call(Method::POST, path, Some(body.clone()))
            .await
            .unwrap();
        assert_eq!(s, 400, "{path} {body}: {answer}");
        // Kong renders an element's position (1 for the first) as an array index.
        let mut at = &answer["fields"];
        for part in &field {
            at = match part.parse::<usize>() {
                Ok(n) => &at[n - 1],
                Err(_) => &at[*part],
            };
        }
        assert!(
            at.is_string(),
            "{path} {body}: error not at {field:?}: {answer}"
        );
    }
    assert_eq!(cp.version().await, before, "nothing was stored");
    // The same through the declarative endpoint.
    let (s, answer) = cp
        .call(
            Method::POST,
            "/config",
            Some(json!({"_format_version": "3.0", "services": [{"name": "b", "host": "x", "path": "/\r\n"}]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    assert!(
        answer["fields"]["services"][0]["path"].is_string(),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_to_the_identity_provider_are_secrets() {
    let cp = ControlPlane::start().await;
    let p = cp
        .post(
            "/plugins",
            json!({"name": INTROSPECTION, "config": {
                "introspection_url": "http://idp/introspect", "authorization_value": "Basic c2VjcmV0",
                "custom_introspection_headers": {"x-api-key": "k-123"}}}),
        )
        .await;
    assert_eq!(
        p["config"]["custom_introspection_headers"]["x-api-key"],
        "[redacted]"
    );
    let o = cp
        .post(
            "/plugins",
            json!({"name": "openid-connect", "route": null, "consumer": null, "service": null, "config": {
                "issuer": "http://idp2", "auth_methods": ["bearer"],
                "introspection_headers_names": ["x-key"], "introspection_headers_values": ["v-456"]}}),
        )
        .await;
    assert_eq!(
        o["config"]["introspection_headers_values"],
        json!(["[redacted]"])
    );
    for path in ["/plugins", "/config", "/config?format=yaml"] {
        let (_, text) = cp.call(Method::GET, path, None).await.unwrap();
        let text = text.to_string();
        assert!(
            !text.contains("k-123") && !text.contains("v-456"),
            "{path}: {text}"
        );
    }
    // Writing the placeholder back keeps the stored value.
    let id = p["id"].as_str().unwrap();
    let (s, _) = cp
        .call(
            Method::PATCH,
            &format!("/plugins/{id}"),
            Some(json!({"config": {"custom_introspection_headers": {"x-api-key": "[redacted]"}, "ttl": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    let export = cp.get("/config?format=json").await.unwrap();
    assert_eq!(export["plugins"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declarative_documents_are_bounded() {
    let cp = ControlPlane::start().await;
    // Over the body limit (16 MiB by default): 413 on the declared length, before the body is sent.
    let mut conn = tokio::net::TcpStream::connect(cp.admin_url.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /config HTTP/1.1\r\nhost: cp\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        50 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tests::within(tests::PATIENCE, "413 answer", conn.read(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A body that grows past the limit without declaring its length is cut off at the limit.
    let stream =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])));
    let r = client()
        .post(format!("{}/config", cp.admin_url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    alive(&cp).await;
    // Under the limit but full of invalid entities: the first 100 errors and a count of the rest.
    let n = 200_000;
    let doc = format!(
        "{{\"_format_version\":\"3.0\",\"services\":[{}]}}",
        vec!["{\"x\":1}"; n].join(",")
    );
    let r = client()
        .post(format!("{}/config", cp.admin_url))
        .header("content-type", "application/json")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    // Each invalid service has two errors (unknown field `x`, missing `host`).
    let shown = body["message"]
        .as_str()
        .unwrap()
        .matches("services.")
        .count();
    assert_eq!(shown, 100, "{}", &body["message"].as_str().unwrap()[..200]);
    assert_eq!(body["omitted_errors"], 2 * n - 100);
    alive(&cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_must_have_their_types_while_forms_are_read_as_text() {
    let cp = ControlPlane::start().await;
    for (body, field) in [
        (json!({"host": "x", "port": "80"}), "port"),
        (json!({"host": "x", "enabled": "true"}), "enabled"),
        (json!({"host": "x", "tags": "a"}), "tags"),
    ] {
        let (s, answer) = cp
            .call(Method::POST, "/services", Some(body))
            .await
            .unwrap();
        assert_eq!(s, 400, "{answer}");
        assert!(answer["fields"][field].is_string(), "{answer}");
    }
    let form: Vec<(String, String)> = [
        ("host", "x"),
        ("port", "8080"),
        ("enabled", "false"),
        ("tags", "a"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (s, svc) = post_form(&cp, "/services", &form).await;
    assert_eq!(s, 201, "{svc}");
    assert_eq!(
        (
            svc["port"].clone(),
            svc["enabled"].clone(),
            svc["tags"].clone()
        ),
        (json!(8080), json!(false), json!(["a"]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_document_forbids_the_server_refuses() {
    let cp = ControlPlane::start().await;
    // A PUT body may repeat the path's id but not name another one.
    let id = "5a994acc-be5c-406c-84b4-a6f98c6d6594";
    let (s, _) = cp
        .call(
            Method::PUT,
            &format!("/consumers/{id}"),
            Some(json!({"id": id, "username": "a"})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    let (s, body) = cp
        .call(
            Method::PUT,
            &format!("/consumers/{id}"),
            Some(json!({"id": "00000000-0000-0000-0000-000000000000", "username": "a"})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{body}");
    assert!(body["fields"]["id"].is_string());
    // Ids are hyphenated UUIDs; 5.0 is the integer 5; an export format is json or yaml.
    let (s, _) = cp
        .call(
            Method::POST,
            "/consumers",
            Some(json!({"id": "5a994accbe5c406c84b4a6f98c6d6595", "username": "b"})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    let (s, svc) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"host": "x", "retries": 2.0})),
        )
        .await
        .unwrap();
    assert_eq!((s, svc["retries"].clone()), (201, json!(2)));
    let (s, _) = cp
        .call(Method::GET, "/config?format=xml", None)
        .await
        .unwrap();
    assert_eq!(s, 400);
    // A URL the document does not describe is refused rather than repaired.
    for url in [
        "http://a b",
        "http://1.2.3.999",
        "http://x/a?b=1",
        "HTTP://x",
    ] {
        let (s, body) = cp
            .call(Method::POST, "/services", Some(json!({"url": url})))
            .await
            .unwrap();
        assert_eq!(s, 400, "{url}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_values_that_are_not_utf8_are_refused_with_the_field_named() {
    let cp = ControlPlane::start().await;
    let version = cp.version().await;
    let send = |content_type: &'static str, body: &'static [u8]| {
        let url = format!("{}/services", cp.admin_url);
        async move {
            let r = client()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = send(
        "application/x-www-form-urlencoded",
        b"host=example.com&name=%FF%FE",
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["fields"]["name"], "invalid value: not valid UTF-8",
        "{body}"
    );
    let (s, body) = send(
        "multipart/form-data; boundary=b",
        b"--b\r\ncontent-disposition: form-data; name=\"host\"\r\n\r\nexample.com\r\n--b\r\ncontent-disposition: form-data; name=\"tags[]\"\r\n\r\n\xff\r\n--b--\r\n",
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["fields"]["tags"], "invalid value: not valid UTF-8",
        "{body}"
    );
    // Nothing was stored.
    assert_eq!(cp.version().await, version);
    assert_eq!(cp.get("/services").await.unwrap()["data"], json!([]));
    // Valid UTF-8, escaped, is stored as it was sent.
    let (s, body) = send(
        "application/x-www-form-urlencoded",
        b"host=example.com&name=caf%C3%A9",
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["name"], "café");
    let (s, body) = send(
        "application/x-www-form-urlencoded",
        b"host=example.com&tags[]=caf%C3%A9",
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["tags"], json!(["café"]));
}
