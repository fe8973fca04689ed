//! `openid-connect` and the UserInfo endpoint: the `userinfo` auth method for opaque access tokens
//! (cached per token, refused tokens 401, a provider that is down 503), and `search_user_info` completing
//! a verified JWT's claims for consumer mapping and groups, signed answers (`userinfo_accept:
//! application/jwt`) verified against the issuer's keys; the same method against
//! django-oauth-toolkit's own endpoint is in `interop.rs`.

use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::json;

use super::openid_connect::{env_with, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_validated_at_the_userinfo_endpoint() {
    let e = env_with(json!({
        "auth_methods": ["userinfo"],
        "consumer_claim": ["sub"],
        "consumer_by": ["username"],
        "consumer_optional": true,
        "upstream_headers_claims": ["email"],
        "upstream_headers_names": ["x-email"],
    }))
    .await;
    e.cp.post("/consumers", json!({"username": "alice"})).await;
    e.dp.wait_version(e.cp.version().await).await;
    e.idp.set_jwt_access_tokens(false);
    e.idp
        .set_userinfo("alice", json!({"email": "alice@example.test"}));
    let token = e.idp.issue("alice", "app", "openid", json!({}));
    assert_eq!(token.split('.').count(), 1, "an opaque token");
    let calls = || e.idp.stats().userinfo_calls.load(Ordering::SeqCst);

    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&token)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-consumer-username"], "alice");
    assert_eq!(body["headers"]["x-email"], "alice@example.test");
    assert_eq!(calls(), 1);
    // The answer is cached for the token: no second call.
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&token)).await.0, 200);
    assert_eq!(calls(), 1);

    // A token the endpoint refuses is invalid: 401 with the bearer challenge.
    let (s, headers, _) = get(&e.dp, |r| r.bearer_auth("not-a-token")).await;
    assert_eq!(s, 401);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // A provider that is down cannot say a new token is valid (503); the cached answer still serves.
    let other = e.idp.issue("bob", "app", "openid", json!({}));
    e.idp.set_down(true);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&other)).await.0, 503);
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&token)).await.0, 200);
    e.idp.set_down(false);
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&other)).await;
    assert_eq!(
        (s, &body["headers"]["x-consumer-username"]),
        (200, &json!(null)),
        "{body}"
    );

    // Without the method, an opaque token is not accepted at all.
    let oidc = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer_only = json!({"config": {"auth_methods": ["bearer"]}});
    let (s, v) =
        e.cp.call(
            Method::PATCH,
            &format!("/plugins/{oidc}"),
            Some(bearer_only),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    e.dp.wait_version(e.cp.version().await).await;
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&token)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_user_info_completes_a_token_s_claims() {
    let e = env_with(json!({
        "auth_methods": ["bearer"],
        "search_user_info": true,
        "authenticated_groups_claim": ["groups"],
    }))
    .await;
    e.cp.post(
        "/services/svc/plugins",
        json!({"name": "acl", "config": {"allow": ["staff"]}}),
    )
    .await;
    e.dp.wait_version(e.cp.version().await).await;
    // The provider keeps dana's groups; her JWT does not carry them.
    e.idp.set_userinfo("dana", json!({"groups": ["staff"]}));
    let dana = e.idp.issue("dana", "app", "openid", json!({}));
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&dana)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-authenticated-groups"], "staff");
    // The token's own claim wins over the endpoint's.
    let own = e
        .idp
        .issue("dana", "app", "openid", json!({"groups": ["interns"]}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&own)).await.0, 403);
    // Someone the provider has no groups for is not let in.
    let erin = e.idp.issue("erin", "app", "openid", json!({}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&erin)).await.0, 403);
    // An answer about another subject is refused.
    e.idp.set_userinfo(
        "mallory",
        json!({"sub": "someone-else", "groups": ["staff"]}),
    );
    let mallory = e.idp.issue("mallory", "app", "openid", json!({}));
    assert_eq!(get(&e.dp, |r| r.bearer_auth(&mallory)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_userinfo_answers_are_verified_against_the_issuers_keys() {
    let e = env_with(json!({
        "auth_methods": ["userinfo"], "userinfo_accept": "application/jwt",
        "upstream_headers_claims": ["email"], "upstream_headers_names": ["x-email"],
    }))
    .await;
    e.idp.set_jwt_access_tokens(false);
    e.idp
        .set_userinfo("alice", json!({"email": "alice@example.test"}));
    // Issued to this plugin's client: the signed answer's aud names it.
    let token = e.idp.issue("alice", "kong", "openid", json!({}));
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&token)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-email"], "alice@example.test");

    // A signed answer for another client is not this plugin's: the provider's failure, 503.
    let foreign = e.idp.issue("bob", "app", "openid", json!({}));
    let (s, _, body) = get(&e.dp, |r| r.bearer_auth(&foreign)).await;
    assert_eq!(s, 503, "{body}");

    // The provider signs with a new key: the node fetches it on the unknown kid.
    e.idp.rotate_key("key-2");
    let fresh = e.idp.issue("alice", "kong", "openid", json!({}));
    assert_eq!(
        get(&e.dp, |r| r.bearer_auth(&fresh)).await.0,
        200,
        "the new key is fetched"
    );
}
