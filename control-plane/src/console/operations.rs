//! Cluster operations: enrollment tokens (each shown once), node revocation, cluster-wide cache purges
//! and the `openid-connect` issuers' discovery state.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::html;
use serde_json::{json, Value};

use super::entities::enc;
use super::form::SessionForm;
use super::layout::{self, csrf_field, text, timestamp};
use super::sessions::Session;
use super::{errors, Console, ConsoleCtx};

/// The routes of this page.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/operations", get(page))
        .route("/operations/tokens", post(create_token))
        .route("/operations/tokens/{id}/delete", post(delete_token))
        .route("/operations/purge", post(purge))
        .route("/operations/issuers/{id}/rediscover", post(rediscover))
        .route("/nodes/{id}/revoke", post(revoke))
}

async fn page(state: Console, Extension(session): Extension<Session>) -> Html<String> {
    let tokens = state.admin.get("/clustering/pairing-tokens").await;
    let issuers = state.admin.get("/openid-connect/issuers?size=1000").await;
    let body = html! {
        section aria-labelledby="tokens" {
            h2 #tokens { "Enrollment tokens" }
            p.hint { "A node pairs with one token (" code { "data-plane --pairing-token" } "). A token is shown once, when it is made." }
            @if !tokens.ok() { (layout::notice(false, &tokens.message())) }
            div.scroll { table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Uses" } th scope="col" { "Expires" }
                             th scope="col" { "Labels" } th scope="col" { span.skip { "Actions" } } } }
                tbody { @for t in tokens.body["data"].as_array().into_iter().flatten() {
                    @let id = t["id"].as_str().unwrap_or_default();
                    tr {
                        td { code { (id) } }
                        td { (text(&t["uses"])) " of " (text(&t["max_uses"])) }
                        td { @if let Some(e) = t["expires_at"].as_i64() { (timestamp(e)) } }
                        td { (labels_text(&t["labels"])) }
                        td { (layout::post_button(&session, &format!("/operations/tokens/{}/delete", enc(id)), "Delete",
                              "Delete this enrollment token? Nodes already paired stay paired.")) }
                    }
                } }
            } }
            form.entity method="post" action="/operations/tokens" {
                (csrf_field(&session))
                div.field { label for="ttl" { "Lifetime (seconds)" } input #ttl type="text" inputmode="numeric" name="ttl" value="3600"; }
                div.field { label for="max_uses" { "Most nodes it admits" } input #max_uses type="text" inputmode="numeric" name="max_uses" value="1"; }
                div.field { label for="labels" { "Labels of the nodes it admits" } textarea #labels name="labels" placeholder="region=eu" {}
                    p.hint { "One key=value per line." } }
                button.primary type="submit" { "Create enrollment token" }
            }
        }
        section aria-labelledby="caches" {
            h2 #caches { "Caches" }
            p { "Empties the introspection, UserInfo and discovery caches of every node of every control plane." }
            (layout::post_button(&session, "/operations/purge", "Purge caches on every node", "Purge the caches of every node?"))
        }
        section aria-labelledby="issuers" {
            h2 #issuers { "OpenID Connect issuers" }
            @if !issuers.ok() { (layout::notice(false, &issuers.message())) }
            @let list = issuers.body["data"].as_array().cloned().unwrap_or_default();
            @if list.is_empty() { p { "No openid-connect plugin names an issuer." } }
            @for i in &list {
                @let id = i["id"].as_str().unwrap_or_default();
                h3 { (text(&i["issuer"])) }
                @if let Some(e) = i["error"].as_str() {
                    (layout::notice(false, &format!("Discovery failed: {e}")))
                } @else {
                    p { "Discovered " (i["updated_at"].as_i64().map(timestamp).unwrap_or_default()) "; "
                        (i["keys"]["keys"].as_array().map(Vec::len).unwrap_or(0)) " signing keys ("
                        (key_ids(&i["keys"])) ")." }
                }
                (layout::post_button(&session, &format!("/operations/issuers/{}/rediscover", enc(id)), "Rediscover",
                    "Forget this issuer's discovery document and keys here and on every node?"))
            }
        }
    };
    Html(layout::page(Some(&session), "/operations", "Operations", body).into_string())
}

fn labels_text(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn key_ids(jwks: &Value) -> String {
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn create_token(state: Console, submitted: SessionForm) -> Response {
    let f = &submitted.form;
    let number = |name: &str| -> Value {
        let t = f.text(name).unwrap_or_default();
        t.parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(t.into()))
    };
    let mut labels = BTreeMap::new();
    for line in f
        .get("labels")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line.split_once('=') {
            Some((k, v)) => {
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => {
                return errors::page(
                    StatusCode::BAD_REQUEST,
                    "Not created",
                    &format!("labels: '{line}' is not key=value"),
                );
            }
        }
    }
    let body = json!({ "ttl": number("ttl"), "max_uses": number("max_uses"), "labels": labels });
    let answer = state
        .admin
        .call(Method::POST, "/clustering/pairing-tokens", Some(&body))
        .await;
    if !answer.ok() {
        return errors::page(StatusCode::BAD_REQUEST, "Not created", &answer.message());
    }
    let shown = html! {
        (layout::notice(true, "Enrollment token created. Copy it now: it is not shown again."))
        p { label for="token" { "Token" } }
        textarea #token readonly rows="4" cols="80" { (text(&answer.body["token"])) }
        p { "Expires " (answer.body["expires_at"].as_i64().map(timestamp).unwrap_or_default())
            "; admits " (text(&answer.body["max_uses"])) " node(s)." }
        p { a href="/operations" { "Back to operations" } }
    };
    Html(
        layout::page(
            Some(&submitted.session),
            "/operations",
            "New enrollment token",
            shown,
        )
        .into_string(),
    )
    .into_response()
}

/// Sends the browser on after an Admin API call, or shows why it failed.
async fn then(state: &ConsoleCtx, method: Method, path: &str, to: &str, what: &str) -> Response {
    let answer = state.admin.call(method, path, None).await;
    if !answer.ok() {
        return errors::page(answer.status, what, &answer.message());
    }
    Redirect::to(to).into_response()
}

async fn delete_token(state: Console, Path(id): Path<String>, _f: SessionForm) -> Response {
    let path = format!("/clustering/pairing-tokens/{}", enc(&id));
    then(&state, Method::DELETE, &path, "/operations", "Not deleted").await
}

async fn purge(state: Console, _f: SessionForm) -> Response {
    then(
        &state,
        Method::DELETE,
        "/cache",
        "/operations",
        "Not purged",
    )
    .await
}

async fn rediscover(state: Console, Path(id): Path<String>, _f: SessionForm) -> Response {
    let path = format!("/openid-connect/issuers/{}", enc(&id));
    then(
        &state,
        Method::DELETE,
        &path,
        "/operations",
        "Not rediscovered",
    )
    .await
}

async fn revoke(state: Console, Path(id): Path<String>, _f: SessionForm) -> Response {
    let path = format!("/clustering/data-planes/{}", enc(&id));
    then(&state, Method::DELETE, &path, "/", "Not revoked").await
}
