//! End-to-end tests of `openid-connect` against the development identity provider, which verifies every
//! client authentication it receives.

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

use demo::idp::{Client, DemoIdp, IdpSetup};
use platform::unix_now;
use tests::{client, eventually, ControlPlane, DataPlane, EchoUpstream, PATIENCE};

pub(crate) struct Env {
    pub(crate) cp: ControlPlane,
    pub(crate) dp: DataPlane,
    pub(crate) idp: DemoIdp,
    _up: EchoUpstream,
}

async fn idp() -> DemoIdp {
    DemoIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        IdpSetup::default(),
    )
    .await
}

pub(crate) async fn env_with(config: Value) -> Env {
    let cp = ControlPlane::start().await;
    let idp = idp().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "svc", "url": up.url}))
        .await;
    cp.post("/services/svc/routes", json!({"paths": ["/api"]}))
        .await;
    let mut cfg =
        json!({"issuer": idp.issuer, "client_id": ["kong"], "client_secret": ["kong-secret"]});
    if let Value::Object(m) = config {
        for (k, v) in m {
            cfg[k] = v;
        }
    }
    cp.post(
        "/services/svc/plugins",
        json!({"name": "openid-connect", "config": cfg}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    Env {
        cp,
        dp,
        idp,
        _up: up,
    }
}

pub(crate) async fn get(
    dp: &DataPlane,
    req: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = req(client().get(format!("{}/api", dp.proxy_url)))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let h = r.headers().clone();
    (s, h, r.json().await.unwrap_or(Value::Null))
}

/// The `x-introspection` header the echo upstream received, decoded (base64 JSON).
fn introspection_header(echo: &Value) -> Value {
    let encoded = echo["headers"]["x-introspection"].as_str().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kong_how_to_password_then_bearer() {
    // The how-to's config: introspection and password, token in the header, client_secret_post.
    let e = env_with(json!({"client_auth": ["client_secret_post"], "auth_methods": ["introspection", "password"], "bearer_token_param_type": ["header"]})).await;
    // Step 1: curl --user alex:doe → the gateway exchanges the password and forwards the token.
    let (s, _, body) = get(&e.dp, |r| r.basic_auth("alex", Some("doe"))).await;
    assert_eq!(s, 200, "{body}");
    let auth = body["headers"]["authorization"].as_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap().to_string();
    assert_eq!(
        e.idp.stats().last_client_auth.lock().unwrap().as_deref(),
        Some("client_secret_post")
    );
    // Step 2: the token as a bearer token is introspected.
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(body["headers"]["x-credential-identifier"], "alex");
    let (s, h, body) = get(&e.dp, |r| r.bearer_auth("garbage")).await;
    assert_eq!((s, body), (401, json!({"message": "Unauthorized"})));
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
    let (s, h, _) = get(&e.dp, |r| r).await;
    assert_eq!(s, 401);
    let www = h["www-authenticate"].to_str().unwrap();
    assert!(
        www.starts_with("Bearer realm=\"127.0.0.1\"") && !www.contains("error="),
        "{www}"
    );
    let (s, _, _) = get(&e.dp, |r| r.basic_auth("alex", Some("wrong"))).await;
    assert_eq!(s, 401);
    // Token-endpoint results are cached: the same credentials do not call the token endpoint again.
    let calls = e.idp.stats().token_calls.load(Ordering::SeqCst);
    get(&e.dp, |r| r.basic_auth("alex", Some("doe"))).await;
    assert_eq!(e.idp.stats().token_calls.load(Ordering::SeqCst), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_checks_signature_time_and_issuer() {
    let e = env_with(json!({"auth_methods": ["bearer"]})).await;
    let good = e.idp.issue("alex", "app", "read", json!({}));
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&good)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["authorization"], format!("Bearer {good}"));
    assert_eq!(
        e.idp.stats().introspection_calls.load(Ordering::SeqCst),
        0,
        "JWTs are verified locally"
    );
    let iss = e.idp.issuer.clone();
    for (what, claims) in [
        (
            "expired",
            json!({"iss": iss, "sub": "a", "exp": unix_now() - 60}),
        ),
        (
            "not yet valid",
            json!({"iss": iss, "sub": "a", "exp": unix_now() + 600, "nbf": unix_now() + 300}),
        ),
        (
            "wrong issuer",
            json!({"iss": "https://evil.example", "sub": "a", "exp": unix_now() + 600}),
        ),
        ("no exp", json!({"iss": iss, "sub": "a"})),
        // Registered claims of the wrong type are invalid tokens, never skipped.
        ("no iss", json!({"sub": "a", "exp": unix_now() + 600})),
        (
            "iss as a number",
            json!({"iss": 42, "sub": "a", "exp": unix_now() + 600}),
        ),
        (
            "iss as an array",
            json!({"iss": [iss], "sub": "a", "exp": unix_now() + 600}),
        ),
        (
            "nbf as a string in the future",
            json!({"iss": iss, "sub": "a", "exp": unix_now() + 600, "nbf": (unix_now() + 300).to_string()}),
        ),
        (
            "exp as a string",
            json!({"iss": iss, "sub": "a", "exp": (unix_now() + 600).to_string()}),
        ),
        (
            "iat as a string",
            json!({"iss": iss, "sub": "a", "exp": unix_now() + 600, "iat": "now"}),
        ),
        (
            "aud as a number",
            json!({"iss": iss, "sub": "a", "exp": unix_now() + 600, "aud": 7}),
        ),
        (
            "azp as an array",
            json!({"iss": iss, "sub": "a", "exp": unix_now() + 600, "azp": ["app"]}),
        ),
    ] {
        let token = e.idp.sign(&claims);
        let (s, _, _) = get(&e.dp, |r| r.bearer_auth(&token)).await;
        assert_eq!(s, 401, "{what}");
    }
    // RFC 7515 §4.1.11: a critical extension the gateway does not understand is refused, even with a
    // valid signature; the same header without `crit` is accepted.
    let claims = json!({"iss": iss, "sub": "a", "exp": unix_now() + 600});
    let plain = e.idp.sign_with_header(&json!({}), &claims);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&plain)).await.0, 200);
    let critical = e.idp.sign_with_header(
        &json!({"crit": ["urn:example:pop"], "urn:example:pop": true}),
        &claims,
    );
    assert_eq!(
        get(&e.dp, |r| r.bearer_auth(&critical)).await.0,
        401,
        "crit"
    );
    // A token signed by a key the issuer never published.
    let other = idp().await;
    let foreign = other.sign(&json!({"iss": iss, "sub": "a", "exp": unix_now() + 600}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&foreign)).await.0, 401);
    // Tampered payload.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"iss": iss, "sub": "root", "exp": unix_now() + 600}).to_string());
    assert_eq!(get(&e.dp, |r| r.bearer_auth(parts.join("."))).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_triggers_one_rate_limited_rediscovery() {
    let e = env_with(json!({"auth_methods": ["bearer"], "rediscovery_lifetime": 30})).await;
    let t1 = e.idp.issue("alex", "app", "read", json!({}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&t1)).await.0, 200);
    let jwks_before = e.idp.stats().jwks_calls.load(Ordering::SeqCst);
    e.idp.rotate_key("key-2");
    let t2 = e.idp.issue("alex", "app", "read", json!({}));
    assert_eq!(
        get(&e.dp, |r| r.bearer_auth(&t2)).await.0,
        200,
        "new kid accepted after rediscovery"
    );
    assert_eq!(
        e.idp.stats().jwks_calls.load(Ordering::SeqCst),
        jwks_before + 1
    );
    // Another unknown kid within the rediscovery lifetime does not refetch.
    e.idp.rotate_key("key-3");
    let t3 = e.idp.issue("alex", "app", "read", json!({}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&t3)).await.0, 401);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&t3)).await.0, 401);
    assert_eq!(
        e.idp.stats().jwks_calls.load(Ordering::SeqCst),
        jwks_before + 1,
        "rediscovery is rate-limited"
    );
    let issuers = tests::get_json(&format!("{}/status/issuers", e.dp.status_url)).await;
    assert_eq!(issuers["data"][0]["issuer"], e.idp.issuer);
    assert_eq!(
        issuers["data"][0]["keys"],
        json!(["key-2", "key-1"]),
        "the node's read-only issuer view"
    );
    // Old keys still work.
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&t1)).await.0, 200);
    // Purging the discovery cache from the control plane lets the node fetch the new keys.
    let (s, _) =
        e.cp.call(Method::DELETE, "/openid-connect/issuers", None)
            .await
            .unwrap();
    assert_eq!(s, 204);
    eventually(PATIENCE, "node refetches keys after purge", || async {
        (get(&e.dp, |r| r.bearer_auth(&t3)).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_authentication_method() {
    // A private key for private_key_jwt: the node signs with the private JWK, the IdP verifies with the public one.
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    let pkcs8 = key.serialize_der();
    let d_pos = pkcs8.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let (x, y, d) = (
        b(&raw[1..33]),
        b(&raw[33..65]),
        b(&pkcs8[d_pos..d_pos + 32]),
    );
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    ] {
        let mut cfg = json!({"auth_methods": ["password"], "client_auth": [method]});
        let e = env_with(json!({})).await;
        match method {
            "private_key_jwt" => {
                e.idp.add_client(
                    "kong",
                    Client {
                        secret: Some("kong-secret".into()),
                        jwk: Some(
                            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "gw"}),
                        ),
                    },
                );
                cfg["client_jwk"] =
                    json!([{"kty": "EC", "crv": "P-256", "x": x, "y": y, "d": d, "kid": "gw"}]);
            }
            "none" => {
                e.idp.add_client(
                    "public-gw",
                    Client {
                        secret: None,
                        jwk: None,
                    },
                );
                cfg["client_id"] = json!(["public-gw"]);
                cfg["client_secret"] = json!([]);
            }
            _ => {}
        }
        let plugin = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, body) =
            e.cp.call(
                Method::PATCH,
                &format!("/plugins/{plugin}"),
                Some(json!({"config": cfg})),
            )
            .await
            .unwrap();
        assert_eq!(s, 200, "{method}: {body}");
        e.dp.wait_version(e.cp.version().await).await;
        let (s, _, body) = get(&e.dp, |r| r.basic_auth("bob", Some("builder"))).await;
        assert_eq!(s, 200, "{method}: {body}");
        assert_eq!(
            e.idp.stats().last_client_auth.lock().unwrap().as_deref(),
            Some(method),
            "the IdP verified {method}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_and_introspection_of_opaque_tokens() {
    let e = env_with(json!({"auth_methods": ["introspection", "client_credentials"], "upstream_introspection_header": "x-introspection"})).await;
    e.idp.set_jwt_access_tokens(false);
    let (s, _, body) = get(&e.dp, |r| r.basic_auth("app", Some("app-secret"))).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    let decoded = introspection_header(&body);
    assert_eq!(decoded["client_id"], "app");
    assert_eq!(decoded["active"], true);
    assert_eq!(
        get(&e.dp, |r| r.basic_auth("app", Some("nope"))).await.0,
        401
    );
    // An opaque bearer token is introspected; results are cached.
    let opaque = e.idp.issue("alex", "app", "read", json!({}));
    let before = e.idp.stats().introspection_calls.load(Ordering::SeqCst);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&opaque)).await.0, 200);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&opaque)).await.0, 200);
    assert_eq!(
        e.idp.stats().introspection_calls.load(Ordering::SeqCst),
        before + 1
    );
    // The identity provider down: 503, nothing cached, service comes back with it.
    e.idp.set_down(true);
    let fresh = e.idp.issue("bob", "app", "read", json!({}));
    let (s, h, body) = get(&e.dp, |r| r.bearer_auth(&fresh)).await;
    assert_eq!(s, 503, "{body}");
    assert!(h.contains_key("retry-after"));
    e.idp.set_down(false);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&fresh)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_jwt_introspection_responses_are_verified() {
    // RFC 9701: the issuer signs the introspection result; the gateway checks it before trusting it.
    let e = env_with(json!({
        "auth_methods": ["introspection"],
        "introspection_accept": "application/token-introspection+jwt",
        "upstream_introspection_header": "x-introspection",
        "cache_introspection": false,
    }))
    .await;
    e.idp.set_jwt_access_tokens(false);
    let opaque = e.idp.issue("alex", "kong", "read", json!({}));
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&opaque)).await;
    assert_eq!(s, 200, "{body}");
    let decoded = introspection_header(&body);
    assert_eq!(decoded["sub"], "alex");
    assert_eq!(decoded["active"], true);
    // A signed `active: false` is an answer about the token: 401.
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth("never-issued")).await;
    assert_eq!(s, 401, "{body}");
    // A response signed with a key outside the issuer's JWKS is not trusted: 503, never 200.
    e.idp.set_forge_introspection_responses(true);
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&opaque)).await;
    assert_eq!(s, 503, "{body}");
    e.idp.set_forge_introspection_responses(false);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&opaque)).await.0, 200);
    // Envelopes whose registered claims are missing or of the wrong type are not trusted either.
    let iss = e.idp.issuer.clone();
    for (what, overrides) in [
        ("no iss", json!({"iss": null})),
        ("iss as an array", json!({"iss": [iss]})),
        ("iss as a number", json!({"iss": 1})),
        ("no aud", json!({"aud": null})),
        ("aud naming another client", json!({"aud": "someone-else"})),
        ("aud as a number", json!({"aud": 5})),
        ("no iat", json!({"iat": null})),
        ("iat as a string", json!({"iat": "now"})),
        ("expired", json!({"exp": unix_now() - 60})),
        (
            "nbf as a string",
            json!({"nbf": (unix_now() + 300).to_string()}),
        ),
    ] {
        e.idp.set_introspection_envelope_overrides(overrides);
        let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&opaque)).await;
        assert_eq!(s, 503, "{what}: {body}");
    }
    e.idp.set_introspection_envelope_overrides(json!({}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&opaque)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_audience_issuers_and_consumers() {
    let e = env_with(json!({
        "auth_methods": ["bearer"],
        "scopes_required": ["admin", "read write"],
        "audience_required": ["portcullis"],
        "consumer_claim": ["sub"],
        "consumer_by": ["username"],
        "upstream_headers_claims": ["tenant"],
        "upstream_headers_names": ["x-tenant"],
        "display_errors": true
    }))
    .await;
    let alex = e.cp.post("/consumers", json!({"username": "alex"})).await;
    e.dp.wait_version(e.cp.version().await).await;
    let ok = e
        .idp
        .issue("alex", "app", "read write", json!({"tenant": "acme"}));
    let (s, _, body) = get(&e.dp, |r| {
        r.bearer_auth(&ok).header("x-consumer-id", "spoofed")
    })
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-consumer-id"], alex["id"]);
    assert_eq!(body["headers"]["x-consumer-username"], "alex");
    assert_eq!(body["headers"]["x-tenant"], "acme");
    let admin_only = e.idp.issue("alex", "app", "admin", json!({}));
    assert_eq!(
        get(&e.dp, |r| r.bearer_auth(&admin_only)).await.0,
        200,
        "alternatives are ORed"
    );
    let read_only = e.idp.issue("alex", "app", "read", json!({}));
    let (s, h, body) = get(&e.dp, |r| r.bearer_auth(&read_only)).await;
    assert_eq!(s, 403, "words inside one alternative are ANDed");
    assert!(
        body["message"].as_str().unwrap().starts_with("Forbidden ("),
        "display_errors appends the reason: {body}"
    );
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    let wrong_aud = e.idp.issue("alex", "app", "admin", json!({"aud": "other"}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&wrong_aud)).await.0, 403);
    let unknown = e.idp.issue("carol", "app", "admin", json!({}));
    assert_eq!(
        get(&e.dp, |r| r.bearer_auth(&unknown)).await.0,
        403,
        "no consumer and consumer_optional is false"
    );
    // issuers_allowed.
    let plugin = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    e.cp.call(
        Method::PATCH,
        &format!("/plugins/{plugin}"),
        Some(json!({"config": {"issuers_allowed": ["https://only-this.example"]}})),
    )
    .await
    .unwrap();
    e.dp.wait_version(e.cp.version().await).await;
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&ok)).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hide_credentials_and_anonymous() {
    let e = env_with(json!({"auth_methods": ["bearer", "password"], "hide_credentials": true, "upstream_access_token_header": null, "bearer_token_param_type": ["query", "header"]})).await;
    let t = e.idp.issue("alex", "app", "read", json!({}));
    let r = client()
        .get(format!("{}/api?access_token={t}&keep=1", e.dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["query"], "keep=1",
        "only the credential used is removed"
    );
    let (_, _, body) = get(&e.dp, |r| r.basic_auth("alex", Some("doe"))).await;
    assert!(
        body["headers"].get("authorization").is_none(),
        "basic credentials hidden and no token forwarded"
    );
    // Anonymous.
    e.cp.post("/consumers", json!({"username": "guest"})).await;
    let plugin = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    e.cp.call(
        Method::PATCH,
        &format!("/plugins/{plugin}"),
        Some(json!({"config": {"anonymous": "guest"}})),
    )
    .await
    .unwrap();
    e.dp.wait_version(e.cp.version().await).await;
    let (s, _, body) = get(&e.dp, |r| r).await;
    assert_eq!(s, 200);
    assert_eq!(body["headers"]["x-anonymous-consumer"], "true");
    assert_eq!(body["headers"]["x-consumer-username"], "guest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_are_listed_on_the_control_plane() {
    let e = env_with(json!({"auth_methods": ["bearer"]})).await;
    let list = e.cp.get("/openid-connect/issuers").await.unwrap();
    let issuers = list["data"].as_array().unwrap();
    assert_eq!(issuers.len(), 1);
    assert_eq!(issuers[0]["issuer"], e.idp.issuer);
    assert_eq!(
        issuers[0]["configuration"]["token_endpoint"],
        format!("{}/token", e.idp.issuer)
    );
    assert_eq!(issuers[0]["keys"]["keys"][0]["kid"], "key-1");
    let id = issuers[0]["id"].as_str().unwrap();
    assert_eq!(
        e.cp.get(&format!("/openid-connect/issuers/{id}"))
            .await
            .unwrap()["issuer"],
        e.idp.issuer
    );
    let enc = url::form_urlencoded::byte_serialize(e.idp.issuer.as_bytes()).collect::<String>();
    assert_eq!(
        e.cp.get(&format!("/openid-connect/issuers/{enc}"))
            .await
            .unwrap()["id"],
        id
    );
    assert_eq!(
        e.cp.call(
            Method::DELETE,
            &format!("/openid-connect/issuers/{id}"),
            None
        )
        .await
        .unwrap()
        .0,
        204
    );
    assert_eq!(
        e.cp.call(Method::GET, "/openid-connect/issuers/nope", None)
            .await
            .unwrap()
            .0,
        404
    );
}
