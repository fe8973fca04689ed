//! Creating and editing entities with forms generated from the Admin API's schemas; a refused form comes
//! back with the API's message beside each field it names.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::admin_client::Answer;
use super::collections::Collection;
use super::entities::{collection, enc, labels};
use super::form::SessionForm;
use super::layout;
use super::schema_form::{self, Errors, FieldKind, FieldSpec, Purpose, References};
use super::sessions::Session;
use super::{errors, Console, ConsoleCtx};

/// The routes of entity forms.
pub fn routes() -> Router<Arc<ConsoleCtx>> {
    Router::new()
        .route("/entities/{collection}/new", get(new).post(create))
        .route("/entities/{collection}/{id}/edit", get(edit).post(update))
}

#[derive(Deserialize, Default)]
pub struct PluginName {
    name: Option<String>,
}

/// The fields of `collection`'s form; for a plugin, its config's fields come from the plugin's schema.
pub async fn fields_of(
    state: &ConsoleCtx,
    collection: &str,
    plugin: Option<&str>,
    skip: &[&str],
) -> Result<Vec<FieldSpec>, Answer> {
    let entity = state.admin.get(&format!("/schemas/{collection}")).await;
    if !entity.ok() {
        return Err(entity);
    }
    let Some(plugin) = plugin else {
        return Ok(schema_form::parse_fields(&entity.body, skip));
    };
    let mut fields = schema_form::parse_fields(&entity.body, &[skip, &["config", "name"]].concat());
    let own = state
        .admin
        .get(&format!("/schemas/plugins/{}", enc(plugin)))
        .await;
    if !own.ok() {
        return Err(own);
    }
    fields.extend(
        schema_form::parse_fields(&own.body, &[])
            .into_iter()
            .filter(|f| f.name == "config"),
    );
    Ok(fields)
}

/// The entities the form's reference fields may pick from.
pub async fn references(state: &ConsoleCtx, fields: &[FieldSpec]) -> References {
    let mut refs = References::new();
    for f in fields {
        if let FieldKind::Foreign(c) = &f.kind {
            if !refs.contains_key(c) {
                let mut choices: Vec<(String, String)> =
                    labels(state, c).await.into_iter().collect();
                choices.sort_by(|a, b| a.1.cmp(&b.1));
                refs.insert(c.clone(), choices);
            }
        }
    }
    refs
}

/// What a form page shows.
pub struct FormView<'a> {
    pub session: &'a Session,
    pub action: String,
    pub fields: &'a [FieldSpec],
    pub values: &'a Value,
    pub errors: &'a Errors,
    pub refs: &'a References,
    /// The API's message after a refusal.
    pub message: Option<String>,
    pub hidden: Vec<(&'static str, String)>,
    pub submit: &'static str,
}

/// A form whose inputs follow the schema.
pub fn render(v: &FormView) -> Markup {
    html! {
        @if let Some(m) = &v.message { (layout::notice(false, m)) }
        @if let Some(e) = v.errors.get("@entity") { p.field-error { (e) } }
        form.entity method="post" action=(v.action) novalidate {
            (layout::csrf_field(v.session))
            @for (name, value) in &v.hidden { input type="hidden" name=(name) value=(value); }
            (schema_form::inputs(v.fields, "", v.values, v.errors, v.refs))
            button.primary type="submit" { (v.submit) }
        }
    }
}

async fn new(
    state: Console,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(plugin): Query<PluginName>,
) -> Response {
    let c = match collection(&name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if c.name == "plugins" && plugin.name.is_none() {
        return choose_plugin(&state, &session).await;
    }
    let fields = match fields_of(&state, c.name, plugin.name.as_deref(), &[]).await {
        Ok(f) => f,
        Err(a) => return errors::page(a.status, "No form", &a.message()),
    };
    let refs = references(&state, &fields).await;
    page(
        &session,
        c,
        "New",
        &FormView {
            session: &session,
            action: new_action(c, plugin.name.as_deref()),
            fields: &fields,
            values: &Value::Null,
            errors: &Errors::new(),
            refs: &refs,
            message: None,
            hidden: plugin.name.iter().map(|n| ("name", n.clone())).collect(),
            submit: "Create",
        },
        StatusCode::OK,
    )
}

fn new_action(c: &Collection, plugin: Option<&str>) -> String {
    match plugin {
        Some(p) => format!("/entities/{}/new?name={}", c.name, enc(p)),
        None => format!("/entities/{}/new", c.name),
    }
}

fn page(
    session: &Session,
    c: &Collection,
    verb: &str,
    view: &FormView,
    status: StatusCode,
) -> Response {
    let title = format!("{verb} {}", c.one);
    let body = render(view);
    (
        status,
        Html(
            layout::page(
                Some(session),
                &format!("/entities/{}", c.name),
                &title,
                body,
            )
            .into_string(),
        ),
    )
        .into_response()
}

async fn choose_plugin(state: &ConsoleCtx, session: &Session) -> Response {
    let enabled = state.admin.get("/plugins/enabled").await;
    let names: Vec<String> = enabled.body["enabled_plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let body = html! {
        p { "Which plugin? Its form follows its own schema." }
        ul { @for n in &names { li { a href={ "/entities/plugins/new?name=" (enc(n)) } { (n) } } } }
    };
    Html(layout::page(Some(session), "/entities/plugins", "New plugin", body).into_string())
        .into_response()
}

async fn create(
    state: Console,
    Path(name): Path<String>,
    Query(plugin): Query<PluginName>,
    submitted: SessionForm,
) -> Response {
    let c = match collection(&name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let plugin = plugin
        .name
        .or_else(|| submitted.form.text("name").map(str::to_string));
    let plugin = plugin.filter(|_| c.name == "plugins");
    let fields = match fields_of(&state, c.name, plugin.as_deref(), &[]).await {
        Ok(f) => f,
        Err(a) => return errors::page(a.status, "No form", &a.message()),
    };
    let (mut body, local) = schema_form::body(&fields, &submitted.form, Purpose::Create);
    if let Some(p) = &plugin {
        body.insert("name".into(), Value::String(p.clone()));
    }
    let path = format!("/{}", c.name);
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
            action: new_action(c, plugin.as_deref()),
            hidden: plugin.iter().map(|n| ("name", n.clone())).collect(),
            verb: "New",
            done: |e: &Value| {
                format!(
                    "/entities/{}/{}?saved=1",
                    c.name,
                    e["id"].as_str().unwrap_or_default()
                )
            },
        },
    )
    .await
}

/// A form's body on its way to the Admin API.
pub struct Submission<'a, F> {
    pub method: Method,
    pub path: &'a str,
    pub fields: &'a [FieldSpec],
    pub body: Map<String, Value>,
    pub local: Errors,
    pub action: String,
    pub hidden: Vec<(&'static str, String)>,
    pub verb: &'static str,
    /// Where the browser goes once the API accepted it, from the API's answer.
    pub done: F,
}

/// Sends a form's body to the Admin API; on a refusal, answers the form again with the errors beside
/// the fields (and secrets left empty).
pub async fn submit<F: Fn(&Value) -> String>(
    state: &ConsoleCtx,
    c: &Collection,
    session: &Session,
    s: Submission<'_, F>,
) -> Response {
    let (errors, message, status) = if s.local.is_empty() {
        let answer = state
            .admin
            .call(
                s.method.clone(),
                s.path,
                Some(&Value::Object(s.body.clone())),
            )
            .await;
        if answer.ok() {
            return Redirect::to(&(s.done)(&answer.body)).into_response();
        }
        let status = if answer.status.is_server_error() {
            answer.status
        } else {
            StatusCode::BAD_REQUEST
        };
        (
            schema_form::api_errors(&answer.body["fields"]),
            answer.message(),
            status,
        )
    } else {
        (
            s.local,
            "Some fields are not valid: nothing was sent.".to_string(),
            StatusCode::BAD_REQUEST,
        )
    };
    let values = schema_form::without_secrets(s.fields, &s.body);
    let refs = references(state, s.fields).await;
    page(
        session,
        c,
        s.verb,
        &FormView {
            session,
            action: s.action,
            fields: s.fields,
            values: &values,
            errors: &errors,
            refs: &refs,
            message: Some(message),
            hidden: s.hidden,
            submit: if s.method == Method::POST {
                "Create"
            } else {
                "Save"
            },
        },
        status,
    )
}

/// The collection, the stored entity and its form's fields, for an edit.
async fn editing(
    state: &ConsoleCtx,
    name: &str,
    id: &str,
) -> Result<(&'static Collection, Value, Vec<FieldSpec>), Response> {
    let c = collection(name)?;
    let current = state.admin.get(&format!("/{}/{}", c.name, enc(id))).await;
    if !current.ok() {
        return Err(errors::page(
            current.status,
            "Cannot edit",
            &current.message(),
        ));
    }
    let plugin = current.body["name"]
        .as_str()
        .filter(|_| c.name == "plugins");
    let fields = fields_of(state, c.name, plugin, &[])
        .await
        .map_err(|a| errors::page(a.status, "No form", &a.message()))?;
    Ok((c, current.body, fields))
}

async fn edit(
    state: Console,
    Extension(session): Extension<Session>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let (c, current, fields) = match editing(&state, &name, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let refs = references(&state, &fields).await;
    page(
        &session,
        c,
        "Edit",
        &FormView {
            session: &session,
            action: format!("/entities/{}/{}/edit", c.name, enc(&id)),
            fields: &fields,
            values: &current,
            errors: &Errors::new(),
            refs: &refs,
            message: None,
            hidden: Vec::new(),
            submit: "Save",
        },
        StatusCode::OK,
    )
}

async fn update(
    state: Console,
    Path((name, id)): Path<(String, String)>,
    submitted: SessionForm,
) -> Response {
    let (c, _, fields) = match editing(&state, &name, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let (body, local) = schema_form::body(&fields, &submitted.form, Purpose::Edit);
    let path = format!("/{}/{}", c.name, enc(&id));
    let done = format!("/entities/{}/{}?saved=1", c.name, enc(&id));
    submit(
        &state,
        c,
        &submitted.session,
        Submission {
            method: Method::PATCH,
            path: &path,
            fields: &fields,
            body,
            local,
            action: format!("/entities/{}/{}/edit", c.name, enc(&id)),
            hidden: Vec::new(),
            verb: "Edit",
            done: |_: &Value| done.clone(),
        },
    )
    .await
}
