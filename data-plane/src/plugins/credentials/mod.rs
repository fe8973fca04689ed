//! Finding credentials in a request (query, form, multipart, JSON body, headers) and removing them again
//! for `hide_credentials`. The parsing itself is in [`parse`]: pure functions over strings and bytes,
//! which the fuzz targets drive directly.

pub mod parse;
pub mod token;

use bytes::Bytes;
use http::StatusCode;

use super::exchange::Exchange;
use super::refusal::Refusal;
pub use parse::Source;
pub use token::{CredentialId, Token};

fn header(ex: &Exchange, name: http::header::HeaderName) -> Option<&str> {
    ex.parts.headers.get(name)?.to_str().ok()
}

/// Reads parameter `name` from the query string.
pub fn query_param(ex: &Exchange, name: &str) -> Option<String> {
    parse::query_value(ex.parts.uri.query()?, name)
}

/// Reads parameter `name` from a form, multipart or JSON body. A malformed JSON body is a 400.
pub async fn body_param(
    ex: &mut Exchange,
    name: &str,
) -> Result<Option<(String, Source)>, Refusal> {
    let Some(content_type) = header(ex, http::header::CONTENT_TYPE).map(str::to_string) else {
        return Ok(None);
    };
    if !parse::body_may_hold_params(&content_type) {
        return Ok(None);
    }
    let body = ex.buffered_body().await?;
    parse::body_value(&content_type, &body, name).map_err(|parse::MalformedJson| {
        Refusal::message(
            StatusCode::BAD_REQUEST,
            "Cannot parse JSON body",
            "malformed_body",
        )
    })
}

/// The token of an `Authorization: Bearer <t>` (or `Token <t>`) header, scheme case-insensitive, left in
/// the field's value.
pub fn bearer_header(ex: &Exchange) -> Option<Token> {
    let value = ex.parts.headers.get(http::header::AUTHORIZATION)?;
    let at = parse::bearer_range(value.to_str().ok()?)?;
    Some(Token::Field {
        value: value.clone(),
        at,
    })
}

/// User and password of an `Authorization: Basic` header.
pub fn basic_header(ex: &Exchange) -> Option<(String, String)> {
    parse::basic_credentials(header(ex, http::header::AUTHORIZATION)?)
}

/// Removes parameters `names` from where they were found.
pub async fn remove(ex: &mut Exchange, source: Source, names: &[&str]) {
    match source {
        Source::Header => {
            ex.parts.headers.remove(http::header::AUTHORIZATION);
        }
        Source::Query => {
            let Some(q) = ex.parts.uri.query() else {
                return;
            };
            let kept = parse::query_without(q, names);
            let path = ex.parts.uri.path();
            let pq = if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{kept}")
            };
            let mut parts = ex.parts.uri.clone().into_parts();
            if let Ok(p) = pq.parse() {
                parts.path_and_query = Some(p);
                if let Ok(u) = http::Uri::from_parts(parts) {
                    ex.parts.uri = u;
                }
            }
        }
        Source::Form | Source::Json | Source::Multipart => {
            let content_type = header(ex, http::header::CONTENT_TYPE)
                .unwrap_or_default()
                .to_string();
            let Ok(body) = ex.buffered_body().await else {
                return;
            };
            if let Some(stripped) = parse::body_without(source, &content_type, &body, names) {
                ex.set_body(Bytes::from(stripped));
            }
        }
    }
}
