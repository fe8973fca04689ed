//! The operator console as a browser without scripts (or curl) sees it: sign-in with the admin token, the
//! headers of every answer, CSRF and origin checks on every change, forms generated from the schemas
//! whose refusals name the field, write-only secrets, and the declarative diff and apply. The same flows
//! in Chromium are in `console_browser`.

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use tests::{ControlPlane, CpOptions};

const TOKEN: &str = "console-test-admin-token-0123";

async fn console() -> ControlPlane {
    ControlPlane::start_with(CpOptions {
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(tests::PATIENCE)
        .build()
        .unwrap()
}

/// A console, a browser signed in to it, and the session's CSRF token.
async fn signed_in() -> (ControlPlane, Client, String) {
    let cp = console().await;
    let c = browser();
    let csrf = sign_in(&c, &cp.console_url).await;
    (cp, c, csrf)
}

/// Signs in; answers the CSRF token of the session.
async fn sign_in(c: &Client, url: &str) -> String {
    let r = c
        .post(format!("{url}/login"))
        .header("origin", url)
        .form(&[("token", TOKEN), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = fetch(c, &format!("{url}/")).await;
    csrf_of(&page)
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_string()
}

async fn fetch(c: &Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

async fn post(
    c: &Client,
    url: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let r = c
        .post(format!("{url}{path}"))
        .header("origin", url)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_the_admin_token_and_guards_every_change() {
    let cp = console().await;
    let url = &cp.console_url;
    let c = browser();

    // Signed out: every page sends the browser to sign in, with the strict headers.
    let r = c
        .get(format!("{url}/entities/routes?tags=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fentities%2Froutes%3Ftags%3Da"
    );
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");

    // A wrong token is refused; a sign-in from another origin is refused.
    let (status, _, page) = post(&c, url, "/login", &[("token", "not-the-token-at-all")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong token"), "{page}");
    let r = c
        .post(format!("{url}/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());

    // The right token: an HttpOnly, SameSite=Strict cookie, and back to the page asked for.
    let r = c
        .post(format!("{url}/login"))
        .header("origin", url.as_str())
        .form(&[("token", TOKEN), ("next", "/entities/routes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/entities/routes");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN));
    let page = fetch(&c, &format!("{url}/")).await;
    assert!(page.contains("Data planes") && !page.contains(TOKEN));
    let csrf = csrf_of(&page);

    // A change without the session's CSRF token, or sent from another origin, is refused and changes
    // nothing.
    let (status, _, _) = post(&c, url, "/entities/services/new", &[("host", "a.test")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post(
        &c,
        url,
        "/entities/services/new",
        &[("csrf", &"0".repeat(64)), ("host", "a.test")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{url}/entities/services/new"))
        .header("origin", "http://127.0.0.1:1")
        .form(&[("csrf", csrf.as_str()), ("host", "a.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(cp.get("/services").await.unwrap()["data"]
        .as_array()
        .unwrap()
        .is_empty());

    // With both, the Admin API is asked, and its answer decides.
    let (status, location, _) = post(
        &c,
        url,
        "/entities/services/new",
        &[
            ("csrf", &csrf),
            ("name", "billing"),
            ("host", "billing.test"),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let stored = cp.get("/services/billing").await.unwrap();
    assert!(location.ends_with(&format!(
        "/entities/services/{}?saved=1",
        stored["id"].as_str().unwrap()
    )));

    // Signing out ends the session on the server: the old cookie no longer opens a page.
    let (status, location, _) = post(&c, url, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_follow_the_schemas_place_errors_by_field_and_never_show_a_secret() {
    let (cp, c, csrf) = signed_in().await;
    let url = &cp.console_url;

    // The API's message about a field is shown beside that field, and what was typed is kept.
    let (status, _, page) = post(
        &c,
        url,
        "/entities/services/new",
        &[
            ("csrf", &csrf),
            ("name", "orders"),
            ("host", "orders.test"),
            ("port", "70000"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains(
            r#"<p class="field-error" id="f-port-error">value should be between 0 and 65535</p>"#
        ),
        "{page}"
    );
    assert!(page.contains(r#"value="orders.test""#));
    let (status, location, _) = post(
        &c,
        url,
        "/entities/services/new",
        &[
            ("csrf", &csrf),
            ("name", "orders"),
            ("host", "orders.test"),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let service = cp.get("/services/orders").await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A plugin's form follows its own schema: its secret is a password input, never filled.
    let form = fetch(
        &c,
        &format!("{url}/entities/plugins/new?name=oauth2-introspection"),
    )
    .await;
    assert!(
        form.contains(r#"name="config.introspection_url""#),
        "{form}"
    );
    assert!(form.contains(r#"type="password" name="config.authorization_value""#));
    let secret = "Basic c2VjcmV0LW5ldmVyLXNob3du";
    let new_plugin = "/entities/plugins/new?name=oauth2-introspection";
    // Refused for another field: the secret typed is not sent back.
    let (status, _, page) = post(
        &c,
        url,
        new_plugin,
        &[
            ("csrf", &csrf),
            ("service", &service),
            ("config.authorization_value", secret),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains(r#"id="f-config-introspection_url-error""#),
        "{page}"
    );
    assert!(!page.contains("c2VjcmV0LW5ldmVyLXNob3du"));
    let (status, location, _) = post(
        &c,
        url,
        new_plugin,
        &[
            ("csrf", &csrf),
            ("service", &service),
            ("config.introspection_url", "https://idp.test/introspect"),
            ("config.authorization_value", secret),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let plugin_page = location.trim_end_matches("?saved=1").to_string();
    // Editing without retyping the secret keeps it (the Admin API still holds one).
    let (status, _, _) = post(
        &c,
        url,
        &format!("{plugin_page}/edit"),
        &[
            ("csrf", &csrf),
            ("service", &service),
            ("config.introspection_url", "https://idp.test/introspect"),
            ("config.ttl", "45"),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let plugins = cp.get("/plugins").await.unwrap();
    let stored = &plugins["data"][0];
    assert_eq!(stored["config"]["ttl"], 45);
    assert_eq!(stored["config"]["authorization_value"], "[redacted]");
    for page in [
        "/",
        "/entities/plugins",
        plugin_page.as_str(),
        &format!("{plugin_page}/edit"),
        "/config/export",
        "/operations",
    ] {
        let html = fetch(&c, &format!("{url}{page}")).await;
        assert!(
            !html.contains("c2VjcmV0LW5ldmVyLXNob3du"),
            "the secret is in {page}"
        );
    }

    // Filter by tag.
    cp.post(
        "/services",
        serde_json::json!({"name": "tagged", "host": "t.test", "tags": ["team-a"]}),
    )
    .await;
    let list = fetch(&c, &format!("{url}/entities/services?tags=team-a")).await;
    assert!(
        list.contains(">tagged<") && !list.contains(">orders<"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_document_is_diffed_then_applied() {
    let (cp, c, csrf) = signed_in().await;
    let url = &cp.console_url;
    let doc = "_format_version: '3.0'\nservices:\n- name: from-yaml\n  url: http://yaml.test:8080\n  routes:\n  - name: yaml-route\n    paths: [/yaml]\n";
    let (status, _, page) = post(
        &c,
        url,
        "/config/diff",
        &[("csrf", &csrf), ("document", doc)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("2 created, 0 updated, 0 deleted."), "{page}");
    assert!(page.contains("from-yaml") && page.contains("yaml-route"));
    // Nothing is stored by the diff.
    assert!(cp.get("/services").await.unwrap()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    let (status, _, page) = post(
        &c,
        url,
        "/config/apply",
        &[("csrf", &csrf), ("document", doc)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Applied: configuration version"), "{page}");
    assert_eq!(
        cp.get("/routes/yaml-route").await.unwrap()["paths"][0],
        "/yaml"
    );
    // The version it made heads the history, on the Admin API and on the overview.
    let versions = cp.get("/clustering/config-versions").await.unwrap();
    let newest = &versions["data"][0];
    assert_eq!(newest["version"], cp.version().await);
    assert_eq!(newest["entities"]["services"]["put"], 1, "{versions}");
    assert_eq!(newest["entities"]["routes"]["put"], 1);
    let overview = fetch(&c, &format!("{url}/")).await;
    assert!(
        overview.contains("routes: 1 put; services: 1 put"),
        "{overview}"
    );
    // A broken document is refused with the API's reason, and the text is kept for correction.
    let broken = "_format_version: '3.0'\nservices:\n- name: broken\n  port: 99999\n";
    let (status, _, page) = post(
        &c,
        url,
        "/config/diff",
        &[("csrf", &csrf), ("document", broken)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("declarative config is invalid"), "{page}");
    assert!(page.contains("port: 99999"));
    // The export is YAML that the diff reads as no change.
    let exported = fetch(&c, &format!("{url}/config/export")).await;
    let (_, _, page) = post(
        &c,
        url,
        "/config/diff",
        &[("csrf", &csrf), ("document", &exported)],
    )
    .await;
    assert!(page.contains("0 created, 0 updated, 0 deleted."), "{page}");
    let _: Value = serde_yaml::from_str(&exported).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_tokens_are_shown_once_and_pair_a_node() {
    let (cp, c, csrf) = signed_in().await;
    let url = &cp.console_url;
    let (status, _, page) = post(
        &c,
        url,
        "/operations/tokens",
        &[
            ("csrf", &csrf),
            ("ttl", "600"),
            ("max_uses", "2"),
            ("labels", "region=eu"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let at = page
        .find("<textarea id=\"token\" readonly")
        .expect("the token");
    let token = page[at..]
        .split('>')
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(token.len() > 40);
    let ops = fetch(&c, &format!("{url}/operations")).await;
    assert!(!ops.contains(&token), "the token is shown once");
    assert!(ops.contains("0 of 2") && ops.contains("region=eu"), "{ops}");
    let dp = tests::DataPlane::start_with(tests::DpOptions {
        pairing_token: Some(token),
        control_plane: Some(cp.cluster_addr.to_string()),
        ..Default::default()
    })
    .await;
    let id = dp.node_id.clone().expect("paired");
    tests::eventually(tests::PATIENCE, "the node is listed in sync", || async {
        let page = c
            .get(format!("{url}/live/nodes"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (page.contains(&id) && page.contains("status-in_sync")).then_some(())
    })
    .await;
    // The node table in pages of 100: past the last node, an empty page that links back.
    let beyond = fetch(&c, &format!("{url}/?offset=100")).await;
    assert!(
        beyond.contains("Previous 100") && beyond.contains("Nodes 101–100 of 1"),
        "{beyond}"
    );
    assert!(!beyond.contains(&format!("data-node=\"{id}\"")));
    assert!(beyond.contains(r#"data-live="/live/nodes?offset=100""#));
    // Revoked from the console: listed as revoked.
    let (status, location, _) =
        post(&c, url, &format!("/nodes/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"));
    let nodes = cp.nodes().await;
    assert_eq!(nodes[0]["status"], "revoked");
}
