//! Credential parsing over plain strings and bytes: no request types, no I/O.

use base64::Engine;
use serde_json::Value;
use shared::http_syntax::media_type;

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Query,
    Form,
    Multipart,
    Json,
    Header,
}

/// A JSON body that is not JSON (answered 400, as Kong does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedJson;

/// True for the body types a credential may be read from (the body is buffered only for these).
pub fn body_may_hold_params(content_type: &str) -> bool {
    let e = media_type(content_type);
    e == "application/x-www-form-urlencoded"
        || e == "multipart/form-data"
        || e == "application/json"
        || e.ends_with("+json")
}

/// Parameter `name` of a query string.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The query string without parameters `names`.
pub fn query_without(query: &str, names: &[&str]) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .collect();
    serde_urlencoded::to_string(&kept).unwrap_or_default()
}

/// Parameter `name` of a form, multipart or JSON body (a string member of a JSON object).
pub fn body_value(
    content_type: &str,
    body: &[u8],
    name: &str,
) -> Result<Option<(String, Source)>, MalformedJson> {
    match media_type(content_type).as_str() {
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).unwrap_or_default();
            Ok(pairs
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| (v, Source::Form)))
        }
        "multipart/form-data" => Ok(multipart_boundary(content_type)
            .and_then(|b| multipart_field(body, &b, name))
            .map(|v| (v, Source::Multipart))),
        ct if ct == "application/json" || ct.ends_with("+json") => {
            if body.is_empty() {
                return Ok(None);
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => Ok(m
                    .get(name)
                    .and_then(Value::as_str)
                    .map(|s| (s.to_string(), Source::Json))),
                Ok(_) => Ok(None),
                Err(_) => Err(MalformedJson),
            }
        }
        _ => Ok(None),
    }
}

/// The body without parameters `names`, for a body of `source`'s kind; `None` when it cannot be read.
pub fn body_without(
    source: Source,
    content_type: &str,
    body: &[u8],
    names: &[&str],
) -> Option<Vec<u8>> {
    match source {
        Source::Form => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).unwrap_or_default();
            let kept: Vec<(String, String)> = pairs
                .into_iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .collect();
            Some(
                serde_urlencoded::to_string(&kept)
                    .unwrap_or_default()
                    .into_bytes(),
            )
        }
        Source::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut m)) => {
                for n in names {
                    m.remove(*n);
                }
                Some(serde_json::to_vec(&m).expect("json serialises"))
            }
            _ => None,
        },
        Source::Multipart => {
            multipart_boundary(content_type).map(|b| multipart_without(body, &b, names))
        }
        Source::Query | Source::Header => None,
    }
}

/// The token of an `Authorization: Bearer <t>` (or `Token <t>`) value, scheme case-insensitive.
pub fn bearer_token(authorization: &str) -> Option<String> {
    bearer_range(authorization).map(|at| authorization[at].to_string())
}

/// Where the token of an `Authorization: Bearer <t>` (or `Token <t>`) value is.
pub fn bearer_range(authorization: &str) -> Option<std::ops::Range<usize>> {
    let lead = authorization.len() - authorization.trim_start().len();
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")) {
        return None;
    }
    let t = rest.trim();
    if t.is_empty() {
        return None;
    }
    let start = lead + scheme.len() + 1 + (rest.len() - rest.trim_start().len());
    Some(start..start + t.len())
}

/// User and password of an `Authorization: Basic` value.
pub fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
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

/// The `boundary` parameter of a multipart `Content-Type`.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("boundary=")
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

pub fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    multipart_parts(body, boundary)
        .into_iter()
        .find_map(|part| {
            let (n, start) = part_name(part)?;
            (n == name).then(|| String::from_utf8_lossy(&part[start..]).to_string())
        })
}

pub fn multipart_without(body: &[u8], boundary: &str, names: &[&str]) -> Vec<u8> {
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
    out
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
        let ct = "multipart/form-data; boundary=XyZ";
        assert_eq!(
            body_value(ct, body, "access_token"),
            Ok(Some(("tok".to_string(), Source::Multipart)))
        );
        let stripped = multipart_without(body, "XyZ", &["access_token"]);
        assert_eq!(multipart_field(&stripped, "XyZ", "access_token"), None);
        assert_eq!(multipart_field(&stripped, "XyZ", "a").as_deref(), Some("1"));
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn authorization_values() {
        assert_eq!(bearer_token("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(bearer_token("Token x").as_deref(), Some("x"));
        assert_eq!(bearer_token("Bearer "), None);
        let v = " Bearer \t tok.en  ";
        assert_eq!(&v[bearer_range(v).unwrap()], "tok.en");
        assert_eq!(bearer_range("Basic abc"), None);
        assert_eq!(
            basic_credentials("Basic YTpi"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(basic_credentials("Basic !!"), None);
        assert_eq!(
            body_value("application/json", b"{", "a"),
            Err(MalformedJson)
        );
        assert_eq!(
            query_without("a=1&access_token=t&b=2", &["access_token"]),
            "a=1&b=2"
        );
    }
}
