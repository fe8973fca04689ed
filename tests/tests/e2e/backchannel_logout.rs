//! OpenID Connect Back-Channel Logout: the identity provider posts a logout token to one node; the
//! sessions it names end on every node (through the control plane, and across control planes sharing
//! PostgreSQL), a node that connects later learns of it, and every malformed token gets a 400 with why.

use std::time::Instant;

use serde_json::{json, Value};

use demo::idp::{DemoIdp, IdpSetup};
use tests::browser::{sign_in, Browser};
use tests::postgres::Postgres;
use tests::{client, eventually, metric, ControlPlane, DataPlane, EchoUpstream, PATIENCE};

const SECRET: &str = "a-session-secret-of-at-least-32-characters";
const SUFFIX: &str = "/backchannel-logout";

/// The route `/app` on `cp` behind browser sign-in with back-channel logout; the nodes' version.
async fn protect(cp: &ControlPlane, idp: &DemoIdp, upstream: &str) -> u64 {
    cp.post("/services", json!({"name": "web", "url": upstream}))
        .await;
    cp.post("/services/web/routes", json!({"paths": ["/app"]}))
        .await;
    cp.post(
        "/services/web/plugins",
        json!({"name": "openid-connect", "config": {
            "issuer": idp.issuer, "client_id": ["app"], "client_secret": ["app-secret"],
            "auth_methods": ["authorization_code", "session"], "session_secret": SECRET,
            "display_errors": true, "backchannel_logout_uri_suffix": SUFFIX,
            "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x-user"],
        }}),
    )
    .await;
    cp.version().await
}

async fn idp() -> DemoIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    DemoIdp::start(listener, IdpSetup::default()).await
}

/// The status a script's request to `url` with `b`'s cookies gets (200: the session is accepted).
async fn status(b: &Browser, url: &str) -> u16 {
    let mut req = client().get(url).header("accept", "application/json");
    if let Some(c) = b.cookie_header() {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Waits until `b`'s session is refused at `url`; how long that took.
async fn refused_within(b: &Browser, url: &str) -> std::time::Duration {
    let started = Instant::now();
    eventually(PATIENCE, "the session is refused", || async {
        (status(b, url).await == 401).then_some(())
    })
    .await;
    started.elapsed()
}

/// Posts a logout token (`None`: a form without one) to `url`: status and body.
async fn post_logout(url: &str, token: Option<&str>) -> (u16, Value) {
    let form: Vec<(&str, &str)> = token.map(|t| vec![("logout_token", t)]).unwrap_or_default();
    let r = client().post(url).form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    let cache = r.headers().get("cache-control").cloned();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == 200 || status == 400 {
        assert_eq!(cache.unwrap(), "no-store", "{body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_token_ends_the_session_on_every_node_and_later_ones() {
    let cp = ControlPlane::start().await;
    let idp = idp().await;
    let up = EchoUpstream::start().await;
    let (dp, other) = (DataPlane::start(&cp).await, DataPlane::start(&cp).await);
    let version = protect(&cp, &idp, &up.url).await;
    dp.wait_version(version).await;
    other.wait_version(version).await;
    let logout_uri = format!("{}/app{SUFFIX}", dp.proxy_url);
    idp.set_backchannel_logout_uri("app", &logout_uri);

    // Two sessions of the same person (two browsers), both valid on both nodes.
    let (mut first, mut second) = (Browser::new(), Browser::new());
    for b in [&mut first, &mut second] {
        let (landed, _) = sign_in(b, &idp, &format!("{}/app", dp.proxy_url)).await;
        assert_eq!(landed.status, 302, "{}", landed.body);
    }
    let urls = [
        format!("{}/app", dp.proxy_url),
        format!("{}/app", other.proxy_url),
    ];
    for url in &urls {
        assert_eq!(status(&first, url).await, 200);
        assert_eq!(status(&second, url).await, 200);
    }
    let sids = idp.sids_of("alex");
    assert_eq!(sids.len(), 2);

    // The provider ends the first sign-in (by sid): that session ends on both nodes, the other lives.
    let token = idp.sign_logout_token(&idp.logout_claims("app", Some(&sids[0]), Some("alex")));
    assert_eq!(
        post_logout(&logout_uri, Some(&token)).await,
        (200, json!({}))
    );
    let here = refused_within(&first, &urls[0]).await;
    let there = refused_within(&first, &urls[1]).await;
    println!("session refused {here:?} after the logout on the receiving node, {there:?} later on the other");
    for url in &urls {
        assert_eq!(status(&second, url).await, 200, "another session of alex");
    }
    // A browser that follows a link with the ended session is sent to sign in again.
    let page = first.open(&urls[1]).await;
    assert_eq!(page.status, 302);
    assert!(page.location().starts_with(&idp.issuer));
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("session=;")),
        "{:?}",
        page.set_cookies()
    );

    // The same token again is a replay.
    let (code, body) = post_logout(&logout_uri, Some(&token)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // Ending every session of alex at the provider (by sid and sub) ends the second one everywhere.
    assert_eq!(idp.end_sessions_of("alex").await, [200, 200]);
    refused_within(&second, &urls[0]).await;
    refused_within(&second, &urls[1]).await;

    // The control plane kept them, one per session named (the first sid was named twice): it lists
    // them, counts what it received, and a node that connects later refuses the sessions too.
    let kept = cp.get("/clustering/session-revocations").await.unwrap();
    assert_eq!(kept["total"], 2, "{kept}");
    assert!(kept["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["issuer"] == idp.issuer));
    let (code, cp_metrics) = cp
        .call(reqwest::Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let cp_metrics = cp_metrics.as_str().unwrap().to_string();
    // The first sid named again within the same second tells nothing new and is not sent.
    let sent = metric(&cp_metrics, "portcullis_cp_session_revocations_total", &[]);
    assert!((2.0..=3.0).contains(&sent), "{sent}");
    let late = DataPlane::start(&cp).await;
    late.wait_version(version).await;
    refused_within(&second, &format!("{}/app", late.proxy_url)).await;
    let received = |text: &str, source: &str| {
        metric(
            text,
            "portcullis_session_revocations_total",
            &[("source", source)],
        )
    };
    assert_eq!(received(&dp.metrics().await, "identity_provider"), 3.0);
    // The repeated one counts where it moved the revocation's time (a later second).
    let relayed = received(&other.metrics().await, "control_plane");
    assert!((2.0..=3.0).contains(&relayed), "{relayed}");
    assert_eq!(received(&late.metrics().await, "control_plane"), 2.0);

    // Signing in again makes a new session, which the old revocations do not end.
    let (landed, _) = sign_in(&mut first, &idp, &urls[0]).await;
    assert_eq!(landed.status, 302);
    assert_eq!(status(&first, &urls[1]).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_logout_tokens_are_refused_with_the_reason() {
    let cp = ControlPlane::start().await;
    let idp = idp().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    dp.wait_version(protect(&cp, &idp, &up.url).await).await;
    let url = format!("{}/app{SUFFIX}", dp.proxy_url);
    let claims = |edit: &dyn Fn(&mut Value)| {
        let mut c = idp.logout_claims("app", Some("sid-1"), Some("alex"));
        edit(&mut c);
        c
    };
    let now = platform::unix_now();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "logout_token is missing"),
        ("not.a.jwt".into(), "malformed JWT"),
        (
            idp.sign_logout_token(&claims(&|c| c["aud"] = json!("kong"))),
            "aud does not name this client",
        ),
        (
            idp.sign_logout_token(&claims(&|c| c["nonce"] = json!("n"))),
            "must not hold a nonce",
        ),
        (
            idp.sign_logout_token(&claims(&|c| c["events"] = json!({}))),
            "back-channel logout event",
        ),
        (
            idp.sign_logout_token(&claims(&|c| {
                c["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": "x"})
            })),
            "back-channel logout event",
        ),
        (
            idp.sign_logout_token(&claims(&|c| {
                c.as_object_mut().unwrap().remove("sid");
                c.as_object_mut().unwrap().remove("sub");
            })),
            "neither sid nor sub",
        ),
        (
            idp.sign_logout_token(&claims(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })),
            "jti is missing",
        ),
        (
            idp.sign_logout_token(&claims(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })),
            "iat is missing",
        ),
        (
            idp.sign_logout_token(&claims(&|c| c["iat"] = json!(now - 3600))),
            "iat is not recent",
        ),
        (
            idp.sign_logout_token(&claims(&|c| c["exp"] = json!(now - 600))),
            "rejected",
        ),
        (
            idp.sign_logout_token(&claims(&|c| c["iss"] = json!("https://elsewhere"))),
            "rejected",
        ),
        (
            idp.sign_with_header(&json!({"typ": "at+jwt"}), &claims(&|_| {})),
            "typ is not logout+jwt",
        ),
        (
            idp.sign_with_header(&json!({"kid": "not-in-the-jwks"}), &claims(&|_| {})),
            "no key",
        ),
    ];
    for (token, why) in &cases {
        let token = (!token.is_empty()).then_some(token.as_str());
        let (code, body) = post_logout(&url, token).await;
        assert_eq!(code, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{why}: {description}");
    }
    // Nothing was revoked, nothing reached the control plane.
    let kept = cp.get("/clustering/session-revocations").await.unwrap();
    assert_eq!(kept["total"], 0, "{kept}");

    // The provider unreachable: the keys it published are kept, so a valid token is still judged.
    idp.set_down(true);
    let token = idp.sign_logout_token(&claims(&|_| {}));
    assert_eq!(post_logout(&url, Some(&token)).await, (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_nodes_of_another_control_plane_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let keys = tempfile::tempdir().unwrap();
    let (a, b) = ControlPlane::pair_on_postgres(&url, keys.path()).await;
    let idp = idp().await;
    let up = EchoUpstream::start().await;
    let (on_a, on_b) = (DataPlane::start(&a).await, DataPlane::start(&b).await);
    let version = protect(&a, &idp, &up.url).await;
    on_a.wait_version(version).await;
    on_b.wait_version(version).await;
    idp.set_backchannel_logout_uri("app", &format!("{}/app{SUFFIX}", on_a.proxy_url));

    let mut browser = Browser::new();
    let (landed, _) = sign_in(&mut browser, &idp, &format!("{}/app", on_a.proxy_url)).await;
    assert_eq!(landed.status, 302);
    let on_b_url = format!("{}/app", on_b.proxy_url);
    assert_eq!(status(&browser, &on_b_url).await, 200);

    assert_eq!(idp.end_sessions_of("alex").await, [200]);
    let took = refused_within(&browser, &on_b_url).await;
    println!("refused on the other control plane's node {took:?} after the logout");
    // Kept in the database: either control plane lists it.
    for cp in [&a, &b] {
        let kept = cp.get("/clustering/session-revocations").await.unwrap();
        assert_eq!(kept["total"], 1, "{kept}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_never_reached_makes_logout_tokens_wait_with_503() {
    let cp = ControlPlane::start().await;
    let idp = idp().await;
    let up = EchoUpstream::start().await;
    let version = protect(&cp, &idp, &up.url).await;
    // The node starts after the provider went down: it never saw the discovery document or the keys.
    idp.set_down(true);
    let dp = DataPlane::start(&cp).await;
    dp.wait_version(version).await;
    let url = format!("{}/app{SUFFIX}", dp.proxy_url);
    let token = idp.sign_logout_token(&idp.logout_claims("app", Some("sid-1"), Some("alex")));
    let (code, body) = post_logout(&url, Some(&token)).await;
    assert_eq!(
        code, 503,
        "a token that cannot be judged is neither accepted nor refused: {body}"
    );
    let kept = cp.get("/clustering/session-revocations").await.unwrap();
    assert_eq!(kept["total"], 0, "{kept}");

    // Once the provider answers, the same token is judged and accepted.
    idp.set_down(false);
    eventually(PATIENCE, "the logout token is accepted", || async {
        (post_logout(&url, Some(&token)).await == (200, json!({}))).then_some(())
    })
    .await;
}
