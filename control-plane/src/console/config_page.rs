//! The declarative configuration: export it, paste or upload a document, see what it would change (the
//! Admin API's dry run), then apply exactly that document.

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use maud::{html, Markup};
use serde_json::Value;

use super::form::SessionForm;
use super::layout::{self, csrf_field, text};
use super::sessions::Session;
use super::{Console, ConsoleCtx};

/// The routes of this page.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/config", get(page))
        .route("/config/export", get(export))
        .route("/config/diff", post(diff))
        .route("/config/apply", post(apply))
}

async fn page(Extension(session): Extension<Session>) -> Html<String> {
    Html(render(&session, "", None, html! {}))
}

fn render(session: &Session, document: &str, problem: Option<&str>, result: Markup) -> String {
    let body = html! {
        p { a href="/config/export" download="portcullis.yaml" { "Download the current configuration (YAML)" } }
        @if let Some(p) = problem { (layout::notice(false, p)) }
        (result)
        h2 { "Import" }
        form.entity method="post" action="/config/diff" enctype="multipart/form-data" {
            (csrf_field(session))
            div.field {
                label for="document" { "Declarative configuration (YAML or JSON)" }
                textarea #document name="document" rows="16" spellcheck="false" { (document) }
            }
            div.field {
                label for="upload" { "Or upload a file" }
                input #upload type="file" name="upload" accept=".yaml,.yml,.json,application/yaml,application/json";
            }
            button.primary type="submit" { "Show what changes" }
        }
    };
    layout::page(Some(session), "/config", "Configuration", body).into_string()
}

fn respond(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

async fn export(state: Console) -> Response {
    let answer = state
        .admin
        .send(Method::GET, "/config?format=yaml", None, Bytes::new())
        .await;
    let Value::String(text) = answer.body else {
        return super::errors::page(answer.status, "Cannot export", &answer.message());
    };
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"portcullis.yaml\""),
    );
    response
}

/// The document a form carries: an uploaded file wins over the text area.
fn document(submitted: &SessionForm) -> String {
    submitted
        .form
        .text("upload")
        .or_else(|| submitted.form.text("document"))
        .unwrap_or_default()
        .to_string()
}

async fn send(state: &ConsoleCtx, document: &str, dry_run: bool) -> super::admin_client::Answer {
    let path = if dry_run {
        "/config?dry_run=1"
    } else {
        "/config"
    };
    state
        .admin
        .send(
            Method::POST,
            path,
            Some("application/yaml"),
            Bytes::from(document.to_string()),
        )
        .await
}

async fn diff(state: Console, submitted: SessionForm) -> Response {
    let doc = document(&submitted);
    let session = &submitted.session;
    if doc.is_empty() {
        let h = render(
            session,
            "",
            Some("Paste a document or choose a file."),
            html! {},
        );
        return respond(StatusCode::BAD_REQUEST, h);
    }
    let answer = send(&state, &doc, true).await;
    if !answer.ok() {
        let h = render(session, &doc, Some(&answer.message()), html! {});
        return respond(StatusCode::BAD_REQUEST, h);
    }
    let changes = answer.body["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = &answer.body["summary"];
    let result = html! {
        h2 { "What it changes" }
        p #summary { (text(&s["created"])) " created, " (text(&s["updated"])) " updated, " (text(&s["deleted"])) " deleted." }
        @if changes.is_empty() {
            p { "Nothing: the document holds what is configured." }
        } @else {
            div.scroll { table #changes {
                thead { tr { th scope="col" { "Change" } th scope="col" { "Entity" } th scope="col" { "Name" } th scope="col" { "Fields" } } }
                tbody { @for c in &changes {
                    @let action = c["action"].as_str().unwrap_or_default();
                    tr {
                        td class=(diff_class(action)) { (action) }
                        td { (text(&c["entity"])) }
                        td { (text(&c["name"])) }
                        td { (text(&c["fields"])) }
                    }
                } }
            } }
            form method="post" action="/config/apply" {
                (csrf_field(session))
                input type="hidden" name="document" value=(doc);
                button.primary type="submit" { "Apply these changes" }
            }
        }
    };
    let h = render(session, &doc, None, result);
    respond(StatusCode::OK, h)
}

fn diff_class(action: &str) -> &'static str {
    match action {
        "create" => "diff-add",
        "delete" => "diff-remove",
        _ => "",
    }
}

async fn apply(state: Console, submitted: SessionForm) -> Response {
    let doc = document(&submitted);
    let session = &submitted.session;
    let answer = send(&state, &doc, false).await;
    if !answer.ok() {
        let h = render(session, &doc, Some(&answer.message()), html! {});
        return respond(StatusCode::BAD_REQUEST, h);
    }
    let result = layout::notice(
        true,
        &format!(
            "Applied: configuration version {}.",
            text(&answer.body["config_version"])
        ),
    );
    let h = render(session, "", None, result);
    respond(StatusCode::OK, h)
}
