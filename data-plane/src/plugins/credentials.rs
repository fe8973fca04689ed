//! Finding credentials in a request (query, form, multipart, JSON body, headers) and removing them again
//! for `hide_credentials`.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::{json_response, Exchange, ProxyBody};

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Query,
    Form,
    Multipart,
    Json,
    Header,
}

/// Reads parameter `name` from the query string.
pub fn query_param(ex: &Exchange, name: &str) -> Option<String> {
    let q = ex.parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Reads parameter `name` from a form, multipart or JSON body. A malformed JSON body is a 400.
pub async fn body_param(
    ex: &mut Exchange,
    name: &str,
) -> Result<Option<(String, Source)>, Response<ProxyBody>> {
    let Some(ct) = ex.content_type() else {
        return Ok(None);
    };
    match ct.as_str() {
        "application/x-www-form-urlencoded" => {
            let body = ex.buffered_body().await?;
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            Ok(pairs
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| (v, Source::Form)))
        }
        "multipart/form-data" => {
            let boundary = multipart_boundary(ex);
            let body = ex.buffered_body().await?;
            Ok(boundary
                .and_then(|b| multipart_field(&body, &b, name))
                .map(|v| (v, Source::Multipart)))
        }
        ct if ct == "application/json" || ct.ends_with("+json") => {
            let body = ex.buffered_body().await?;
            if body.is_empty() {
                return Ok(None);
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => Ok(m
                    .get(name)
                    .and_then(Value::as_str)
                    .map(|s| (s.to_string(), Source::Json))),
                Ok(_) => Ok(None),
                Err(_) => Err(json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"message": "Cannot parse JSON body"}),
                    &[],
                )),
            }
        }
        _ => Ok(None),
    }
}

/// The token of an `Authorization: Bearer <t>` (or `Token <t>`) header, scheme case-insensitive.
pub fn bearer_header(ex: &Exchange) -> Option<String> {
    let v = ex
        .parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        let t = rest.trim();
        (!t.is_empty()).then(|| t.to_string())
    } else {
        None
    }
}

/// User and password of an `Authorization: Basic` header.
pub fn basic_header(ex: &Exchange) -> Option<(String, String)> {
    use base64::Engine;
    let v = ex
        .parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
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
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap_or_default();
            let kept: Vec<(String, String)> = pairs
                .into_iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .collect();
            let path = ex.parts.uri.path().to_string();
            let pq = if kept.is_empty() {
                path
            } else {
                format!(
                    "{path}?{}",
                    serde_urlencoded::to_string(&kept).unwrap_or_default()
                )
            };
            let mut parts = ex.parts.uri.clone().into_parts();
            if let Ok(p) = pq.parse() {
                parts.path_and_query = Some(p);
                if let Ok(u) = http::Uri::from_parts(parts) {
                    ex.parts.uri = u;
                }
            }
        }
        Source::Form => {
            let Ok(body) = ex.buffered_body().await else {
                return;
            };
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            let kept: Vec<(String, String)> = pairs
                .into_iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .collect();
            ex.set_body(Bytes::from(
                serde_urlencoded::to_string(&kept).unwrap_or_default(),
            ));
        }
        Source::Json => {
            let Ok(body) = ex.buffered_body().await else {
                return;
            };
            if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(&body) {
                for n in names {
                    m.remove(*n);
                }
                ex.set_body(Bytes::from(
                    serde_json::to_vec(&m).expect("json serialises"),
                ));
            }
        }
        Source::Multipart => {
            let boundary = multipart_boundary(ex);
            let Ok(body) = ex.buffered_body().await else {
                return;
            };
            if let Some(b) = boundary {
                ex.set_body(multipart_without(&body, &b, names));
            }
        }
    }
}

fn multipart_boundary(ex: &Exchange) -> Option<String> {
    let ct = ex
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    ct.split(';').find_map(|p| {
        let p = p.trim();
        p.strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_string())
    })
}

/// Splits a multipart body into (part bytes including headers) slices.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut positions = Vec::new();
    let d = delim.as_bytes();
    let mut i = 0;
    while i + d.len() <= text.len() {
        if &text[i..i + d.len()] == d {
            positions.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    for w in positions.windows(2) {
        let start = w[0] + d.len();
        let part = &text[start..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        parts.push(part);
    }
    parts
}

fn part_name(part: &[u8]) -> Option<(String, usize)> {
    let sep = part.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = std::str::from_utf8(&part[..sep]).ok()?;
    let name = headers.lines().find_map(|l| {
        let lower = l.to_ascii_lowercase();
        if !lower.starts_with("content-disposition:") {
            return None;
        }
        l.split(';').find_map(|p| {
            p.trim()
                .strip_prefix("name=")
                .map(|n| n.trim_matches('"').to_string())
        })
    })?;
    Some((name, sep + 4))
}

fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    multipart_parts(body, boundary)
        .into_iter()
        .find_map(|part| {
            let (n, start) = part_name(part)?;
            (n == name).then(|| String::from_utf8_lossy(&part[start..]).to_string())
        })
}

fn multipart_without(body: &[u8], boundary: &str, names: &[&str]) -> Bytes {
    let mut out = Vec::with_capacity(body.len());
    for part in multipart_parts(body, boundary) {
        if part_name(part).is_some_and(|(n, _)| names.contains(&n.as_str())) {
            continue;
        }
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_find_and_remove() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\ntok\r\n--XyZ--\r\n";
        assert_eq!(
            multipart_field(body, "XyZ", "access_token").as_deref(),
            Some("tok")
        );
        let stripped = multipart_without(body, "XyZ", &["access_token"]);
        assert_eq!(multipart_field(&stripped, "XyZ", "access_token"), None);
        assert_eq!(multipart_field(&stripped, "XyZ", "a").as_deref(), Some("1"));
    }
}
