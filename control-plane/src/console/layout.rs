//! The page shell every console page shares: navigation, sign-out, and small pieces (the CSRF field,
//! notices, times).

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::sessions::Session;

/// The entries of the navigation, as (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Cluster"),
    ("/entities/services", "Services"),
    ("/entities/routes", "Routes"),
    ("/entities/consumers", "Consumers"),
    ("/entities/plugins", "Plugins"),
    ("/entities/upstreams", "Upstreams"),
    ("/entities/certificates", "Certificates"),
    ("/entities/snis", "SNIs"),
    ("/entities/ca_certificates", "CA certificates"),
    ("/operations", "Operations"),
    ("/config", "Configuration"),
];

/// A whole page: `title` as its heading, `current` the navigation entry it belongs to.
pub fn page(session: Option<&Session>, current: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Portcullis console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Portcullis" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                @for (path, label) in NAV {
                                    li {
                                        @if *path == current {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A notice above a page's content: `ok` for a success, otherwise an error.
pub fn notice(ok: bool, text: &str) -> Markup {
    html! {
        @if ok {
            p.notice.ok role="status" { (text) }
        } @else {
            p.notice.error role="alert" { (text) }
        }
    }
}

/// A button that posts a one-field form (a deletion, a revocation), asking first when scripts run.
pub fn post_button(session: &Session, action: &str, label: &str, confirm: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=(confirm) {
            (csrf_field(session))
            button.danger type="submit" { (label) }
        }
    }
}

/// A JSON value as plain text (strings without quotes, null as a dash).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Seconds since the Unix epoch as a UTC date and time.
pub fn timestamp(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

/// How long ago `secs` (Unix time) was, from `now`.
pub fn ago(secs: i64, now: i64) -> String {
    let d = (now - secs).max(0);
    match d {
        0..=119 => format!("{d} s ago"),
        120..=7199 => format!("{} min ago", d / 60),
        _ => format!("{} h ago", d / 3600),
    }
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
