//! Interop with a real third-party OAuth 2.0 server (django-oauth-toolkit): tokens it issues are
//! introspected through the gateway, and revocation takes effect after a purge or the cache TTL.

use base64::Engine;
use serde_json::{json, Value};
use tests::dot::Dot;
use tests::{client, eventually, ControlPlane, DataPlane, EchoUpstream, PATIENCE};

async fn cluster_with_introspection(
    dot: &Dot,
    ttl: u64,
) -> (ControlPlane, DataPlane, EchoUpstream) {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    let (id, secret) = dot.client("gateway");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/api"]}))
        .await;
    cp.post(
        "/services/echo/plugins",
        json!({"name": "oauth2-introspection", "config": {
            "introspection_url": format!("{}/introspect/", dot.issuer),
            "authorization_value": format!("Basic {basic}"),
            "token_type_hint": "access_token",
            "consumer_by": "client_id",
            "ttl": ttl
        }}),
    )
    .await;
    cp.post(
        "/consumers",
        json!({"username": "app", "custom_id": "app-client"}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    (cp, dp, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_oauth_toolkit_tokens_through_introspection_with_purge() {
    let dot = Dot::start();
    let (cp, dp, _up) = cluster_with_introspection(&dot, 3600).await;
    let token = dot.client_credentials_token("app").await;
    let r = client()
        .get(format!("{}/api/x", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["x-credential-client-id"], "app-client");
    assert_eq!(body["headers"]["x-credential-scope"], "read write");
    assert_eq!(
        body["headers"]["x-consumer-username"], "app",
        "consumer mapped by client_id"
    );
    assert!(body["headers"]["x-credential-exp"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());
    // A junk token is refused by the real server's answer.
    let r = client()
        .get(format!("{}/api/x", dp.proxy_url))
        .bearer_auth("not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Revoke at the server: still cached for the TTL, refused once the cache is purged.
    dot.revoke("app", &token).await;
    let r = client()
        .get(format!("{}/api/x", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served from cache until purged");
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let (s, _) = cp
        .call(
            reqwest::Method::DELETE,
            &format!("/cache/introspection/{hash}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    eventually(PATIENCE, "revoked token refused after purge", || async {
        let r = client()
            .get(format!("{}/api/x", dp.proxy_url))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?;
        (r.status() == 401).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_oauth_toolkit_revocation_after_ttl() {
    let dot = Dot::start();
    let (_cp, dp, _up) = cluster_with_introspection(&dot, 1).await;
    let token = dot.client_credentials_token("app").await;
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    dot.revoke("app", &token).await;
    eventually(
        PATIENCE,
        "revoked token refused once the 1 s TTL passed",
        || async {
            let r = client()
                .get(format!("{}/api", dp.proxy_url))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            (r.status() == 401).then_some(())
        },
    )
    .await;
}

/// A cluster whose `/api` route is protected by `openid-connect` against django-oauth-toolkit.
async fn cluster_with_oidc(dot: &Dot, extra: Value) -> (ControlPlane, DataPlane, EchoUpstream) {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start(&cp).await;
    let (id, secret) = dot.client("kong");
    let mut config = json!({
        "issuer": dot.issuer,
        "client_id": [id],
        "client_secret": [secret],
        "client_auth": ["client_secret_basic"],
        "introspection_endpoint": format!("{}/introspect/", dot.issuer),
        "scopes": ["openid", "read"],
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            config[k] = v;
        }
    }
    cp.post("/services", json!({"name": "echo", "url": up.url}))
        .await;
    cp.post("/services/echo/routes", json!({"paths": ["/api"]}))
        .await;
    cp.post(
        "/services/echo/plugins",
        json!({"name": "openid-connect", "config": config}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    (cp, dp, up)
}

/// `curl --user alex:doe` through the node: the password grant at the real server. Returns the access
/// token the upstream received and what the upstream saw.
async fn password_grant(dp: &DataPlane) -> (String, Value) {
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .basic_auth("alex", Some("doe"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["headers"]["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    (token, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_password_grant_and_introspection_with_django_oauth_toolkit() {
    let dot = Dot::start();
    let (_cp, dp, _up) = cluster_with_oidc(&dot, json!({"auth_methods": ["introspection", "password"], "bearer_token_param_type": ["header"], "credential_claim": ["username"]})).await;
    // curl --user alex:doe: discovery, then the password grant at the real server.
    let (token, body) = password_grant(&dp).await;
    assert_eq!(
        body["headers"]["x-credential-identifier"], "alex",
        "the real server's introspection names the user"
    );
    // Its opaque token as a bearer token is introspected at the real server.
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .basic_auth("alex", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth("opaque-junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_userinfo_with_django_oauth_toolkit() {
    let dot = Dot::start();
    let (_cp, dp, _up) = cluster_with_oidc(
        &dot,
        json!({
            "auth_methods": ["password", "userinfo"],
            "upstream_headers_claims": ["sub"],
            "upstream_headers_names": ["x-subject"],
        }),
    )
    .await;
    // A password grant at the real server gives an opaque token with the `openid` scope.
    let (token, _) = password_grant(&dp).await;
    assert_eq!(token.split('.').count(), 1, "an opaque token");
    // As a bearer token it is valid because the real server's UserInfo endpoint answers it, and the
    // subject there is the one sent upstream.
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let subject = body["headers"]["x-subject"].as_str().unwrap_or_default();
    assert!(!subject.is_empty(), "{body}");
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth("opaque-junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_jwt_verification_and_client_credentials_with_django_oauth_toolkit() {
    let dot = Dot::start_with(true);
    let (_cp, dp, _up) = cluster_with_oidc(
        &dot,
        json!({"auth_methods": ["bearer", "client_credentials"], "scopes_required": ["read"]}),
    )
    .await;
    // A JWT issued by the real server is verified against its JWKS (RS256), without introspection.
    let token = dot.client_credentials_token("app").await;
    assert_eq!(token.split('.').count(), 3, "a JWT access token");
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["x-credential-identifier"], "app-client");
    // Tampering breaks the signature.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Client credentials: the caller's own client id and secret go to the real token endpoint.
    let (id, secret) = dot.client("app");
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(format!("{}/api", dp.proxy_url))
        .basic_auth(&id, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
