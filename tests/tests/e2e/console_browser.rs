//! The operator console in real browsers: headless Chromium and Firefox, driven over WebDriver, sign in
//! with the admin token (a wrong one refused; the right one with the keyboard alone, then the skip link),
//! watch two real nodes in sync and one of them go away without a reload, protect a route with
//! `oauth2-introspection` through the forms (an invalid field answered beside the field, the secret never
//! on a page again), are refused a form posted from another origin, and diff then apply a YAML document.
//! Each scenario runs in both browsers; screenshots of every page are kept in
//! `target/test-artifacts/console_browser*/` (Firefox's under `*_firefox`).

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tests::headless::{Engine, Headless};
use tests::{ControlPlane, CpOptions, DataPlane, EchoUpstream, PATIENCE};

const TOKEN: &str = "console-browser-admin-token-42";

async fn control_plane() -> ControlPlane {
    ControlPlane::start_with(CpOptions {
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
}

async fn sign_in(browser: &Headless, url: &str, token: &str) {
    let c = &browser.client;
    c.goto(url).await.unwrap();
    browser.wait_for_text("id=\"token\"").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Presses `key` on whatever has the focus, as a person at a keyboard does.
async fn press(c: &Client, key: Key) {
    let value: char = key.into();
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value })
        .then(KeyAction::Up { value });
    c.perform_actions(keys).await.unwrap();
}

/// The `id` and `class` of the element that has the focus.
async fn focused(c: &Client) -> (String, String) {
    let e = c.active_element().await.unwrap();
    let attr = |name| {
        let e = e.clone();
        async move { e.attr(name).await.unwrap().unwrap_or_default() }
    };
    (attr("id").await, attr("class").await)
}

/// Signs in with the keyboard alone: the token field has the focus, typing the token and Enter submit
/// it; on the page then shown, the first Tab reaches the skip link and Enter on it moves to the content.
async fn sign_in_by_keyboard(browser: &Headless, url: &str, token: &str) {
    let c = &browser.client;
    c.goto(url).await.unwrap();
    browser.wait_for_text("id=\"token\"").await;
    assert_eq!(focused(c).await.0, "token", "the token field has the focus");
    c.active_element()
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    press(c, Key::Enter).await;
    browser.wait_for_text("Data planes").await;
    press(c, Key::Tab).await;
    assert_eq!(
        focused(c).await.1,
        "skip",
        "the first Tab reaches the skip link"
    );
    press(c, Key::Enter).await;
    tests::eventually(PATIENCE, "the skip link followed", || async {
        let at = c.current_url().await.ok()?;
        (at.fragment() == Some("main")).then_some(())
    })
    .await;
}

async fn submit(c: &Client) {
    c.find(Locator::Css("main form.entity button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn fill(c: &Client, id: &str, value: &str) {
    let input = c.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// Picks the option labelled `label` of the select `id`.
async fn choose(c: &Client, id: &str, label: &str) {
    let select = c.find(Locator::Id(id)).await.unwrap();
    select.select_by_label(label).await.unwrap();
}

/// The page's HTML once `check` holds for it.
async fn wait_until(c: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    tests::eventually(PATIENCE, what, || async {
        c.source().await.ok().filter(|s| check(s))
    })
    .await
}

/// The table row of node `id` in a page.
fn row<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let at = page.find(&format!("data-node=\"{id}\""))?;
    let rest = &page[at..];
    Some(&rest[..rest.find("</tr>")?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_and_sees_a_node_go_away_without_a_reload() {
    sees_a_node_go_away(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_firefox_an_operator_signs_in_and_sees_a_node_go_away_without_a_reload() {
    sees_a_node_go_away(Engine::Firefox).await;
}

async fn sees_a_node_go_away(engine: Engine) {
    let Some(browser) = Headless::start_or_skip("console_browser", engine).await else {
        return;
    };
    let cp = control_plane().await;
    let (first, mut second) = (DataPlane::start(&cp).await, DataPlane::start(&cp).await);
    let ids = [
        first.node_id.clone().unwrap(),
        second.node_id.clone().unwrap(),
    ];
    cp.wait_in_sync(&ids).await;
    let c = browser.client.clone();

    sign_in(&browser, &cp.console_url, "a-wrong-token-of-some-length").await;
    browser.wait_for_text("Wrong token").await;
    browser.screenshot("1-wrong-token").await;
    sign_in_by_keyboard(&browser, &cp.console_url, TOKEN).await;
    wait_until(&c, "both nodes shown in sync", |p| {
        ids.iter()
            .all(|id| row(p, id).is_some_and(|r| r.contains("status-in_sync")))
    })
    .await;
    browser.screenshot("2-cluster").await;

    // The second node stops: its row says so within the heartbeat timeout, the page never reloaded.
    c.execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    second.stop().await;
    wait_until(&c, "the stopped node shown disconnected", |p| {
        row(p, &ids[1]).is_some_and(|r| r.contains("status-disconnected"))
            && row(p, &ids[0]).is_some_and(|r| r.contains("status-connected"))
    })
    .await;
    let same_page = c
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        serde_json::json!(true),
        "the page was not reloaded"
    );
    browser.screenshot("3-node-disconnected").await;

    // At a phone's width the page still shows the nodes.
    c.set_window_size(390, 844).await.unwrap();
    browser.screenshot("4-phone-width").await;
    c.set_window_size(1280, 800).await.unwrap();
    browser.stop().await;
    drop(first);
}

/// A page of another origin whose form posts to the console.
async fn hostile_page(console: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let html = format!(
        "<!DOCTYPE html><html><body><form method=\"post\" action=\"{console}/entities/services/new\">\
         <input name=\"name\" value=\"planted\"><input name=\"host\" value=\"evil.test\">\
         <button id=\"go\" type=\"submit\">Win a prize</button></form></body></html>"
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_protects_a_route_through_the_forms() {
    protects_a_route(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_firefox_an_operator_protects_a_route_through_the_forms() {
    protects_a_route(Engine::Firefox).await;
}

async fn protects_a_route(engine: Engine) {
    let Some(browser) = Headless::start_or_skip("console_browser_forms", engine).await else {
        return;
    };
    let cp = control_plane().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    let upstream_port = up
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let c = browser.client.clone();
    let console = cp.console_url.clone();
    sign_in(&browser, &console, TOKEN).await;
    browser.wait_for_text("Data planes").await;

    // A YAML document: what it changes, then applied.
    c.goto(&format!("{console}/config")).await.unwrap();
    let doc =
        "_format_version: '3.0'\nservices:\n- name: from-yaml\n  url: http://yaml.test:8080\n";
    c.find(Locator::Id("document"))
        .await
        .unwrap()
        .send_keys(doc)
        .await
        .unwrap();
    submit(&c).await;
    let page = browser.wait_for_text("id=\"summary\"").await;
    assert!(page.contains("1 created, 0 updated, 0 deleted."), "{page}");
    browser.screenshot("0-config-diff").await;
    c.find(Locator::Css("form[action=\"/config/apply\"] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("Applied: configuration version")
        .await;
    assert_eq!(
        cp.get("/services/from-yaml").await.unwrap()["host"],
        "yaml.test"
    );

    // A service: an out-of-range port is answered beside the field.
    c.goto(&format!("{console}/entities/services/new"))
        .await
        .unwrap();
    fill(&c, "f-name", "shop").await;
    fill(&c, "f-host", "127.0.0.1").await;
    fill(&c, "f-port", "70000").await;
    submit(&c).await;
    let page = browser.wait_for_text("id=\"f-port-error\"").await;
    assert!(
        page.contains("value should be between 0 and 65535"),
        "{page}"
    );
    browser.screenshot("1-field-error").await;
    fill(&c, "f-port", &upstream_port).await;
    submit(&c).await;
    browser.wait_for_text("Saved.").await;
    browser.screenshot("2-service").await;

    // A route of it.
    c.goto(&format!("{console}/entities/routes/new"))
        .await
        .unwrap();
    choose(&c, "f-service", "shop").await;
    fill(&c, "f-paths", "/shop").await;
    submit(&c).await;
    browser.wait_for_text("Saved.").await;

    // oauth2-introspection on the service, chosen from the enabled plugins.
    c.goto(&format!("{console}/entities/plugins/new"))
        .await
        .unwrap();
    c.find(Locator::LinkText("oauth2-introspection"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for_text("config.introspection_url").await;
    let secret = "Basic c2VjcmV0LWluLWEtYnJvd3Nlcg==";
    choose(&c, "f-service", "shop").await;
    fill(
        &c,
        "f-config-introspection_url",
        "http://127.0.0.1:9/introspect",
    )
    .await;
    fill(&c, "f-config-authorization_value", secret).await;
    browser.screenshot("3-plugin-form").await;
    submit(&c).await;
    browser.wait_for_text("Saved.").await;
    browser.screenshot("4-plugin").await;
    let plugin_page = c.current_url().await.unwrap().path().to_string();

    // The route is protected on the node: no token, no entry.
    dp.wait_version(cp.version().await).await;
    let r = reqwest::get(format!("{}/shop", dp.proxy_url))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The secret is on no page afterwards.
    for page in [
        "/",
        "/entities/plugins",
        &plugin_page,
        &format!("{plugin_page}/edit"),
        "/config",
        "/operations",
    ] {
        c.goto(&format!("{console}{page}")).await.unwrap();
        let html = c.source().await.unwrap();
        assert!(
            !html.contains("c2VjcmV0LWluLWEtYnJvd3Nlcg"),
            "the secret is in {page}"
        );
    }
    browser.screenshot("5-plugin-edit-without-secret").await;
    c.goto(&format!("{console}/entities/plugins"))
        .await
        .unwrap();
    browser.screenshot("6-plugins").await;

    // A form of another origin posting to the console is refused, and nothing is made.
    let hostile = hostile_page(&console).await;
    c.goto(&hostile).await.unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for_text("Refused").await;
    browser.screenshot("7-cross-origin-refused").await;
    let (status, _) = cp
        .call(reqwest::Method::GET, "/services/planted", None)
        .await
        .unwrap();
    assert_eq!(status, 404);

    browser.stop().await;
}
