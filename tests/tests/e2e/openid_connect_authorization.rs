//! `openid-connect`'s authorization after authentication: `groups_required`, `roles_required` (claims at
//! nested paths, as arrays or space-separated strings; entries are alternatives, words in one entry all
//! required) and `claims_forbidden`, each refused 403 with `error="insufficient_scope"` (RFC 6750).

use serde_json::json;

use super::openid_connect::{env_with, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_roles_and_forbidden_claims_decide_after_authentication() {
    let e = env_with(json!({
        "auth_methods": ["bearer"],
        "groups_required": ["admins", "ops auditors"],
        "roles_required": ["reader"],
        "roles_claim": ["realm_access", "roles"],
        "claims_forbidden": ["act"],
        "display_errors": true,
    }))
    .await;
    let token = |extra| e.idp.issue("alex", "app", "openid", extra);
    let status = |t: String| {
        let dp = &e.dp;
        async move { get(dp, |r| r.bearer_auth(&t)).await }
    };
    let reader = json!({"roles": ["reader", "writer"]});

    // Groups as an array, the second alternative whole; roles at a nested path.
    let ok = token(json!({"groups": ["ops", "auditors"], "realm_access": reader}));
    assert_eq!(status(ok).await.0, 200);
    // Groups as a space-separated string, the first alternative.
    let ok = token(json!({"groups": "admins", "realm_access": reader}));
    assert_eq!(status(ok).await.0, 200);

    // Half an alternative is not enough.
    let (s, h, body) = status(token(json!({"groups": ["ops"], "realm_access": reader}))).await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("required groups are missing"));
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    // Roles at the top level are not where `roles_claim` points.
    let (s, _, body) = status(token(json!({"groups": "admins", "roles": ["reader"]}))).await;
    assert_eq!(s, 403);
    assert!(body["message"].as_str().unwrap().contains("roles"));
    // A forbidden claim refuses an otherwise good token.
    let (s, _, body) = status(token(
        json!({"groups": "admins", "realm_access": reader, "act": {"sub": "support"}}),
    ))
    .await;
    assert_eq!(s, 403);
    assert!(body["message"].as_str().unwrap().contains("'act'"));
}
