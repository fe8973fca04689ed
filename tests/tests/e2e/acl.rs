//! `acl` after authentication: a Consumer's ACL groups (written through the Admin API and synced to the
//! node incrementally), groups an auth plugin reads from the token (`authenticated_groups_claim`), the
//! 401/403 answers and the groups fields sent upstream, as Kong has them.

use reqwest::Method;
use serde_json::{json, Value};
use tests::{client, ControlPlane, DataPlane, EchoUpstream, TestIdp};

use super::openid_connect::{env_with, get, Env};

const FORBIDDEN: &str = "You cannot consume this service";

/// Applies an Admin API write and waits until the node has it.
async fn write(e: &Env, method: Method, path: &str, body: Option<Value>) -> Value {
    let (s, v) = e.cp.call(method.clone(), path, body).await.unwrap();
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    e.dp.wait_version(e.cp.version().await).await;
    v
}

/// The status, the body and the upstream's view of the groups fields of a call with `token`.
async fn call(e: &Env, token: Option<&str>) -> (u16, Value, Value, Value) {
    let (s, _, body) = get(&e.dp, |r| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    })
    .await;
    let groups = body["headers"]["x-consumer-groups"].clone();
    let authenticated = body["headers"]["x-authenticated-groups"].clone();
    (s, body, groups, authenticated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_s_groups_allow_or_deny_and_changes_reach_the_node() {
    let e = env_with(json!({
        "auth_methods": ["bearer"],
        "consumer_claim": ["sub"],
        "consumer_by": ["username"],
    }))
    .await;
    for name in ["alice", "bob", "carol"] {
        e.cp.post("/consumers", json!({ "username": name })).await;
    }
    e.cp.post("/consumers/alice/acls", json!({"group": "admins"}))
        .await;
    e.cp.post("/consumers/alice/acls", json!({"group": "ops"}))
        .await;
    e.cp.post("/consumers/bob/acls", json!({"group": "interns"}))
        .await;
    let plugin = write(
        &e,
        Method::POST,
        "/services/svc/plugins",
        Some(json!({"name": "acl", "config": {"allow": ["admins"]}})),
    )
    .await;
    let plugin_path = format!("/plugins/{}", plugin["id"].as_str().unwrap());
    let token = |who: &str| e.idp.issue(who, "app", "openid", json!({}));
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));

    let (s, body, groups, _) = call(&e, Some(&alice)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(groups, "admins, ops", "the Consumer's groups go upstream");
    for who in [&bob, &carol] {
        let (s, body, _, _) = call(&e, Some(who)).await;
        assert_eq!((s, body["message"].as_str()), (403, Some(FORBIDDEN)));
    }
    // A client cannot claim groups of its own.
    let (s, _, body) = get(&e.dp, |r| {
        r.bearer_auth(&bob).header("x-consumer-groups", "admins")
    })
    .await;
    assert_eq!(s, 403, "{body}");

    // Memberships written after the plugin reach the node without a restart.
    write(&e, Method::PUT, "/consumers/bob/acls/admins", None).await;
    assert_eq!(call(&e, Some(&bob)).await.0, 200);
    write(&e, Method::DELETE, "/consumers/alice/acls/admins", None).await;
    assert_eq!(call(&e, Some(&alice)).await.0, 403);

    // The groups can be kept from the upstream.
    let hidden = json!({"config": {"allow": ["admins"], "hide_groups_header": true}});
    write(&e, Method::PATCH, &plugin_path, Some(hidden)).await;
    let (s, _, groups, _) = call(&e, Some(&bob)).await;
    assert_eq!((s, groups), (200, Value::Null));

    // Deny: members of a listed group are refused; a Consumer without groups is in none of them.
    let deny = json!({"config": {"allow": null, "deny": ["interns"], "hide_groups_header": false}});
    write(&e, Method::PATCH, &plugin_path, Some(deny)).await;
    assert_eq!(call(&e, Some(&bob)).await.0, 403, "bob is an intern");
    let (s, _, groups, _) = call(&e, Some(&carol)).await;
    assert_eq!((s, groups), (200, Value::Null), "carol has no groups");
    let (s, _, groups, _) = call(&e, Some(&alice)).await;
    assert_eq!((s, groups), (200, json!("ops")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_known_is_401_and_the_anonymous_consumer_needs_groups() {
    let e = env_with(json!({"auth_methods": ["bearer"]})).await;
    e.cp.post("/consumers", json!({"username": "guest"})).await;
    let oidc = e.cp.get("/plugins").await.unwrap()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let anonymous = json!({"config": {"anonymous": "guest"}});
    write(
        &e,
        Method::PATCH,
        &format!("/plugins/{oidc}"),
        Some(anonymous),
    )
    .await;
    e.cp.post(
        "/services/svc/plugins",
        json!({"name": "acl", "config": {"allow": ["guests"]}}),
    )
    .await;
    e.dp.wait_version(e.cp.version().await).await;
    // The anonymous Consumer without groups, and no credential: nobody the ACL knows.
    let (s, body, _, _) = call(&e, None).await;
    assert_eq!((s, body), (401, json!({"message": "Unauthorized"})));
    write(
        &e,
        Method::POST,
        "/consumers/guest/acls",
        Some(json!({"group": "guests"})),
    )
    .await;
    let (s, _, groups, _) = call(&e, None).await;
    assert_eq!((s, groups), (200, json!("guests")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_the_token_decide_unless_a_credential_s_consumer_has_its_own() {
    let e = env_with(json!({
        "auth_methods": ["bearer"],
        "authenticated_groups_claim": ["realm_access", "groups"],
        "consumer_claim": ["sub"],
        "consumer_optional": true,
    }))
    .await;
    e.cp.post("/consumers", json!({"username": "alice"})).await;
    e.cp.post("/consumers/alice/acls", json!({"group": "admins"}))
        .await;
    let plugin = write(
        &e,
        Method::POST,
        "/services/svc/plugins",
        Some(json!({"name": "acl", "config": {"allow": ["ops"]}})),
    )
    .await;
    let groups = |g: Value| json!({"realm_access": {"groups": g}});
    let ops = e
        .idp
        .issue("dana", "app", "openid", groups(json!(["ops", "dev"])));
    let (s, body, consumer_groups, token_groups) = call(&e, Some(&ops)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (consumer_groups, token_groups),
        (Value::Null, json!("ops, dev"))
    );
    let dev = e
        .idp
        .issue("dana", "app", "openid", groups(json!("dev qa")));
    assert_eq!(call(&e, Some(&dev)).await.0, 403);
    let none = e.idp.issue("dana", "app", "openid", json!({}));
    let (s, body, _, _) = call(&e, Some(&none)).await;
    assert_eq!((s, body["message"].as_str()), (403, Some(FORBIDDEN)));

    // alice's token says ops, but a credential's Consumer is judged by its own groups...
    let alice = e
        .idp
        .issue("alice", "app", "openid", groups(json!(["ops"])));
    assert_eq!(call(&e, Some(&alice)).await.0, 403);
    // ...unless the token's groups are always to be used.
    let always = json!({"config": {"allow": ["ops"], "always_use_authenticated_groups": true}});
    let path = format!("/plugins/{}", plugin["id"].as_str().unwrap());
    write(&e, Method::PATCH, &path, Some(always)).await;
    let (s, _, consumer_groups, token_groups) = call(&e, Some(&alice)).await;
    assert_eq!(
        (s, consumer_groups, token_groups),
        (200, Value::Null, json!("ops"))
    );
}

/// A node whose Service at `/api` is behind `oauth2-introspection` (its config with `extra`) and `acl`
/// (`acl_config`).
pub(crate) struct Introspected {
    pub(crate) idp: TestIdp,
    pub(crate) dp: DataPlane,
    pub(crate) cp: ControlPlane,
    _up: EchoUpstream,
}

impl Introspected {
    pub(crate) async fn start(extra: Value, acl_config: Value) -> Introspected {
        let cp = ControlPlane::start().await;
        let idp = TestIdp::start().await;
        let up = EchoUpstream::start().await;
        let dp = DataPlane::start(&cp).await;
        cp.post("/services", json!({"name": "svc", "url": up.url}))
            .await;
        cp.post("/services/svc/routes", json!({"paths": ["/api"]}))
            .await;
        let mut config = json!({
            "introspection_url": idp.introspection_url(),
            "authorization_value": idp.authorization,
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        cp.post(
            "/services/svc/plugins",
            json!({"name": "oauth2-introspection", "config": config}),
        )
        .await;
        if !acl_config.is_null() {
            cp.post(
                "/services/svc/plugins",
                json!({"name": "acl", "config": acl_config}),
            )
            .await;
        }
        dp.wait_version(cp.version().await).await;
        Introspected {
            idp,
            dp,
            cp,
            _up: up,
        }
    }

    /// The status, the `WWW-Authenticate` field and the body of a call with `token`.
    pub(crate) async fn call(&self, token: &str) -> (u16, Option<String>, Value) {
        let url = format!("{}/api", self.dp.proxy_url);
        let r = client().get(url).bearer_auth(token).send().await.unwrap();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), challenge, r.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_results_give_their_groups_to_acl() {
    let e = Introspected::start(
        json!({"authenticated_groups_claim": ["groups"]}),
        json!({"deny": ["suspended"]}),
    )
    .await;
    let exp = platform::unix_now() + 600;
    e.idp
        .add_token("ok", json!({"active": true, "exp": exp, "groups": "staff"}));
    e.idp.add_token(
        "no",
        json!({"active": true, "exp": exp, "groups": ["staff", "suspended"]}),
    );
    let (s, _, body) = e.call("ok").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["x-authenticated-groups"], "staff");
    let (s, _, body) = e.call("no").await;
    assert_eq!((s, body), (403, json!({"message": FORBIDDEN})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_configs_are_checked_as_kong_checks_them() {
    let cp = ControlPlane::start().await;
    cp.post("/consumers", json!({"username": "alice"})).await;
    let refused = |config: Value| {
        let cp = &cp;
        async move {
            let body = json!({"name": "acl", "config": config});
            cp.call(Method::POST, "/plugins", Some(body)).await.unwrap()
        }
    };
    let (s, v) = refused(json!({})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["config"]["@entity"][0]
        .as_str()
        .unwrap()
        .starts_with("at least one of these fields must be non-empty"));
    let (s, v) = refused(json!({"allow": ["a"], "deny": ["b"]})).await;
    assert_eq!(s, 400);
    assert!(v["fields"]["config"]["@entity"][0]
        .as_str()
        .unwrap()
        .starts_with("only one of these fields must be non-empty"));
    let (s, v) = refused(json!({"allow": "admins"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["config"]["allow"].is_string(), "{v}");
    let scoped =
        json!({"name": "acl", "consumer": {"username": "alice"}, "config": {"allow": ["a"]}});
    let (s, v) = cp
        .call(Method::POST, "/plugins", Some(scoped))
        .await
        .unwrap();
    assert_eq!(
        (s, &v["fields"]["consumer"]),
        (400, &json!("value must be null"))
    );
    let schema = cp.get("/schemas/plugins/acl").await.unwrap();
    let text = schema.to_string();
    for field in [
        "allow",
        "deny",
        "hide_groups_header",
        "always_use_authenticated_groups",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
}
