//! End-to-end tests of `oauth2-introspection`: control plane → data plane → test identity provider and
//! recording upstream.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::idp::Mode;
use tests::{client, eventually, metric, ControlPlane, DataPlane, EchoUpstream, TestIdp, PATIENCE};

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    idp: TestIdp,
    _up: EchoUpstream,
}

/// A cluster with one node, a service `echo` on `/echo` protected by `oauth2-introspection` with `config`.
async fn env_with(config: Value) -> Env {
    let cp = ControlPlane::start().await;
    let idp = TestIdp::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    configure(&cp, &idp, &up, config).await;
    let v = cp.version().await;
    dp.wait_version(v).await;
    Env {
        cp,
        dp,
        idp,
        _up: up,
    }
}

async fn configure(cp: &ControlPlane, idp: &TestIdp, up: &EchoUpstream, extra: Value) {
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "echo-route", "paths": ["/echo"]}),
    )
    .await;
    let mut config = json!({"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            config[k] = v;
        }
    }
    cp.post(
        "/services/echo/plugins",
        json!({"name": "oauth2-introspection", "config": config}),
    )
    .await;
}

async fn call(
    dp: &DataPlane,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = client().request(method, format!("{}{}", dp.proxy_url, path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn future_exp(secs: i64) -> i64 {
    platform::unix_now() + secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_token_is_proxied_with_credential_headers() {
    let e = env_with(json!({})).await;
    let exp = future_exp(600);
    e.idp.add_token("good", json!({"scope": "read write", "client_id": "app1", "username": "alice", "token_type": "Bearer", "exp": exp, "iat": 1, "nbf": 1, "sub": "u-1", "aud": ["api", "other"], "iss": "https://idp", "jti": "j1"}));
    let (s, h, body) = call(&e.dp, Method::GET, "/echo/hello?x=1", Some("good")).await;
    assert_eq!(s, 200, "{body}");
    assert!(h.get("x-request-id").is_none() || !h["x-request-id"].is_empty());
    let hs = &body["headers"];
    assert_eq!(hs["x-credential-scope"], "read write");
    assert_eq!(hs["x-credential-client-id"], "app1");
    assert_eq!(hs["x-credential-identifier"], "alice");
    assert_eq!(hs["x-credential-token-type"], "Bearer");
    assert_eq!(hs["x-credential-exp"], exp.to_string());
    assert_eq!(hs["x-credential-sub"], "u-1");
    assert_eq!(hs["x-credential-aud"], "api,other");
    assert_eq!(hs["x-credential-iss"], "https://idp");
    assert_eq!(hs["x-credential-jti"], "j1");
    assert_eq!(
        hs["authorization"], "Bearer good",
        "token kept without hide_credentials"
    );
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");
    let last = e.idp.last().unwrap();
    assert_eq!(last.form["token"], "good");
    assert_eq!(last.headers["authorization"], e.idp.authorization);
    assert_eq!(
        last.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(last.headers["accept"], "application/json");
    assert!(!last.form.contains_key("token_type_hint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_table() {
    let e = env_with(json!({})).await;
    // No token.
    let (s, h, body) = call(&e.dp, Method::GET, "/echo", None).await;
    assert_eq!(s, 401);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "The access token is missing"})
    );
    assert_eq!(h["www-authenticate"], "Bearer realm=\"service\"");
    // Inactive token.
    let (s, h, body) = call(&e.dp, Method::GET, "/echo", Some("junk")).await;
    assert_eq!(s, 401);
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "The access token is invalid or has expired"})
    );
    assert_eq!(
        h["www-authenticate"],
        "Bearer realm=\"service\", error=\"invalid_token\", error_description=\"The access token is invalid or has expired\""
    );
    // Identity provider failures: 503 with Retry-After, never naming the token.
    e.idp.add_token("t-500", json!({"exp": future_exp(600)}));
    for (mode, token, class) in [
        (Mode::Status(500), "t-500", "HTTP 500"),
        (Mode::NotJson, "t-500", "not JSON"),
    ] {
        e.idp.set_mode(mode);
        let (s, h, body) = call(&e.dp, Method::GET, "/echo", Some(token)).await;
        assert_eq!(s, 503, "{body}");
        assert!(h.contains_key("retry-after"));
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(class), "{msg}");
        assert!(!msg.contains(token));
    }
    e.idp.set_mode(Mode::Normal);
    let (s, _, _) = call(&e.dp, Method::GET, "/echo", Some("t-500")).await;
    assert_eq!(
        s, 200,
        "first request after the identity provider is back succeeds"
    );
    // An `active: true` answer with registered claims of the wrong type is a broken provider (503); one
    // whose `exp` has passed or whose `nbf` is ahead is an answer about the token (401).
    e.idp.add_token("t-exp-string", json!({"exp": "tomorrow"}));
    e.idp.add_token(
        "t-iss-array",
        json!({"iss": ["https://idp"], "exp": future_exp(600)}),
    );
    e.idp
        .add_token("t-aud-number", json!({"aud": 3, "exp": future_exp(600)}));
    for token in ["t-exp-string", "t-iss-array", "t-aud-number"] {
        let (s, _, body) = call(&e.dp, Method::GET, "/echo", Some(token)).await;
        assert_eq!(s, 503, "{token}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("invalid claims"),
            "{body}"
        );
    }
    e.idp
        .add_token("t-expired", json!({"exp": future_exp(-60)}));
    e.idp.add_token(
        "t-early",
        json!({"nbf": future_exp(300), "exp": future_exp(600)}),
    );
    for token in ["t-expired", "t-early"] {
        assert_eq!(
            call(&e.dp, Method::GET, "/echo", Some(token)).await.0,
            401,
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_identity_provider_answer_503() {
    let port = tests::closed_port().await;
    let e =
        env_with(json!({"introspection_url": format!("http://127.0.0.1:{port}/introspect")})).await;
    let (s, _, body) = call(&e.dp, Method::GET, "/echo", Some("any")).await;
    assert_eq!(s, 503);
    assert!(
        body["message"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    // A slow identity provider hits the plugin's timeout.
    let cp = &e.cp;
    let plugins = cp.get("/plugins").await.unwrap();
    let id = plugins["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = cp
        .call(
            Method::PATCH,
            &format!("/plugins/{id}"),
            Some(
                json!({"config": {"introspection_url": e.idp.introspection_url(), "timeout": 200}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    e.dp.wait_version(cp.version().await).await;
    e.idp.set_mode(Mode::Slow(Duration::from_millis(1500)));
    let (s, _, body) = call(&e.dp, Method::GET, "/echo", Some("any")).await;
    assert_eq!(s, 503);
    assert!(
        body["message"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_provider_call_for_200_concurrent_requests() {
    let e = env_with(json!({})).await;
    e.idp.add_token("burst", json!({"exp": future_exp(600)}));
    e.idp.set_mode(Mode::Slow(Duration::from_millis(300)));
    let c = client();
    let url = format!("{}/echo", e.dp.proxy_url);
    let reqs = (0..200).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.get(url)
                .bearer_auth("burst")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(reqs).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(e.idp.calls(), 1, "exactly one identity-provider call");
    let m = e.dp.metrics().await;
    assert_eq!(
        metric(
            &m,
            "portcullis_plugin_events_total",
            &[("plugin", "oauth2-introspection"), ("event", "idp_call")]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "portcullis_plugin_events_total", &[("event", "miss")]),
        1.0
    );
    assert_eq!(
        metric(&m, "portcullis_plugin_events_total", &[("event", "hit")]),
        199.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_is_capped_by_exp_and_negative_results_expire() {
    let e = env_with(json!({"ttl": 3600, "negative_ttl": 1})).await;
    // A token expiring in 1 s is cached for at most 1 s even though ttl is an hour.
    e.idp.add_token("short", json!({"exp": future_exp(1)}));
    assert_eq!(
        call(&e.dp, Method::GET, "/echo", Some("short")).await.0,
        200
    );
    assert_eq!(
        call(&e.dp, Method::GET, "/echo", Some("short")).await.0,
        200
    );
    let after_first = e.idp.calls();
    eventually(PATIENCE, "cache entry expires with the token", || async {
        call(&e.dp, Method::GET, "/echo", Some("short")).await;
        (e.idp.calls() > after_first).then_some(())
    })
    .await;
    // active:false is cached for negative_ttl only.
    let before = e.idp.calls();
    assert_eq!(
        call(&e.dp, Method::GET, "/echo", Some("later-good"))
            .await
            .0,
        401
    );
    assert_eq!(
        call(&e.dp, Method::GET, "/echo", Some("later-good"))
            .await
            .0,
        401
    );
    assert_eq!(
        e.idp.calls(),
        before + 1,
        "negative result served from cache"
    );
    e.idp
        .add_token("later-good", json!({"exp": future_exp(600)}));
    let status = eventually(PATIENCE, "negative entry expires", || async {
        let s = call(&e.dp, Method::GET, "/echo", Some("later-good"))
            .await
            .0;
        (s == 200).then_some(s)
    })
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_errors_are_never_cached() {
    let e = env_with(json!({})).await;
    e.idp.add_token("tok", json!({"exp": future_exp(600)}));
    e.idp.set_mode(Mode::Status(502));
    assert_eq!(call(&e.dp, Method::GET, "/echo", Some("tok")).await.0, 503);
    assert_eq!(call(&e.dp, Method::GET, "/echo", Some("tok")).await.0, 503);
    assert_eq!(
        e.idp.calls(),
        2,
        "every failed call retried at the identity provider"
    );
    e.idp.set_mode(Mode::Normal);
    assert_eq!(call(&e.dp, Method::GET, "/echo", Some("tok")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_through_the_admin_api_reaches_every_node() {
    let cp = ControlPlane::start().await;
    let idp = TestIdp::start().await;
    let up = EchoUpstream::start().await;
    let dp1 = DataPlane::start(&cp).await;
    let dp2 = DataPlane::start(&cp).await;
    configure(&cp, &idp, &up, json!({"ttl": 3600})).await;
    let v = cp.version().await;
    dp1.wait_version(v).await;
    dp2.wait_version(v).await;
    idp.add_token("revoke-me", json!({"exp": future_exp(3600)}));
    for dp in [&dp1, &dp2] {
        assert_eq!(
            call(dp, Method::GET, "/echo", Some("revoke-me")).await.0,
            200
        );
    }
    assert_eq!(idp.calls(), 2);
    idp.revoke("revoke-me");
    for dp in [&dp1, &dp2] {
        assert_eq!(
            call(dp, Method::GET, "/echo", Some("revoke-me")).await.0,
            200,
            "still cached"
        );
    }
    // Purge one token by its hash: the raw token never goes to the Admin API.
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(b"revoke-me"));
    let (s, body) = cp
        .call(
            Method::DELETE,
            &format!("/cache/introspection/{hash}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data_planes"], 2);
    for dp in [&dp1, &dp2] {
        eventually(PATIENCE, "purge reaches the node", || async {
            (call(dp, Method::GET, "/echo", Some("revoke-me")).await.0 == 401).then_some(())
        })
        .await;
    }
    // A raw token is refused as a purge key.
    let (s, _) = cp
        .call(Method::DELETE, "/cache/introspection/revoke-me", None)
        .await
        .unwrap();
    assert_eq!(s, 400);
    // Purge everything.
    idp.add_token("again", json!({"exp": future_exp(3600)}));
    assert_eq!(call(&dp1, Method::GET, "/echo", Some("again")).await.0, 200);
    let calls = idp.calls();
    cp.call(Method::DELETE, "/cache/introspection", None)
        .await
        .unwrap();
    eventually(PATIENCE, "full purge", || async {
        call(&dp1, Method::GET, "/echo", Some("again")).await;
        (idp.calls() > calls).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_mapping_by_username_and_client_id() {
    let e = env_with(json!({})).await;
    let alice =
        e.cp.post(
            "/consumers",
            json!({"username": "alice", "custom_id": "cust-a"}),
        )
        .await;
    let app =
        e.cp.post(
            "/consumers",
            json!({"username": "the-app", "custom_id": "app-42"}),
        )
        .await;
    e.dp.wait_version(e.cp.version().await).await;
    e.idp.add_token(
        "t1",
        json!({"username": "alice", "client_id": "app-42", "exp": future_exp(600)}),
    );
    let (_, _, body) = call(&e.dp, Method::GET, "/echo", Some("t1")).await;
    assert_eq!(body["headers"]["x-consumer-id"], alice["id"]);
    assert_eq!(body["headers"]["x-consumer-username"], "alice");
    assert_eq!(body["headers"]["x-consumer-custom-id"], "cust-a");
    // Switch to client_id → Consumer.custom_id.
    let plugin_id = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    e.cp.call(
        Method::PATCH,
        &format!("/plugins/{plugin_id}"),
        Some(json!({"config": {"consumer_by": "client_id"}})),
    )
    .await
    .unwrap();
    e.dp.wait_version(e.cp.version().await).await;
    let (_, _, body) = call(&e.dp, Method::GET, "/echo", Some("t1")).await;
    assert_eq!(body["headers"]["x-consumer-id"], app["id"]);
    assert_eq!(body["headers"]["x-consumer-username"], "the-app");
    // No matching consumer: still proxied, without consumer headers.
    e.idp
        .add_token("t2", json!({"username": "nobody", "exp": future_exp(600)}));
    let (s, _, body) = call(&e.dp, Method::GET, "/echo", Some("t2")).await;
    assert_eq!(s, 200);
    assert!(body["headers"].get("x-consumer-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_consumer_and_spoofed_headers() {
    let cp = ControlPlane::start().await;
    let idp = TestIdp::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    // A missing anonymous consumer is a config error caught at write time.
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/echo"]}))
        .await;
    let cfg = json!({"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization, "anonymous": "guest"});
    let (s, body) = cp
        .call(
            Method::POST,
            "/services/echo/plugins",
            Some(json!({"name": "oauth2-introspection", "config": cfg.clone()})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    assert!(
        body["fields"]["config"]["anonymous"]
            .as_str()
            .unwrap()
            .contains("guest"),
        "{body}"
    );
    let guest = cp.post("/consumers", json!({"username": "guest"})).await;
    cp.post(
        "/services/echo/plugins",
        json!({"name": "oauth2-introspection", "config": cfg}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let resp = client()
        .get(format!("{}/echo", dp.proxy_url))
        .header("x-consumer-username", "admin")
        .header("x-credential-identifier", "root")
        .header("x-authenticated-userid", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let hs = &body["headers"];
    assert_eq!(hs["x-anonymous-consumer"], "true");
    assert_eq!(hs["x-consumer-id"], guest["id"]);
    assert_eq!(hs["x-consumer-username"], "guest");
    assert!(
        hs.get("x-credential-identifier").is_none(),
        "spoofed credential header removed"
    );
    assert!(hs.get("x-authenticated-userid").is_none());
    // An inactive token also falls back to anonymous.
    let (s, _, body) = call(&dp, Method::GET, "/echo", Some("junk")).await;
    assert_eq!(s, 200);
    assert_eq!(body["headers"]["x-anonymous-consumer"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lookup_and_hide_credentials() {
    let e = env_with(json!({"hide_credentials": true})).await;
    e.idp.add_token("qtok", json!({"exp": future_exp(600)}));
    let c = client();
    // Query string.
    let body: Value = c
        .get(format!("{}/echo?a=1&access_token=qtok", e.dp.proxy_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["query"], "a=1");
    // Form body.
    let body: Value = c
        .post(format!("{}/echo", e.dp.proxy_url))
        .form(&[("access_token", "qtok"), ("b", "2")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["body"], "b=2");
    // JSON body.
    let body: Value = c
        .post(format!("{}/echo", e.dp.proxy_url))
        .json(&json!({"access_token": "qtok", "c": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(body["body"].as_str().unwrap()).unwrap(),
        json!({"c": 3})
    );
    // Multipart body.
    let boundary = "XbOuNdArY";
    let mp = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\nqtok\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"d\"\r\n\r\n4\r\n--{boundary}--\r\n");
    let resp = c
        .post(format!("{}/echo", e.dp.proxy_url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(mp)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let sent = body["body"].as_str().unwrap();
    assert!(
        !sent.contains("qtok") && sent.contains("name=\"d\""),
        "{sent}"
    );
    // Header, with the `Token` scheme too.
    let body: Value = c
        .get(format!("{}/echo", e.dp.proxy_url))
        .header("authorization", "token qtok")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["headers"].get("authorization").is_none());
    // Malformed JSON body is a 400.
    let resp = c
        .post(format!("{}/echo", e.dp.proxy_url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_custom_headers_claims_hint_and_request_info() {
    let e = env_with(json!({
        "run_on_preflight": false,
        "token_type_hint": "access_token",
        "custom_introspection_headers": {"x_tenant_id": "t-9"},
        "custom_claims_forward": ["tenant", "roles"],
        "introspect_request": true
    }))
    .await;
    // OPTIONS skips the plugin.
    let (s, _, _) = call(&e.dp, Method::OPTIONS, "/echo", None).await;
    assert_eq!(s, 200);
    e.idp.add_token(
        "rich",
        json!({"tenant": "acme", "roles": ["a", "b"], "exp": future_exp(600)}),
    );
    let (s, _, body) = call(&e.dp, Method::POST, "/echo/things", Some("rich")).await;
    assert_eq!(s, 200);
    assert_eq!(body["headers"]["x-credential-tenant"], "acme");
    assert_eq!(body["headers"]["x-credential-roles"], "a,b");
    let last = e.idp.last().unwrap();
    assert_eq!(last.form["token_type_hint"], "access_token");
    assert_eq!(last.headers["x-tenant-id"], "t-9");
    assert_eq!(last.headers["x-request-path"], "/echo/things");
    assert_eq!(last.headers["x-request-http-method"], "POST");
    // GET still requires a token.
    assert_eq!(call(&e.dp, Method::GET, "/echo", None).await.0, 401);
}
