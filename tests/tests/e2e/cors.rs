//! `cors` end to end: preflights answered by the node before authentication, the CORS fields on actual
//! requests (and on an authentication plugin's 401), origins exact and by expression, and preflights
//! sent on to the upstream unauthenticated when `openid-connect`'s `run_on_preflight` is false.

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use demo::idp::{DemoIdp, IdpSetup};
use tests::{client, ControlPlane, DataPlane, EchoUpstream};

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    up: EchoUpstream,
    idp: DemoIdp,
}

/// A node with a service on `/api` protected by `openid-connect` (bearer tokens, `oidc` merged into its
/// config) and `cors` with `cors`.
async fn env_with(cors: Value, oidc: Value) -> Env {
    let cp = ControlPlane::start().await;
    let idp = DemoIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        IdpSetup::default(),
    )
    .await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "api", "url": up.url}))
        .await;
    cp.post("/services/api/routes", json!({"paths": ["/api"]}))
        .await;
    let mut config = json!({"issuer": idp.issuer, "client_id": ["kong"], "client_secret": ["kong-secret"], "auth_methods": ["bearer"]});
    for (k, v) in oidc.as_object().unwrap() {
        config[k] = v.clone();
    }
    cp.post(
        "/services/api/plugins",
        json!({"name": "openid-connect", "config": config}),
    )
    .await;
    cp.post(
        "/services/api/plugins",
        json!({"name": "cors", "config": cors}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    Env { cp, dp, up, idp }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(dp: &DataPlane, method: Method, headers: &[(&str, &str)]) -> Answer {
    let mut r = client().request(method, format!("{}/api/things", dp.proxy_url));
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    let resp = r.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

const PREFLIGHT: [(&str, &str); 3] = [
    ("origin", "https://app.example.com"),
    ("access-control-request-method", "PUT"),
    ("access-control-request-headers", "authorization,x-trace"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_is_answered_by_the_node_before_authentication() {
    let e = env_with(
        json!({"origins": ["https://app.example.com", r"https://.*\.partner\.test"], "methods": ["GET", "PUT"], "max_age": 600, "credentials": true, "private_network": true}),
        json!({}),
    )
    .await;
    let mut headers = PREFLIGHT.to_vec();
    headers.push(("access-control-request-private-network", "true"));
    let a = send(&e.dp, Method::OPTIONS, &headers).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.field("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(a.field("access-control-allow-methods"), Some("GET,PUT"));
    assert_eq!(
        a.field("access-control-allow-headers"),
        Some("authorization,x-trace"),
        "the requested headers are echoed when none are configured"
    );
    assert_eq!(a.field("access-control-max-age"), Some("600"));
    assert_eq!(a.field("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        a.field("access-control-allow-private-network"),
        Some("true")
    );
    assert_eq!(a.field("vary"), Some("Origin"));
    assert!(a.body.is_empty());
    assert_eq!(e.up.requests(), 0, "the upstream never saw the preflight");

    // An origin that matches no entry gets no Access-Control-Allow-Origin.
    let a = send(
        &e.dp,
        Method::OPTIONS,
        &[
            ("origin", "https://evil.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.field("access-control-allow-origin").is_none());

    // An expression matches the whole host: partner subdomains yes, a look-alike no.
    let origin_for = |o: &'static str| [("origin", o), ("access-control-request-method", "GET")];
    let a = send(
        &e.dp,
        Method::OPTIONS,
        &origin_for("https://eu.partner.test"),
    )
    .await;
    assert_eq!(
        a.field("access-control-allow-origin"),
        Some("https://eu.partner.test")
    );
    let a = send(
        &e.dp,
        Method::OPTIONS,
        &origin_for("https://eu.partner.test.evil.test"),
    )
    .await;
    assert!(a.field("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_requests_and_refusals_carry_the_cors_fields() {
    let e = env_with(
        json!({"origins": ["https://app.example.com", "https://admin.example.com"], "exposed_headers": ["x-request-id", "x-total"], "credentials": true}),
        json!({}),
    )
    .await;
    // No token: openid-connect's 401, readable by the browser app because it carries the CORS fields.
    let a = send(&e.dp, Method::GET, &[("origin", "https://app.example.com")]).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(
        a.field("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(a.field("access-control-allow-credentials"), Some("true"));
    assert!(a.field("www-authenticate").is_some());

    let token = e.idp.issue("alex", "kong", "openid", json!({}));
    let bearer = format!("Bearer {token}");
    let a = send(
        &e.dp,
        Method::GET,
        &[
            ("origin", "https://admin.example.com"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.field("access-control-allow-origin"),
        Some("https://admin.example.com"),
        "{:?}",
        a.headers
    );
    assert_eq!(
        a.field("access-control-expose-headers"),
        Some("x-request-id,x-total")
    );
    assert!(a
        .headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().contains("Origin")));

    // A request from an origin not listed is proxied, without the fields that would let a page read it.
    let a = send(
        &e.dp,
        Method::GET,
        &[("origin", "https://evil.test"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.field("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_sent_on_skip_authentication_only_when_run_on_preflight_is_false() {
    let e = env_with(
        json!({"preflight_continue": true}),
        json!({"run_on_preflight": false}),
    )
    .await;
    let a = send(&e.dp, Method::OPTIONS, &PREFLIGHT).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(e.up.requests(), 1, "the upstream answered the preflight");
    let echoed: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(echoed["method"], "OPTIONS");

    // With run_on_preflight (Kong's default) the same preflight must authenticate.
    let plugins = e.cp.get("/plugins").await.unwrap();
    let oidc = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openid-connect")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) =
        e.cp.call(
            Method::PATCH,
            &format!("/plugins/{oidc}"),
            Some(json!({"config": {"run_on_preflight": true}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    e.dp.wait_version(e.cp.version().await).await;
    let a = send(&e.dp, Method::OPTIONS, &PREFLIGHT).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(e.up.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_cannot_be_scoped_to_a_consumer() {
    let cp = ControlPlane::start().await;
    cp.post("/consumers", json!({"username": "c"})).await;
    let (s, v) = cp
        .call(
            Method::POST,
            "/plugins",
            Some(json!({"name": "cors", "consumer": {"id": cp.get("/consumers/c").await.unwrap()["id"]}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["fields"]["consumer"], "value must be null");
    let (s, v) = cp
        .call(
            Method::POST,
            "/plugins",
            Some(json!({"name": "cors", "config": {"origins": ["(bad"], "methods": ["FETCH"]}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["fields"]["config"]["origins"][0],
        "'(bad' is not a valid regex"
    );
    assert!(v["fields"]["config"]["methods"].is_array());
}
