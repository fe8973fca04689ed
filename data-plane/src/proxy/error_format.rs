//! The format of Portcullis's own error answers, chosen from the client's `Accept` as Kong chooses it:
//! the media type with the highest `q` among `application/json` (the default), `text/html`,
//! `application/xml` and `text/plain`. A browser that navigates gets an HTML page, `curl -H 'Accept:
//! text/plain'` a line of text; the message is the same. Only answers whose body is Kong's
//! `{"message": …}` change: a plugin's other bodies (RFC 6750's `error` fields) stay JSON.

use bytes::Bytes;
use http::{header, HeaderValue, Response};

use crate::body::{full, ProxyBody};

/// How an error answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Html,
    Xml,
    Plain,
}

impl ErrorFormat {
    /// The format `accept` asks for: the known media type with the highest quality (the first of
    /// equals); JSON when none is known.
    pub fn of(accept: Option<&HeaderValue>) -> ErrorFormat {
        let Some(text) = accept.and_then(|a| a.to_str().ok()) else {
            return ErrorFormat::Json;
        };
        let mut best = (ErrorFormat::Json, 0.0_f32);
        for range in text.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/json" => ErrorFormat::Json,
                "text/html" => ErrorFormat::Html,
                "application/xml" | "text/xml" => ErrorFormat::Xml,
                "text/plain" => ErrorFormat::Plain,
                _ => continue,
            };
            if q > best.1 {
                best = (format, q);
            }
        }
        best.0
    }

    /// `resp` (whose body says `message`) written in this format: same status and fields.
    pub fn rewrite(self, mut resp: Response<ProxyBody>, message: &str) -> Response<ProxyBody> {
        let (content_type, body) = match self {
            ErrorFormat::Json => return resp,
            ErrorFormat::Html => (
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>{}.</p>\n  </body>\n</html>\n",
                    escape(message)
                ),
            ),
            ErrorFormat::Xml => (
                "application/xml; charset=utf-8",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>{}</message>\n</error>\n",
                    escape(message)
                ),
            ),
            ErrorFormat::Plain => ("text/plain; charset=utf-8", format!("{message}\n")),
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        *resp.body_mut() = full(Bytes::from(body));
        resp
    }
}

/// Text for HTML and XML: `&`, `<`, `>`, `"` and `'` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(accept: &str) -> ErrorFormat {
        ErrorFormat::of(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn the_highest_known_quality_wins() {
        assert_eq!(ErrorFormat::of(None), ErrorFormat::Json);
        assert_eq!(of("*/*"), ErrorFormat::Json);
        assert_eq!(
            of("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ErrorFormat::Html
        );
        assert_eq!(of("application/json;q=0.5, text/plain"), ErrorFormat::Plain);
        assert_eq!(of("TEXT/XML"), ErrorFormat::Xml);
        assert_eq!(
            of("text/html;q=0.2, application/json;q=0.2"),
            ErrorFormat::Html
        );
        assert_eq!(of("image/png"), ErrorFormat::Json);
    }

    #[test]
    fn each_format_carries_the_message_escaped() {
        let base = || {
            let mut r = Response::new(full(Bytes::from_static(b"{}")));
            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            r
        };
        let html = ErrorFormat::Html.rewrite(base(), "a <b> & \"c\"");
        assert_eq!(html.status(), 401);
        assert_eq!(html.headers()["www-authenticate"], "Bearer");
        assert!(html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let plain = ErrorFormat::Plain.rewrite(base(), "Unauthorized");
        assert!(plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(escape("a <b> & \"c\""), "a &lt;b&gt; &amp; &quot;c&quot;");
    }
}
