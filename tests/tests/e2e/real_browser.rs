//! Signing in through a real browser: headless Chromium, driven over WebDriver, signs in through a node
//! with django-oauth-toolkit's own login page, lands on the original URL with its identity upstream, is
//! accepted by a second node, is refused to a script without its cookies, and logs out of the gateway and
//! of the provider; and, with the demo provider, has its expired access token renewed without a new
//! login and its session ended on both nodes by a back-channel logout. Screenshots of the pages are kept
//! in `target/test-artifacts/real_browser*/`.

use std::sync::atomic::Ordering;

use fantoccini::{Client, Locator};
use serde_json::json;

use demo::idp::{DemoIdp, IdpSetup};
use tests::dot::Dot;
use tests::headless::{Engine, Headless};
use tests::{ControlPlane, DataPlane, EchoUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_django_oauth_toolkit_in_chromium_and_logs_out() {
    let Some(chrome) = Headless::start_or_skip("real_browser", Engine::Chromium).await else {
        return;
    };
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    let callback = format!("{}/app/callback", dp.proxy_url);
    let dot = Dot::start_for_browsers(&callback);
    let web = &dot.info["clients"]["web"];
    cp.post("/services", json!({"name": "web", "url": up.url}))
        .await;
    cp.post("/services/web/routes", json!({"paths": ["/app"]}))
        .await;
    cp.post(
        "/services/web/plugins",
        json!({"name": "openid-connect", "config": {
            "issuer": dot.issuer, "client_id": [web["client_id"]], "client_secret": [web["client_secret"]],
            "auth_methods": ["authorization_code", "session"],
            "session_secret": "a-session-secret-of-at-least-32-characters",
            "redirect_uri": [callback], "preserve_query_args": true, "display_errors": true,
            "logout_uri_suffix": "/logout", "logout_methods": ["GET", "POST"],
            "logout_redirect_uri": [callback],
            "upstream_headers_claims": ["sub"], "upstream_headers_names": ["x-user"],
        }}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let c = &chrome.client;

    // The person opens the app: the provider's login page, reached through the gateway's redirect.
    c.goto(&format!("{}/app/orders?page=2", dp.proxy_url))
        .await
        .unwrap();
    chrome.wait_for_text("id=\"sign-in\"").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&format!("http://127.0.0.1:{}/", dot.info["port"])));
    chrome.screenshot("1-login-page").await;
    fill_in_login(c).await;

    // Back on the original URL, query included, with the identity upstream.
    let page = chrome.wait_for_text("x-user").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.as_str(), format!("{}/app/orders?page=2", dp.proxy_url));
    assert!(page.contains("page=2"), "{page}");
    assert!(page.contains("\"authorization\":\"Bearer "), "{page}");
    chrome.screenshot("2-signed-in").await;

    // A second node accepts the session (cookies are per host, whatever the port).
    let other = DataPlane::start(&cp).await;
    other.wait_version(cp.version().await).await;
    c.goto(&format!("{}/app/elsewhere", other.proxy_url))
        .await
        .unwrap();
    let page = chrome.wait_for_text("/elsewhere").await;
    assert!(page.contains("x-user"), "{page}");

    // A script of the page is let through with the session and refused without it.
    let status = |credentials: &'static str| {
        let c = c.clone();
        async move {
            let script = format!(
                "const done = arguments[0]; fetch('/app/api', {{credentials: '{credentials}'}}).then(r => done(r.status));"
            );
            c.execute_async(&script, vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(status("same-origin").await, 200);
    assert_eq!(status("omit").await, 401);

    // Logging out ends the gateway's session and the provider's: the next visit asks for the password.
    c.goto(&format!("{}/app/logout", dp.proxy_url))
        .await
        .unwrap();
    chrome.wait_for_text("id=\"sign-in\"").await;
    chrome.screenshot("3-after-logout").await;
    c.goto(&format!("{}/app/orders", dp.proxy_url))
        .await
        .unwrap();
    chrome.wait_for_text("id=\"sign-in\"").await;
    assert!(!c.source().await.unwrap().contains("x-user"));

    // With a sign-in pending, an answer whose state is not its own is refused with the reason shown on
    // an error page, not sent round again.
    c.goto(&format!("{callback}?code=x&state=forged"))
        .await
        .unwrap();
    let page = chrome.wait_for_text("state does not match").await;
    assert!(page.contains("Unauthorized"), "{page}");
    // A browser asked for HTML, so the error is a page (Kong's error template), not JSON.
    assert!(page.contains("<h1>Error</h1>"), "{page}");
    assert_eq!(c.title().await.unwrap(), "Error");
    chrome.screenshot("4-forged-answer").await;
    chrome.stop().await;
}

/// Types alex's name and password into the provider's login form and submits it.
async fn fill_in_login(c: &Client) {
    for (field, value) in [("username", "alex"), ("password", "doe")] {
        let input = c.find(Locator::Id(field)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    let button = c.find(Locator::Id("sign-in")).await.unwrap();
    button.click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_renewed_without_a_login_and_ended_on_every_node_by_the_provider() {
    let Some(chrome) = Headless::start_or_skip("real_browser_backchannel", Engine::Chromium).await
    else {
        return;
    };
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = DemoIdp::start(listener, IdpSetup::default()).await;
    let (dp, other) = (DataPlane::start(&cp).await, DataPlane::start(&cp).await);
    cp.post("/services", json!({"name": "web", "url": up.url}))
        .await;
    cp.post("/services/web/routes", json!({"paths": ["/app"]}))
        .await;
    cp.post(
        "/services/web/plugins",
        json!({"name": "openid-connect", "config": {
            "issuer": idp.issuer, "client_id": ["app"], "client_secret": ["app-secret"],
            "auth_methods": ["authorization_code", "session"],
            "session_secret": "a-session-secret-of-at-least-32-characters",
            "backchannel_logout_uri_suffix": "/backchannel-logout",
            "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x-user"],
        }}),
    )
    .await;
    let version = cp.version().await;
    dp.wait_version(version).await;
    other.wait_version(version).await;
    idp.set_backchannel_logout_uri("app", &format!("{}/app/backchannel-logout", dp.proxy_url));
    // Every access token is reported as expiring at once: each use of the session renews it.
    idp.set_expires_in(Some(0));
    let c = &chrome.client;

    c.goto(&format!("{}/app/orders", dp.proxy_url))
        .await
        .unwrap();
    chrome.wait_for_text("id=\"sign-in\"").await;
    fill_in_login(c).await;
    chrome.wait_for_text("x-user").await;
    let refreshes = || idp.stats().refresh_calls.load(Ordering::SeqCst);
    let before = refreshes();

    // The other node renews the expired access token with the refresh token: no login page.
    c.goto(&format!("{}/app/renewed", other.proxy_url))
        .await
        .unwrap();
    let page = chrome.wait_for_text("/renewed").await;
    assert!(page.contains("alex"), "{page}");
    assert!(refreshes() > before, "the access token was renewed");
    assert_eq!(idp.sign_ins(), 1, "no second login");
    chrome.screenshot("1-renewed").await;

    // The provider ends alex's sessions: the logout token reaches the first node, and the second node
    // refuses the session too: the browser is sent back to the login page.
    assert_eq!(idp.end_sessions_of("alex").await, [200]);
    for node in [&other, &dp] {
        let url = format!("{}/app/after-logout", node.proxy_url);
        tests::eventually(tests::PATIENCE, "the session is refused", || async {
            c.goto(&url).await.unwrap();
            let page = c.source().await.unwrap();
            page.contains("id=\"sign-in\"").then_some(())
        })
        .await;
    }
    chrome.screenshot("2-after-backchannel-logout").await;
    assert_eq!(idp.sign_ins(), 1);
    chrome.stop().await;
}
