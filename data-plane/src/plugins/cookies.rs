//! Cookies a plugin reads from a request and sets on its answer, through the `cookie` crate (RFC 6265
//! parsing and serialisation). A value too large for one cookie is split over `name`, `name_2`, … and
//! read back in that order; chunks left over from a larger value are cleared.

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue};

/// Largest value put in one cookie (browsers keep at least 4096 bytes per cookie, name and attributes
/// included).
pub const CHUNK: usize = 3800;
/// Most chunks one value may take.
pub const MAX_CHUNKS: usize = 8;

/// The attributes every cookie of a plugin instance is set with.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub path: String,
    pub domain: Option<String>,
    pub same_site: Option<SameSite>,
    pub http_only: bool,
    pub secure: bool,
}

/// The value of cookie `name` among the request's `Cookie` fields (the first, when sent twice).
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The name of chunk `n` (1-based) of `name`.
fn chunk_name(name: &str, n: usize) -> String {
    match n {
        1 => name.to_string(),
        n => format!("{name}_{n}"),
    }
}

/// A value split over `name`, `name_2`, …: the chunks present, joined, and how many there were. The
/// request's `Cookie` fields are read once.
pub fn get_chunked(headers: &HeaderMap, name: &str) -> (Option<String>, usize) {
    let mut parts: [Option<String>; MAX_CHUNKS] = Default::default();
    let fields: Vec<&str> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for field in &fields {
        for c in Cookie::split_parse(*field).filter_map(Result::ok) {
            let n = match c.name().strip_prefix(name) {
                Some("") => 1,
                Some(rest) => match rest.strip_prefix('_').and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if (2..=MAX_CHUNKS).contains(&n) => n,
                    _ => continue,
                },
                None => continue,
            };
            // The first of a name counts, as `get` reads it.
            if parts[n - 1].is_none() {
                parts[n - 1] = Some(c.value().to_string());
            }
        }
    }
    let count = parts.iter().take_while(|p| p.is_some()).count();
    let value: String = parts[..count]
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    ((count > 0).then_some(value), count)
}

/// A `Set-Cookie` value for `name=value` with `attrs`; `max_age` in seconds (`Some(0)` removes it).
pub fn set(name: &str, value: &str, attrs: &Attributes, max_age: Option<i64>) -> HeaderValue {
    let mut c = Cookie::build((name.to_string(), value.to_string()))
        .path(attrs.path.clone())
        .http_only(attrs.http_only)
        .secure(attrs.secure);
    if let Some(d) = &attrs.domain {
        c = c.domain(d.clone());
    }
    if let Some(s) = attrs.same_site {
        c = c.same_site(s);
    }
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    HeaderValue::from_str(&c.build().to_string())
        .expect("a cookie of token characters is a valid field value")
}

/// The `Set-Cookie` values that store `value` under `name` (split in chunks when large) and clear the
/// chunks of a previous, larger value (`previous` of them); `None` when it needs more than
/// [`MAX_CHUNKS`] chunks.
pub fn set_chunked(
    name: &str,
    value: &str,
    attrs: &Attributes,
    max_age: Option<i64>,
    previous: usize,
) -> Option<Vec<HeaderValue>> {
    let parts: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| std::str::from_utf8(c).expect("sealed values are ASCII"))
        .collect();
    if parts.len() > MAX_CHUNKS {
        return None;
    }
    let mut out: Vec<HeaderValue> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| set(&chunk_name(name, i + 1), part, attrs, max_age))
        .collect();
    for n in parts.len().max(1) + 1..=previous {
        out.push(set(&chunk_name(name, n), "", attrs, Some(0)));
    }
    Some(out)
}

/// The `Set-Cookie` values that remove `name` and its `count` chunks.
pub fn clear_chunked(name: &str, attrs: &Attributes, count: usize) -> Vec<HeaderValue> {
    (1..=count.max(1))
        .map(|n| set(&chunk_name(name, n), "", attrs, Some(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        Attributes {
            path: "/".into(),
            domain: None,
            same_site: Some(SameSite::Lax),
            http_only: true,
            secure: true,
        }
    }

    fn request(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(http::header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn a_cookie_is_found_among_several_fields_and_pairs() {
        let h = request(&["a=1; session=xyz; b=2", "session=later"]);
        assert_eq!(get(&h, "session").as_deref(), Some("xyz"));
        assert_eq!(get(&h, "b").as_deref(), Some("2"));
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(get(&request(&["garbage;;; =; session"]), "session"), None);
    }

    #[test]
    fn set_cookie_carries_every_attribute() {
        let mut a = attrs();
        a.domain = Some("example.com".into());
        let v = set("session", "abc", &a, Some(60));
        let text = v.to_str().unwrap();
        for part in [
            "session=abc",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Domain=example.com",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn large_values_are_chunked_read_back_in_order_and_leftovers_cleared() {
        let value: String = (0..CHUNK * 2 + 10)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let set = set_chunked("s", &value, &attrs(), None, 5).unwrap();
        // Three chunks, then chunks 4 and 5 of the earlier value removed.
        assert_eq!(set.len(), 5);
        assert!(set[3].to_str().unwrap().starts_with("s_4=;"));
        let cookies: Vec<String> = set[..3]
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect();
        let h = request(&[&cookies.join("; ")]);
        assert_eq!(get_chunked(&h, "s"), (Some(value), 3));
        assert_eq!(get_chunked(&request(&[]), "s"), (None, 0));
        assert!(set_chunked("s", &"x".repeat(CHUNK * MAX_CHUNKS + 1), &attrs(), None, 0).is_none());
        assert_eq!(clear_chunked("s", &attrs(), 2).len(), 2);
    }
}
