//! Signing in with the admin token, and out.

use axum::extract::{Query, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::form::{self, SessionForm};
use super::layout;
use super::sessions::{cookie_value, set_cookie};
use super::Console;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `GET /login`: the sign-in form.
pub async fn form(Query(q): Query<Next>) -> Html<String> {
    Html(login_page(q.next.as_deref(), None).into_string())
}

fn login_page(next: Option<&str>, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { (layout::notice(false, e)) }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(safe_next(next));
            p {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
            }
            p.hint { "The token the control plane was started with (" code { "--admin-token-file" } ")." }
            button type="submit" { "Sign in" }
        }
    };
    layout::page(None, "", "Sign in", body)
}

/// Where to go after signing in: a path of this console, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

/// `POST /login`: the admin token exchanged for a session cookie.
pub async fn submit(state: Console, req: Request) -> Response {
    let headers = req.headers().clone();
    let form = match form::read(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(form.get("next")).to_string();
    let presented = form
        .get("token")
        .unwrap_or_default()
        .trim()
        .as_bytes()
        .to_vec();
    let accepted = match &state.admin_token {
        Some(expected) => crate::admin::constant_time_eq(&presented, expected.as_bytes()),
        None => true,
    };
    if !accepted {
        tracing::warn!("console sign-in refused: wrong admin token");
        let page = login_page(Some(&next), Some("Wrong token: nothing was signed in."));
        return (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response();
    }
    let id = state.sessions.start();
    tracing::info!("console session started");
    signed(&headers, &id, &next)
}

fn signed(headers: &HeaderMap, id: &str, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(v) = set_cookie(headers, id).parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `POST /logout`: the session ends, the cookie is cleared.
pub async fn logout(state: Console, headers: HeaderMap, _form: SessionForm) -> Response {
    if let Some(id) = cookie_value(&headers) {
        state.sessions.end(&id);
    }
    signed(&headers, "", "/login")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/entities/routes?tags=a")),
            "/entities/routes?tags=a"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
