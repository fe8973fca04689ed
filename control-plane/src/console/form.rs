//! A form a console page submitted: read (URL-encoded, or multipart for an uploaded file), bounded in size,
//! and accepted only with the session's CSRF token.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::Response;

use super::errors;
use super::sessions::{csrf_ok, Session};

/// Largest form accepted (a pasted declarative configuration fits).
pub const FORM_LIMIT: usize = 16 * 1024 * 1024;

/// The fields of a submitted form, in order, without the CSRF token.
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` when empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Form {
        Form {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A form of a signed-in session, its CSRF token checked.
pub struct SessionForm {
    pub session: Session,
    pub form: Form,
}

impl<S: Send + Sync> FromRequest<S> for SessionForm {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<SessionForm, Response> {
        let session = req.extensions().get::<Session>().cloned().ok_or_else(|| {
            errors::page(StatusCode::FORBIDDEN, "Not signed in", "Sign in again.")
        })?;
        let form = read(req).await?;
        if !csrf_ok(&session, form.get("csrf")) {
            tracing::warn!("console form refused: missing or wrong CSRF token");
            return Err(errors::page(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form did not carry this session's security token (it may come from another site, or \
                 from before you last signed in). Nothing was changed: reload the page and try again.",
            ));
        }
        let pairs = form
            .pairs
            .into_iter()
            .filter(|(k, _)| k != "csrf")
            .collect();
        Ok(SessionForm {
            session,
            form: Form { pairs },
        })
    }
}

/// Reads a URL-encoded or multipart form.
pub async fn read(req: Request) -> Result<Form, Response> {
    let bad = |why: String| errors::page(StatusCode::BAD_REQUEST, "Unreadable form", &why);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(req.into_body(), FORM_LIMIT)
        .await
        .map_err(|_| {
            errors::page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                &format!("A form may hold at most {FORM_LIMIT} bytes."),
            )
        })?;
    let media = shared::http_syntax::media_type(&content_type);
    let pairs = match media.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| bad(format!("cannot read the form: {e}")))?,
        "multipart/form-data" => multipart(&content_type, bytes)
            .await
            .map_err(|e| bad(format!("cannot read the form: {e}")))?,
        other => {
            return Err(bad(format!(
                "forms are sent URL-encoded or multipart, not as '{other}'"
            )))
        }
    };
    Ok(Form { pairs })
}

async fn multipart(
    content_type: &str,
    bytes: axum::body::Bytes,
) -> Result<Vec<(String, String)>, String> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::new(body, boundary);
    let mut pairs = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        let value = field.bytes().await.map_err(|e| e.to_string())?;
        let text = String::from_utf8(value.to_vec())
            .map_err(|_| format!("field '{name}' is not UTF-8 text"))?;
        pairs.push((name, text));
    }
    Ok(pairs)
}
