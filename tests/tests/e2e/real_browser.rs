//! Signing in through a real browser: headless Chromium, driven over WebDriver, signs in through a node
//! with django-oauth-toolkit's own login page, lands on the original URL with its identity upstream, is
//! accepted by a second node, is refused to a script without its cookies, and logs out of the gateway and
//! of the provider. Screenshots of the pages are kept in `target/test-artifacts/real_browser/`.

use fantoccini::Locator;
use serde_json::json;

use tests::chrome::Chrome;
use tests::dot::Dot;
use tests::{ControlPlane, DataPlane, EchoUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_django_oauth_toolkit_in_chromium_and_logs_out() {
    let chrome = match Chrome::start("real_browser").await {
        Ok(c) => c,
        Err(missing) => {
            eprintln!("SKIPPED: a_person_signs_in_with_django_oauth_toolkit_in_chromium_and_logs_out: {missing} is missing");
            return;
        }
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
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("alex")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("doe")
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

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
