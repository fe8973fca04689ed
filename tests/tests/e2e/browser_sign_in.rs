//! Signing a person in through a browser with `openid-connect` (authorization code + PKCE, sealed session
//! cookies, logout), driven over HTTP the way a browser does it: redirects followed by hand, cookies kept
//! in a jar, the identity provider's login form filled in and posted.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use demo::idp::{DemoIdp, IdpSetup};
use tests::browser::{hidden_fields, query, sign_in, Browser};
use tests::{ControlPlane, DataPlane, EchoUpstream};

const SECRET: &str = "a-session-secret-of-at-least-32-characters";

struct Env {
    cp: ControlPlane,
    dp: DataPlane,
    idp: DemoIdp,
    _up: EchoUpstream,
}

async fn env_with(config: Value) -> Env {
    let cp = ControlPlane::start().await;
    let idp = DemoIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        IdpSetup::default(),
    )
    .await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "web", "url": up.url}))
        .await;
    cp.post("/services/web/routes", json!({"paths": ["/app"]}))
        .await;
    let mut cfg = json!({
        "issuer": idp.issuer, "client_id": ["app"], "client_secret": ["app-secret"],
        "auth_methods": ["authorization_code", "session", "bearer"], "session_secret": SECRET,
        "display_errors": true, "logout_uri_suffix": "/logout",
        "upstream_id_token_header": "x-id-token",
        "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x-user"],
    });
    if let Value::Object(m) = config {
        for (k, v) in m {
            cfg[k] = v;
        }
    }
    cp.post(
        "/services/web/plugins",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_and_every_node_accepts_its_session() {
    let e = env_with(json!({"preserve_query_args": true})).await;
    let app = format!("{}/app/orders?page=2", e.dp.proxy_url);
    let mut b = Browser::new();
    let (landed, authorize) = sign_in(&mut b, &e.idp, &app).await;

    // The authorization request: code flow, this client, the request's own URL, PKCE S256.
    let q = query(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "app");
    assert_eq!(q["redirect_uri"], format!("{}/app/orders", e.dp.proxy_url));
    assert_eq!(q["scope"], "openid");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22);

    // The callback sends the person back where they were going, query included, with a session.
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(landed.location(), "/app/orders?page=2");
    let set = landed.set_cookies().join("\n");
    assert!(set.contains("session="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "not over plain http: {set}");
    assert!(
        !b.jar.contains_key("authorization"),
        "the pending sign-in is cleared"
    );
    assert!(!b.jar["session"].contains("alex"), "the session is sealed");

    // The original URL answers with the identity upstream.
    let page = b
        .open(&format!("{}{}", e.dp.proxy_url, landed.location()))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo = page.json();
    assert_eq!(echo["headers"]["x-user"], "alex");
    assert!(echo["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    assert_eq!(
        echo["headers"]["x-id-token"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    assert_eq!(echo["query"], "page=2", "{echo}");

    // Another node of the cluster accepts the same session: the secret travels in the config.
    let other = DataPlane::start(&e.cp).await;
    other.wait_version(e.cp.version().await).await;
    let page = b.open(&format!("{}/app/orders", other.proxy_url)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.json()["headers"]["x-user"], "alex");
    assert_eq!(e.idp.sign_ins(), 1, "no second login");

    // A script without a session gets 401, not a login page it cannot follow.
    let mut script = Browser::new();
    for accept in ["*/*", "application/json"] {
        let req = script
            .http
            .get(format!("{}/app", e.dp.proxy_url))
            .header("accept", accept);
        let page = script.send(req).await;
        assert_eq!(page.status, 401, "accept {accept}");
    }
    assert_eq!(
        script
            .fetch(&format!("{}/app", e.dp.proxy_url))
            .await
            .status,
        401
    );
    let req = script
        .http
        .get(format!("{}/app", e.dp.proxy_url))
        .header("accept", "text/html")
        .header("x-requested-with", "XMLHttpRequest");
    assert_eq!(script.send(req).await.status, 401);
    // With the session, the same script is let through.
    assert_eq!(
        b.fetch(&format!("{}/app", e.dp.proxy_url)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_replayed_and_foreign_sign_ins_are_refused() {
    let e = env_with(json!({})).await;
    let app = format!("{}/app", e.dp.proxy_url);

    // A session cookie altered by one character is no session: the browser signs in again, its broken
    // cookie cleared; a script is refused.
    let mut b = Browser::new();
    let (landed, _) = sign_in(&mut b, &e.idp, &app).await;
    assert_eq!(landed.status, 302);
    let good = b.jar["session"].clone();
    let mut bad = good.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    b.jar
        .insert("session".into(), String::from_utf8(bad).unwrap());
    assert_eq!(b.fetch(&app).await.status, 401);
    b.jar.insert(
        "session".into(),
        String::from_utf8(good.clone().into_bytes()).unwrap(),
    );
    let mut altered = good.into_bytes();
    altered.truncate(altered.len() - 3);
    b.jar
        .insert("session".into(), String::from_utf8(altered).unwrap());
    let again = b.open(&app).await;
    assert_eq!(again.status, 302);
    assert!(again.location().starts_with(&e.idp.issuer));
    assert!(
        !b.jar.contains_key("session"),
        "the broken cookie is cleared"
    );

    // A callback whose state differs from the pending sign-in's.
    let mut b = Browser::new();
    let start = b.open(&app).await;
    let form = b.open(&start.location()).await;
    let answer = b
        .sign_in_form(&form, &format!("{}/authorize", e.idp.issuer), "alex", "doe")
        .await;
    let callback = answer.location();
    let forged = callback.replace("state=", "state=x");
    let refused = b.open(&forged).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("state does not match"),
        "{}",
        refused.body
    );
    assert!(
        !b.jar.contains_key("authorization"),
        "the pending sign-in ends"
    );

    // The same code replayed with the pending sign-in's cookie: the provider refuses a used code.
    let mut b = Browser::new();
    let start = b.open(&app).await;
    let pending = b.jar["authorization"].clone();
    let form = b.open(&start.location()).await;
    let answer = b
        .sign_in_form(&form, &format!("{}/authorize", e.idp.issuer), "alex", "doe")
        .await;
    let callback = answer.location();
    assert_eq!(b.open(&callback).await.status, 302);
    let mut replay = Browser::new();
    replay.jar.insert("authorization".into(), pending);
    let refused = replay.open(&callback).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("code was not accepted"),
        "{}",
        refused.body
    );

    // An ID token for another sign-in (its nonce differs) or another client is refused.
    for (claims, why) in [
        (json!({"nonce": "someone-else"}), "nonce"),
        (json!({"aud": "other-client"}), "aud"),
        (json!({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}), "at_hash"),
    ] {
        e.idp.set_id_token_overrides(claims);
        let mut b = Browser::new();
        let (refused, _) = sign_in(&mut b, &e.idp, &app).await;
        assert_eq!(refused.status, 401, "{why}: {}", refused.body);
        assert!(refused.body.contains(why), "{why}: {}", refused.body);
        assert!(!b.jar.contains_key("session"));
    }
    e.idp.set_id_token_overrides(json!({}));

    // The provider's error answer is shown, not answered with another redirect.
    let mut b = Browser::new();
    let start = b.open(&app).await;
    let state = query(&start.location())["state"].clone();
    let refused = b
        .open(&format!(
            "{app}?error=access_denied&error_description=no&state={state}"
        ))
        .await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("access_denied"), "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_here_and_at_the_identity_provider() {
    let e = env_with(
        json!({"logout_redirect_uri": ["https://example.com/bye"], "logout_revoke": true}),
    )
    .await;
    let app = format!("{}/app", e.dp.proxy_url);
    let mut b = Browser::new();
    sign_in(&mut b, &e.idp, &app).await;
    assert_eq!(b.open(&app).await.status, 200);
    let echoed = b.open(&app).await.json();
    let id_token = echoed["headers"]["x-id-token"]
        .as_str()
        .unwrap()
        .to_string();
    let access_token = echoed["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();

    // GET is not a logout method by default: it is a request like any other.
    assert_eq!(b.open(&format!("{app}/logout")).await.status, 200);
    let req = b.http.post(format!("{app}/logout"));
    let out = b.send(req).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let to = out.location();
    assert!(to.starts_with(&format!("{}/logout?", e.idp.issuer)), "{to}");
    let q = query(&to);
    assert_eq!(q["id_token_hint"], id_token);
    assert_eq!(q["post_logout_redirect_uri"], "https://example.com/bye");
    assert!(
        !b.jar.contains_key("session"),
        "the session cookie is cleared"
    );
    // logout_revoke: the session's tokens revoked at the provider (refresh and access token).
    assert!(e.idp.is_revoked(&access_token));
    assert_eq!(e.idp.stats().revocations.load(Ordering::SeqCst), 2);
    let bye = b.open(&to).await;
    assert_eq!(bye.location(), "https://example.com/bye");
    assert_eq!(e.idp.stats().end_session_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        e.idp.stats().last_id_token_hint.lock().unwrap().as_deref(),
        Some(id_token.as_str())
    );
    // Signed out: the next visit signs in again.
    let next = b.open(&app).await;
    assert_eq!(next.status, 302);
    assert!(next.location().starts_with(&e.idp.issuer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_answer_and_a_token_response_complete_the_sign_in() {
    let e = env_with(
        json!({"response_mode": "form_post", "login_action": "response",
        "login_tokens": ["id_token", "access_token"], "session_cookie_same_site": "Strict"}),
    )
    .await;
    let app = format!("{}/app", e.dp.proxy_url);
    let mut b = Browser::new();
    let start = b.open(&app).await;
    assert_eq!(query(&start.location())["response_mode"], "form_post");
    let form = b.open(&start.location()).await;
    let answer = b
        .sign_in_form(&form, &format!("{}/authorize", e.idp.issuer), "alex", "doe")
        .await;
    // The provider's page posts the code and state back to the callback.
    assert_eq!(answer.status, 200);
    let fields = hidden_fields(&answer.body);
    assert!(fields.iter().any(|(k, _)| k == "code"), "{}", answer.body);
    let req = b.http.post(&app).form(&fields);
    let done = b.send(req).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let tokens = done.json();
    assert_eq!(tokens["id_token"].as_str().unwrap().split('.').count(), 3);
    assert!(tokens["access_token"].is_string());
    assert!(tokens.get("refresh_token").is_none());
    assert!(done.set_cookies().join(" ").contains("SameSite=Strict"));
    assert_eq!(b.open(&app).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_renewed_once_and_a_refused_renewal_signs_in_again() {
    let e = env_with(json!({})).await;
    // Every token the provider issues from now on is reported as expiring at once.
    e.idp.set_expires_in(Some(0));
    let app = format!("{}/app", e.dp.proxy_url);
    let mut b = Browser::new();
    sign_in(&mut b, &e.idp, &app).await;
    let cookie = b.cookie_header().unwrap();

    // Eight requests of the session at once: one refresh grant, the same renewed token upstream for
    // all, and the renewed session cookie on every answer.
    let before = e.idp.stats().refresh_calls.load(Ordering::SeqCst);
    let requests = (0..8).map(|_| {
        b.http
            .get(&app)
            .header("accept", "text/html")
            .header("cookie", cookie.clone())
            .send()
    });
    let mut tokens = std::collections::BTreeSet::new();
    let mut renewed = None;
    for r in futures::future::join_all(requests).await {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(set.iter().any(|c| c.starts_with("session=")), "{set:?}");
        renewed = Some(set);
        let echo: Value = r.json().await.unwrap();
        tokens.insert(
            echo["headers"]["authorization"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        e.idp.stats().refresh_calls.load(Ordering::SeqCst) - before,
        1
    );
    assert_eq!(tokens.len(), 1, "{tokens:?}");

    // The renewed cookie holds the renewed tokens (and the rotated refresh token): its next use, expired
    // again, renews once more.
    for c in renewed.unwrap() {
        let (name, value) = c.split(';').next().unwrap().split_once('=').unwrap();
        b.jar.insert(name.into(), value.into());
    }
    assert_eq!(b.open(&app).await.status, 200);
    assert_eq!(
        e.idp.stats().refresh_calls.load(Ordering::SeqCst) - before,
        2
    );

    // The provider refuses the next renewal: the session ends, the browser signs in again.
    e.idp.revoke_refresh_tokens();
    let again = b.open(&app).await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert!(again.location().starts_with(&e.idp.issuer));
    assert!(
        !b.jar.contains_key("session"),
        "the ended session's cookie is cleared"
    );
    assert_eq!(e.idp.sign_ins(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_makes_a_session_secret_when_none_is_given() {
    let e = env_with(json!({"session_secret": null})).await;
    let plugin = e.cp.get("/plugins").await.unwrap()["data"][0].clone();
    assert_eq!(plugin["config"]["session_secret"], json!(["[redacted]"]));
    let app = format!("{}/app", e.dp.proxy_url);
    let mut b = Browser::new();
    let (landed, _) = sign_in(&mut b, &e.idp, &app).await;
    assert_eq!(landed.status, 302, "{}", landed.body);

    // Another node opens the session with the secret it got in the configuration.
    let other = DataPlane::start(&e.cp).await;
    other.wait_version(e.cp.version().await).await;
    let page = b.open(&format!("{}/app", other.proxy_url)).await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Replacing the plugin without a secret keeps the one it has: nobody is signed out.
    let id = plugin["id"].as_str().unwrap();
    let mut body = plugin.clone();
    body["config"]["session_secret"] = json!(null);
    for field in ["id", "created_at", "updated_at"] {
        body.as_object_mut().unwrap().remove(field);
    }
    let (s, v) =
        e.cp.call(reqwest::Method::PUT, &format!("/plugins/{id}"), Some(body))
            .await
            .unwrap();
    assert_eq!(s, 200, "{v}");
    let version = e.cp.version().await;
    e.dp.wait_version(version).await;
    other.wait_version(version).await;
    assert_eq!(b.open(&app).await.status, 200);
    assert_eq!(e.idp.sign_ins(), 1);
}
