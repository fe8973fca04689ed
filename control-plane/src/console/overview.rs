//! The cluster at a glance: the configuration this control plane publishes and every node, on every
//! control plane sharing the store, with its sync status. The node table refreshes itself from
//! `GET /live/nodes` when scripts run.

use std::sync::Arc;

use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup};
use serde_json::Value;

use super::layout::{self, ago, text, timestamp};
use super::sessions::Session;
use super::{Console, ConsoleCtx};

/// The routes of this page.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/", get(overview))
        .route("/live/nodes", get(live_nodes))
}

/// Nodes shown per page of the node table.
const NODES_PER_PAGE: usize = 100;

/// The position of the node table's first row.
#[derive(serde::Deserialize, Default)]
pub struct Offset {
    #[serde(default)]
    offset: usize,
}

/// A page of the node view, from the Admin API.
async fn nodes_page(state: &ConsoleCtx, offset: usize) -> Value {
    let path = format!("/clustering/data-planes?size={NODES_PER_PAGE}&offset={offset}");
    state.admin.get(&path).await.body
}

async fn overview(
    state: Console,
    Extension(session): Extension<Session>,
    Query(at): Query<Offset>,
) -> Html<String> {
    let status = state.admin.get("/status").await;
    let nodes = nodes_page(&state, at.offset).await;
    let versions = state.admin.get("/clustering/config-versions").await;
    let s = &status.body;
    let body = html! {
        @if !status.ok() { (layout::notice(false, &status.message())) }
        section aria-labelledby="config-heading" {
            h2 #config-heading { "Configuration" }
            dl.entity {
                dt { "Version" } dd { (s["config_version"]) }
                dt { "Published hash" } dd { code { (text(&s["configuration_hash"])) } }
                dt { "Database reachable" } dd { (text(&s["database"]["reachable"])) }
                dt { "Entities" } dd {
                    (s["entities"]["services"]) " services, " (s["entities"]["routes"]) " routes, "
                    (s["entities"]["consumers"]) " consumers, " (s["entities"]["plugins"]) " plugins"
                }
                @if let Some(e) = s["publish_error"].as_object() {
                    dt { "Not published" } dd.status-rejected {
                        "version " (text(&e["version"])) ": " (text(&e["reason"]))
                    }
                }
            }
        }
        section aria-labelledby="nodes-heading" {
            h2 #nodes-heading { "Data planes" }
            div.scroll data-live={ "/live/nodes?offset=" (at.offset) } data-every="2000" aria-live="polite" {
                (node_table(&session, &nodes, at.offset))
            }
        }
        section aria-labelledby="versions-heading" {
            h2 #versions-heading { "Recent configuration versions" }
            (version_table(&versions.body))
        }
    };
    Html(layout::page(Some(&session), "/", "Cluster", body).into_string())
}

async fn live_nodes(
    state: Console,
    Extension(session): Extension<Session>,
    Query(at): Query<Offset>,
) -> Html<String> {
    let nodes = nodes_page(&state, at.offset).await;
    Html(node_table(&session, &nodes, at.offset).into_string())
}

fn version_table(answer: &Value) -> Markup {
    let versions = answer["data"].as_array().cloned().unwrap_or_default();
    html! {
        @if versions.is_empty() {
            p { "No version is kept yet." }
        } @else {
            div.scroll { table #versions {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Hash" } th scope="col" { "Changes" } } }
                tbody { @for v in &versions {
                    tr {
                        td { (text(&v["version"])) }
                        td { code { (v["hash"].as_str().map(|h| &h[..h.len().min(12)]).unwrap_or("—")) } }
                        td { (changes_text(&v["entities"])) }
                    }
                } }
            } }
        }
    }
}

/// `services: 2 put, 1 deleted; routes: 1 put`.
fn changes_text(entities: &Value) -> String {
    entities
        .as_object()
        .into_iter()
        .flatten()
        .map(|(kind, c)| {
            let mut parts = Vec::new();
            if c["put"].as_u64().unwrap_or(0) > 0 {
                parts.push(format!("{} put", c["put"]));
            }
            if c["deleted"].as_u64().unwrap_or(0) > 0 {
                parts.push(format!("{} deleted", c["deleted"]));
            }
            format!("{kind}: {}", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a person reads for a node's sync status.
fn sync_label(sync: &str) -> &str {
    match sync {
        "in_sync" => "in sync",
        "behind" => "applying",
        "rejected" => "NACK",
        "applied_not_persisted" => "applied, not persisted",
        "incompatible" => "incompatible plugins",
        other => other,
    }
}

fn node_table(session: &Session, answer: &Value, offset: usize) -> Markup {
    let nodes = answer["data"].as_array().cloned().unwrap_or_default();
    let total = answer["total"].as_u64().unwrap_or(nodes.len() as u64) as usize;
    let now = layout::now();
    html! {
        @if total > NODES_PER_PAGE || offset > 0 {
            nav.actions aria-label="Pages of nodes" {
                @if offset > 0 {
                    a href={ "/?offset=" (offset.saturating_sub(NODES_PER_PAGE)) } { "Previous " (NODES_PER_PAGE) }
                }
                span.hint { "Nodes " (offset + 1) "–" (offset + nodes.len()) " of " (total) }
                @if offset + nodes.len() < total {
                    a href={ "/?offset=" (offset + NODES_PER_PAGE) } { "Next " (NODES_PER_PAGE) }
                }
            }
        }
        @if total == 0 {
            p { "No data plane has paired yet. Create an enrollment token under " a href="/operations" { "Operations" } "." }
        } @else {
            table #nodes {
                caption.hint { (total) " nodes; latest configuration version " (text(&answer["latest_config"]["version"])) }
                thead { tr {
                    th scope="col" { "Hostname" } th scope="col" { "Status" } th scope="col" { "Sync" }
                    th scope="col" { "Config version" } th.wide-only scope="col" { "Hash" }
                    th scope="col" { "Last seen" } th.wide-only scope="col" { "Version" }
                    th.wide-only scope="col" { "Labels" } th.wide-only scope="col" { "Control plane" }
                    th.wide-only scope="col" { "Certificate expires" } th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for n in &nodes { (node_row(session, n, now)) }
                }
            }
        }
    }
}

fn node_row(session: &Session, n: &Value, now: i64) -> Markup {
    let id = n["id"].as_str().unwrap_or_default();
    let status = n["status"].as_str().unwrap_or("unknown");
    let sync = n["sync_status"].as_str().unwrap_or("unknown");
    let labels = n["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let hash = n["config_hash"]
        .as_str()
        .map(|h| &h[..h.len().min(12)])
        .unwrap_or("—");
    html! {
        tr data-node=(id) {
            td { (text(&n["hostname"])) br; span.hint { code { (id) } } }
            td { span class={ "status-" (status) } { (status.replace('_', " ")) } }
            td {
                @if status == "disconnected" {
                    span.hint { "last known: " (sync_label(sync)) }
                } @else {
                    span class={ "status-" (sync) } { (sync_label(sync)) }
                }
                @if let Some(reason) = n["sync_status_reason"].as_str() { br; span.hint { (reason) } }
            }
            td { (text(&n["config_version"])) }
            td.wide-only { code { (hash) } }
            td { @if let Some(t) = n["last_seen"].as_i64() { (ago(t, now)) } @else { "never" } }
            td.wide-only { (text(&n["version"])) }
            td.wide-only { (labels) }
            td.wide-only { (text(&n["control_plane"])) }
            td.wide-only { @if let Some(t) = n["cert_expiry"].as_i64() { (timestamp(t)) } }
            td { @if status != "revoked" {
                (layout::post_button(session, &format!("/nodes/{id}/revoke"), "Revoke",
                    &format!("Revoke node {}? It is refused from now on and must pair again.", text(&n["hostname"]))))
            } }
        }
    }
}
