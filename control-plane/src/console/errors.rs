//! Pages for requests the console cannot carry out.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use super::layout;

/// A page saying why nothing was done.
pub fn page(status: StatusCode, title: &str, why: &str) -> Response {
    let body = html! {
        (layout::notice(false, why))
        p { a href="/" { "Back to the console" } }
    };
    (
        status,
        Html(layout::page(None, "", title, body).into_string()),
    )
        .into_response()
}

/// 404.
pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no console page at this address.",
    )
}
