//! Browser sessions kept on a Redis server (`session_storage: redis`): the cookie holds only a sealed id,
//! every node finds the session on the shared server, logout deletes it, a session deleted on the server
//! ends at once, a back-channel logout deletes the sessions it names, and a server that cannot be reached
//! answers 503, never another store.

use serde_json::json;

use demo::idp::{DemoIdp, IdpSetup};
use tests::browser::{sign_in, Browser};
use tests::redis::Redis;
use tests::{ControlPlane, DataPlane, EchoUpstream};

const SECRET: &str = "a-session-secret-of-at-least-32-characters";
const REDIS_PASSWORD: &str = "session-store-secret-91d0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_redis_are_shared_by_nodes_and_end_when_deleted() {
    let mut redis = Redis::start_with(Some(REDIS_PASSWORD));
    let cp = ControlPlane::start().await;
    let idp = DemoIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        IdpSetup::default(),
    )
    .await;
    let _up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    let other = DataPlane::start(&cp).await;
    cp.post("/services", json!({"name": "web", "url": _up.url}))
        .await;
    cp.post("/services/web/routes", json!({"paths": ["/app"]}))
        .await;
    let plugin = cp
        .post(
            "/services/web/plugins",
            json!({"name": "openid-connect", "config": {
                "issuer": idp.issuer, "client_id": ["app"], "client_secret": ["app-secret"],
                "auth_methods": ["authorization_code", "session"], "session_secret": SECRET,
                "logout_uri_suffix": "/logout", "logout_methods": ["GET"],
                "backchannel_logout_uri_suffix": "/backchannel-logout",
                "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x-user"],
                "session_storage": "redis",
                "redis": {"host": redis.host(), "port": redis.port, "password": REDIS_PASSWORD, "timeout": 500, "prefix": "gw-sessions"},
            }}),
        )
        .await;
    // The store's password is a secret like the session secret.
    assert_eq!(plugin["config"]["redis"]["password"], "[redacted]");
    let version = cp.version().await;
    dp.wait_version(version).await;
    other.wait_version(version).await;

    let app = format!("{}/app", dp.proxy_url);
    let mut b = Browser::new();
    let (landed, _) = sign_in(&mut b, &idp, &app).await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    // Only a sealed id travels: one small cookie, however large the tokens.
    let cookie = b.jar["session"].clone();
    assert!(cookie.len() < 200, "{} bytes", cookie.len());
    assert!(!b.jar.contains_key("session_2"));
    // The session, and its listing under the provider's sid and sub (for back-channel logout).
    assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":3");
    let keys = redis.command(&["KEYS", "gw-sessions:*"]).unwrap();
    assert_eq!(keys, "*3", "every key under the configured prefix");

    // Both nodes find it on the shared server.
    for node in [&dp, &other] {
        let page = b.open(&format!("{}/app", node.proxy_url)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["headers"]["x-user"], "alex");
    }
    assert_eq!(idp.sign_ins(), 1);

    // The server unreachable: 503, the cookie kept, no sign-in started.
    redis.kill();
    let page = b.open(&app).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.set_cookies().is_empty());
    assert_eq!(b.jar["session"], cookie);

    // Back, but empty (a restarted server without persistence): the session is gone, the browser signs
    // in again and its stale cookie is replaced.
    redis.start_server();
    let page = tests::eventually(
        std::time::Duration::from_secs(10),
        "the session store answers again",
        || {
            let req = b
                .http
                .get(&app)
                .header("accept", "text/html")
                .header("cookie", format!("session={cookie}"));
            async move {
                let r = req.send().await.unwrap();
                (r.status() != 503).then_some(r.status().as_u16())
            }
        },
    )
    .await;
    assert_eq!(page, 302, "to the identity provider");
    let (landed, _) = sign_in(&mut b, &idp, &app).await;
    assert_eq!(landed.status, 302);
    assert_ne!(b.jar["session"], cookie, "a new session id");
    assert_eq!(b.open(&app).await.status, 200);

    // Logout deletes the entry: the old cookie replayed is no session anywhere.
    let replay = b.jar["session"].clone();
    let out = b.open(&format!("{}/app/logout", other.proxy_url)).await;
    assert!(out.status == 302 || out.status == 200, "{}", out.body);
    assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":0");
    let r = b
        .http
        .get(&app)
        .header("accept", "application/json")
        .header("cookie", format!("session={replay}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A back-channel logout from the provider deletes the person's sessions from the server.
    idp.set_backchannel_logout_uri("app", &format!("{}/app/backchannel-logout", dp.proxy_url));
    let (landed, _) = sign_in(&mut b, &idp, &app).await;
    assert_eq!(landed.status, 302);
    assert_eq!(
        b.open(&format!("{}/app", other.proxy_url)).await.status,
        200
    );
    assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":3");
    let answers = idp.end_sessions_of("alex").await;
    assert!(
        !answers.is_empty() && answers.iter().all(|s| *s == 200),
        "{answers:?}"
    );
    assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":0");
    for node in [&dp, &other] {
        let r = b
            .http
            .get(format!("{}/app", node.proxy_url))
            .header("accept", "application/json")
            .header("cookie", b.cookie_header().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}
