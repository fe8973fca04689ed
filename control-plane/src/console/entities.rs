//! Entity lists (filtered by tag and text), entity pages and deletion. Forms live in `entity_form`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use super::collections::{self, cell, label, Collection};
use super::form::SessionForm;
use super::layout::{self, text};
use super::sessions::Session;
use super::{errors, upstreams, Console, ConsoleCtx};

/// The routes of entity pages.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/entities/{collection}", get(list))
        .route("/entities/{collection}/{id}", get(view))
        .route("/entities/{collection}/{id}/delete", post(delete))
        .merge(super::entity_form::routes())
        .merge(upstreams::routes())
}

/// The collection of a path, or a 404 page.
pub fn collection(name: &str) -> Result<&'static Collection, Response> {
    collections::named(name).ok_or_else(errors::not_found)
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    tags: String,
    #[serde(default)]
    q: String,
}

/// Labels of the entities of `collection`, by id.
pub async fn labels(state: &ConsoleCtx, collection: &str) -> HashMap<String, String> {
    state
        .admin
        .list_all(&format!("/{collection}"))
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e["id"].as_str()?.to_string(), label(e))))
        .collect()
}

async fn list(
    state: Console,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let c = match collection(&name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let tags = filter.tags.trim();
    let path = if tags.is_empty() {
        format!("/{}", c.name)
    } else {
        format!("/{}?tags={}", c.name, enc(tags))
    };
    let (entities, problem) = match state.admin.list_all(&path).await {
        Ok(e) => (e, None),
        Err(answer) => (Vec::new(), Some(answer.message())),
    };
    let q = filter.q.trim().to_lowercase();
    let shown: Vec<&Value> = entities
        .iter()
        .filter(|e| q.is_empty() || matches_text(e, &q))
        .collect();
    let mut names: HashMap<&str, HashMap<String, String>> = HashMap::new();
    for (_, field) in c.columns {
        if let Some(refd) = referenced(field) {
            if !names.contains_key(refd) && shown.iter().any(|e| e[*field].is_object()) {
                names.insert(refd, labels(&state, refd).await);
            }
        }
    }
    let body = html! {
        @if let Some(p) = problem { (layout::notice(false, &p)) }
        form.filters method="get" action={ "/entities/" (c.name) } role="search" {
            div { label for="tags" { "Tags (a,b: all of them; a/b: any)" } input #tags type="text" name="tags" value=(filter.tags); }
            div { label for="q" { "Name or id contains" } input #q type="text" name="q" value=(filter.q); }
            button type="submit" { "Filter" }
        }
        div.actions {
            a href={ "/entities/" (c.name) "/new" } { "New " (c.one) }
            span.hint { (shown.len()) " of " (entities.len()) " shown" }
        }
        div.scroll {
            table #entities {
                thead { tr {
                    th scope="col" { "Name" }
                    @for (heading, _) in c.columns { th scope="col" { (heading) } }
                    th scope="col" { "Tags" }
                } }
                tbody {
                    @for e in &shown {
                        @let id = e["id"].as_str().unwrap_or_default();
                        tr {
                            td { a href={ "/entities/" (c.name) "/" (id) } { (label(e)) } }
                            @for (_, field) in c.columns {
                                td { (reference_cell(&e[*field], referenced(field).and_then(|r| names.get(r)))) }
                            }
                            td { (cell(&e["tags"])) }
                        }
                    }
                }
            }
        }
    };
    Html(
        layout::page(
            Some(&session),
            &format!("/entities/{}", c.name),
            c.title,
            body,
        )
        .into_string(),
    )
    .into_response()
}

/// The collection a reference field points into.
fn referenced(field: &str) -> Option<&'static str> {
    match field {
        "service" => Some("services"),
        "route" => Some("routes"),
        "consumer" => Some("consumers"),
        "certificate" => Some("certificates"),
        _ => None,
    }
}

fn reference_cell(value: &Value, names: Option<&HashMap<String, String>>) -> Markup {
    let (Some(id), Some(names)) = (value["id"].as_str(), names) else {
        return html! { (cell(value)) };
    };
    let shown = names.get(id).cloned().unwrap_or_else(|| cell(value));
    html! { (shown) }
}

fn matches_text(e: &Value, q: &str) -> bool {
    ["name", "username", "custom_id", "id", "host"]
        .iter()
        .filter_map(|k| e[*k].as_str())
        .any(|v| v.to_lowercase().contains(q))
}

#[derive(Deserialize, Default)]
pub struct Saved {
    saved: Option<String>,
}

async fn view(
    state: Console,
    Extension(session): Extension<Session>,
    Path((name, id)): Path<(String, String)>,
    Query(saved): Query<Saved>,
) -> Response {
    let c = match collection(&name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let answer = state.admin.get(&format!("/{}/{}", c.name, enc(&id))).await;
    if answer.status == StatusCode::NOT_FOUND {
        return errors::not_found();
    }
    if !answer.ok() {
        return errors::page(answer.status, "Cannot read", &answer.message());
    }
    let e = &answer.body;
    let extra = if c.name == "upstreams" {
        upstreams::targets_section(&state, &session, &id).await
    } else {
        html! {}
    };
    let body = html! {
        @if saved.saved.is_some() { (layout::notice(true, "Saved.")) }
        div.actions {
            a href={ "/entities/" (c.name) "/" (enc(&id)) "/edit" } { "Edit" }
            (layout::post_button(&session, &format!("/entities/{}/{}/delete", c.name, enc(&id)), "Delete",
                &format!("Delete {} {}?", c.one, label(e))))
            a href={ "/entities/" (c.name) } { "All " (c.title.to_lowercase()) }
        }
        (definition(e))
        (extra)
    };
    let title = format!("{} {}", capitalised(c.one), label(e));
    Html(
        layout::page(
            Some(&session),
            &format!("/entities/{}", c.name),
            &title,
            body,
        )
        .into_string(),
    )
    .into_response()
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|f| f.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Every field of an entity as the Admin API reads it (secrets already redacted there).
fn definition(e: &Value) -> Markup {
    html! {
        dl.entity {
            @for (k, v) in e.as_object().into_iter().flatten() {
                dt { (k) }
                dd {
                    @match v {
                        Value::Object(_) if v.get("id").is_some() && v.as_object().is_some_and(|m| m.len() == 1) => code { (text(&v["id"])) },
                        Value::Object(_) | Value::Array(_) => pre { (serde_json::to_string_pretty(v).unwrap_or_default()) },
                        _ => (text(v)),
                    }
                }
            }
        }
    }
}

async fn delete(
    state: Console,
    Path((name, id)): Path<(String, String)>,
    _form: SessionForm,
) -> Response {
    let c = match collection(&name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let answer = state
        .admin
        .call(Method::DELETE, &format!("/{}/{}", c.name, enc(&id)), None)
        .await;
    if !answer.ok() {
        return errors::page(answer.status, "Not deleted", &answer.message());
    }
    Redirect::to(&format!("/entities/{}", c.name)).into_response()
}
