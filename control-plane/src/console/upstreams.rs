//! An upstream's targets on its page: each with the health the nodes report, a form to add one and a
//! button to remove one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;

use super::collections;
use super::entities::enc;
use super::entity_form::{fields_of, references, render, submit, FormView, Submission};
use super::form::SessionForm;
use super::layout::{self, text};
use super::schema_form::{self, Errors, Purpose};
use super::sessions::Session;
use super::{errors, Console, ConsoleCtx};

/// The routes of target changes.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/entities/upstreams/{id}/targets", post(add))
        .route(
            "/entities/upstreams/{id}/targets/{target}/delete",
            post(remove),
        )
}

/// The targets of upstream `id`, their health and the form that adds one.
pub async fn targets_section(state: &ConsoleCtx, session: &Session, id: &str) -> Markup {
    let targets = state
        .admin
        .list_all(&format!("/upstreams/{}/targets", enc(id)))
        .await
        .unwrap_or_default();
    let health: HashMap<String, Value> = state
        .admin
        .get(&format!("/upstreams/{}/health", enc(id)))
        .await
        .body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| Some((h["id"].as_str()?.to_string(), h.clone())))
        .collect();
    let form = match fields_of(state, "targets", None, &["upstream"]).await {
        Ok(fields) => {
            let refs = references(state, &fields).await;
            render(&FormView {
                session,
                action: format!("/entities/upstreams/{}/targets", enc(id)),
                fields: &fields,
                values: &Value::Null,
                errors: &Errors::new(),
                refs: &refs,
                message: None,
                hidden: Vec::new(),
                submit: "Add target",
            })
        }
        Err(a) => layout::notice(false, &a.message()),
    };
    html! {
        h2 { "Targets" }
        div.scroll { table #targets {
            thead { tr { th scope="col" { "Target" } th scope="col" { "Weight" } th scope="col" { "Health" }
                         th scope="col" { "Nodes reporting" } th scope="col" { span.skip { "Actions" } } } }
            tbody {
                @for t in &targets {
                    @let tid = t["id"].as_str().unwrap_or_default();
                    @let h = health.get(tid);
                    @let state_name = h.and_then(|h| h["health"].as_str()).unwrap_or("—");
                    tr {
                        td { (text(&t["target"])) }
                        td { (text(&t["weight"])) }
                        td { span class={ "health-" (state_name.to_lowercase()) } { (state_name) } }
                        td { @if let Some(h) = h { (text(&h["nodes"]["healthy"])) " healthy of " (text(&h["nodes"]["reporting"])) } }
                        td { (layout::post_button(session, &format!("/entities/upstreams/{}/targets/{}/delete", enc(id), enc(tid)),
                              "Remove", &format!("Remove target {}?", text(&t["target"])))) }
                    }
                }
            }
        } }
        h3 { "Add a target" }
        (form)
    }
}

async fn add(state: Console, Path(id): Path<String>, submitted: SessionForm) -> Response {
    let Some(c) = collections::named("upstreams") else {
        return errors::not_found();
    };
    let fields = match fields_of(&state, "targets", None, &["upstream"]).await {
        Ok(f) => f,
        Err(a) => return errors::page(a.status, "No form", &a.message()),
    };
    let (body, local) = schema_form::body(&fields, &submitted.form, Purpose::Create);
    let path = format!("/upstreams/{}/targets", enc(&id));
    let done = format!("/entities/upstreams/{}?saved=1", enc(&id));
    submit(
        &state,
        c,
        &submitted.session,
        Submission {
            method: Method::POST,
            path: &path,
            fields: &fields,
            body,
            local,
            action: path.replace("/upstreams", "/entities/upstreams"),
            hidden: Vec::new(),
            verb: "New target of",
            done: |_: &Value| done.clone(),
        },
    )
    .await
}

async fn remove(
    state: Console,
    Path((id, target)): Path<(String, String)>,
    _form: SessionForm,
) -> Response {
    let answer = state
        .admin
        .call(
            Method::DELETE,
            &format!("/upstreams/{}/targets/{}", enc(&id), enc(&target)),
            None,
        )
        .await;
    if !answer.ok() {
        return errors::page(answer.status, "Not removed", &answer.message());
    }
    Redirect::to(&format!("/entities/upstreams/{}", enc(&id))).into_response()
}
